"""SQLite store of a search run: every evaluation, every proposal and the algorithm state.

One database file per run directory, in WAL mode, written by the search process only (workers
send results back; they never write). Each result is committed as soon as it arrives, so a
killed search loses at most the children still in flight, and rerunning the same command
resumes from the stored state without retraining anything.
"""

import json
import math
import os
import pickle
import sqlite3
import time
from typing import Any, Iterable

DATABASE_NAME = "search.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    expression TEXT NOT NULL,
    canonical TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    tokens TEXT,
    kind TEXT NOT NULL,
    train_steps INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    reward REAL NOT NULL,
    val_accuracy REAL,
    train_loss REAL,
    steps INTEGER,
    images_per_sec REAL,
    wall_time_s REAL,
    worker TEXT,
    config_hash TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evaluations_canonical ON evaluations (canonical, train_steps);
CREATE INDEX IF NOT EXISTS evaluations_fingerprint ON evaluations (fingerprint, train_steps);
CREATE TABLE IF NOT EXISTS proposals (
    sample INTEGER PRIMARY KEY,
    expression TEXT NOT NULL,
    canonical TEXT NOT NULL,
    tokens TEXT,
    train_steps INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    reward REAL NOT NULL,
    evaluation_id INTEGER,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    updated_at REAL NOT NULL
);
"""

# Outcomes of a proposal: trained now, taken from an earlier evaluation, or rejected by the
# validity check without training.
OUTCOMES = ("trained", "duplicate", "invalid")


class ConfigMismatchError(RuntimeError):
    """The run directory contains a search made with a different configuration."""


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class SearchStore:
    """The SQLite database of one run directory.

    Args:
        run_dir: directory of the run; created if missing.
        config_hash: hash of the Gin configuration that defines the search's results; None
            opens the store for reading without checking it (see `open_existing`).
        allow_config_change: accept a store written under another configuration hash, for
            example after changing only the number of samples; new rows carry the new hash.

    Raises:
        ConfigMismatchError: the store was written with another configuration and
            `allow_config_change` is False.
    """

    def __init__(self, run_dir: str, config_hash: str | None,
                 allow_config_change: bool = False):
        os.makedirs(run_dir, exist_ok=True)
        self.path = os.path.join(run_dir, DATABASE_NAME)
        self.config_hash = config_hash
        try:
            self.connection = sqlite3.connect(self.path, timeout=30.0)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=NORMAL")
            self.connection.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise RuntimeError(
                f"Cannot open the search database {self.path}: {error}. If the file is "
                "damaged, move it away and rerun; the search then starts from scratch.") from error
        self.connection.row_factory = sqlite3.Row
        stored = self.get_meta("config_hash")
        if config_hash is None:
            self.config_hash = stored or ""
        elif stored is None:
            self.set_meta("config_hash", config_hash)
        elif stored != config_hash:
            if not allow_config_change:
                raise ConfigMismatchError(
                    f"The run directory {run_dir} contains a search made with another configuration "
                    f"(hash {stored}, now {config_hash}). Use a new --run_dir, or pass "
                    "--allow_config_change to continue this search under the new configuration.")
            self.set_meta("config_hash", config_hash)

    @classmethod
    def open_existing(cls, run_dir: str) -> "SearchStore":
        """Open the store of `run_dir` for reports, whatever configuration wrote it."""
        return cls(run_dir, config_hash=None)

    def close(self) -> None:
        self.connection.close()

    # --- Metadata and algorithm state -----------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        with self.connection:
            self.connection.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                    (key, value))

    def save_state(self, name: str, value: Any) -> None:
        """Pickle and store `value` under `name`, replacing the previous checkpoint atomically."""
        blob = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        with self.connection:
            self.connection.execute(
                "INSERT OR REPLACE INTO state (name, value, updated_at) VALUES (?, ?, ?)",
                (name, blob, time.time()))

    def load_state(self, name: str) -> Any:
        row = self.connection.execute("SELECT value FROM state WHERE name = ?",
                                      (name,)).fetchone()
        return None if row is None else pickle.loads(row[0])

    # --- Evaluations ----------------------------------------------------------------------------

    def find(self, canonical: str, fingerprint: str, train_steps: int) -> list[sqlite3.Row]:
        """Return the evaluations of the same function at the same budget, oldest first.

        A function matches on its canonical key or, failing that, on its fingerprint.
        """
        rows = self.connection.execute(
            "SELECT * FROM evaluations WHERE canonical = ? AND train_steps = ? ORDER BY id",
            (canonical, train_steps)).fetchall()
        if rows:
            return rows
        return self.connection.execute(
            "SELECT * FROM evaluations WHERE fingerprint = ? AND train_steps = ? ORDER BY id",
            (fingerprint, train_steps)).fetchall()

    def add_evaluation(self, *, expression: str, canonical: str, fingerprint: str,
                       tokens: Iterable[int] | None, kind: str, train_steps: int, seed: int,
                       status: str, reason: str, reward: float,
                       result: dict[str, Any] | None = None, worker: str = "") -> int:
        """Insert one evaluation and commit it; return its id."""
        result = result or {}
        reward = _finite(float(reward))
        if reward is None:
            raise ValueError(f"The reward of {expression!r} is not finite; a failed child must "
                             "be stored with reward 0.")
        with self.connection:
            cursor = self.connection.execute(
                "INSERT INTO evaluations (expression, canonical, fingerprint, tokens, kind, "
                "train_steps, seed, status, reason, reward, val_accuracy, train_loss, steps, "
                "images_per_sec, wall_time_s, worker, config_hash, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (expression, canonical, fingerprint,
                 None if tokens is None else json.dumps([int(t) for t in tokens]), kind,
                 int(train_steps), int(seed), status, reason, reward,
                 _finite(result.get("val_accuracy")), _finite(result.get("train_loss")),
                 result.get("steps"), _finite(result.get("images_per_sec")),
                 _finite(result.get("wall_time_s")), worker, self.config_hash, time.time()))
        return int(cursor.lastrowid)

    def evaluations(self, kind: str | None = None) -> list[sqlite3.Row]:
        query = "SELECT * FROM evaluations"
        arguments: tuple = ()
        if kind is not None:
            query += " WHERE kind = ?"
            arguments = (kind,)
        return self.connection.execute(query + " ORDER BY id", arguments).fetchall()

    # --- Proposals ------------------------------------------------------------------------------

    def add_proposal(self, *, sample: int, expression: str, canonical: str,
                     tokens: Iterable[int] | None, train_steps: int, outcome: str,
                     reward: float, evaluation_id: int | None) -> None:
        """Record how proposal number `sample` was resolved; a resumed search overwrites it."""
        if outcome not in OUTCOMES:
            raise ValueError(f"Unknown proposal outcome {outcome!r}; expected one of {OUTCOMES}.")
        with self.connection:
            self.connection.execute(
                "INSERT OR REPLACE INTO proposals (sample, expression, canonical, tokens, "
                "train_steps, outcome, reward, evaluation_id, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sample, expression, canonical,
                 None if tokens is None else json.dumps([int(t) for t in tokens]),
                 int(train_steps), outcome, float(reward), evaluation_id, time.time()))

    def proposals(self) -> list[sqlite3.Row]:
        return self.connection.execute("SELECT * FROM proposals ORDER BY sample").fetchall()

    def outcome_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for outcome, count in self.connection.execute(
                "SELECT outcome, COUNT(*) FROM proposals GROUP BY outcome"):
            counts[outcome] = count
        return counts
