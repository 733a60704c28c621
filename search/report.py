r"""Leaderboard, plots and exports of a search run directory.

Usage:
    python -m search.report --run_dir=runs/quick [--top=10]

Prints the leaderboard (one row per distinct function and budget: validation accuracy as mean
and standard deviation over its runs, runs, statuses), marks the reference activations, and
writes into `<run_dir>/report/`: `leaderboard.csv`, `leaderboard.json` (strict JSON),
`top_functions.png` (the best functions over x in [-6, 6], as "Searching for Activation
Functions" draws them) and `search_progress.png` (reward and best-so-far against children).
"""

import csv
import dataclasses
import json
import math
import os
import statistics
from typing import Sequence

from absl import app
from absl import flags
import numpy as np

from search.store import DATABASE_NAME, SearchStore
from swish_tf import numpy_ops
from swish_tf.parser import parse_expression

STATUSES = ("ok", "diverged", "invalid", "timeout", "error")


@dataclasses.dataclass
class LeaderboardRow:
    """One distinct function at one budget."""

    expression: str
    canonical: str
    kind: str
    train_steps: int
    runs: int
    ok_runs: int
    mean_accuracy: float | None
    std_accuracy: float | None
    status: str
    reason: str

    @property
    def sort_key(self):
        # Finished functions first, by accuracy; failures (reward 0) after them, by name.
        return (self.mean_accuracy is None, -(self.mean_accuracy or 0.0), self.expression)


def leaderboard(store: SearchStore) -> list[LeaderboardRow]:
    """Group the store's evaluations by function and budget; best first."""
    groups: dict[tuple[str, int], list] = {}
    for row in store.evaluations():
        groups.setdefault((row["canonical"], row["train_steps"]), []).append(row)
    table = []
    for (canonical, train_steps), rows in groups.items():
        accuracies = [row["val_accuracy"] for row in rows
                      if row["status"] == "ok" and row["val_accuracy"] is not None
                      and math.isfinite(row["val_accuracy"])]
        statuses = sorted({row["status"] for row in rows}, key=STATUSES.index)
        failed = [row for row in rows if row["status"] != "ok"]
        table.append(LeaderboardRow(
            expression=rows[0]["expression"], canonical=canonical,
            kind="reference" if any(r["kind"] == "reference" for r in rows) else "candidate",
            train_steps=train_steps, runs=len(rows), ok_runs=len(accuracies),
            mean_accuracy=statistics.fmean(accuracies) if accuracies else None,
            std_accuracy=statistics.stdev(accuracies) if len(accuracies) > 1 else None,
            status="/".join(statuses), reason=failed[-1]["reason"] if failed else ""))
    table.sort(key=lambda row: row.sort_key)
    return table


def format_leaderboard(rows: Sequence[LeaderboardRow], top: int | None = None) -> str:
    """Render the leaderboard as a fixed-width text table; reference rows are always shown."""
    shown = [row for i, row in enumerate(rows) if top is None or i < top
             or row.kind == "reference"]
    width = max([len("function")] + [len(row.expression) for row in shown])
    lines = [f"{'rank':>4}  {'function':<{width}}  {'val acc':>7}  {'std':>6}  {'runs':>4}  "
             f"{'steps':>6}  status"]
    for row in shown:
        rank = rows.index(row) + 1
        accuracy = "-" if row.mean_accuracy is None else f"{row.mean_accuracy:.4f}"
        spread = "-" if row.std_accuracy is None else f"{row.std_accuracy:.4f}"
        status = row.status + (" (reference)" if row.kind == "reference" else "")
        lines.append(f"{rank:>4}  {row.expression:<{width}}  {accuracy:>7}  {spread:>6}  "
                     f"{row.runs:>4}  {row.train_steps:>6}  {status}")
    return "\n".join(lines)


def status_counts(store: SearchStore) -> dict[str, int]:
    """Count evaluations by child status and proposals by outcome."""
    counts = {f"children_{status}": 0 for status in STATUSES}
    for row in store.evaluations():
        counts[f"children_{row['status']}"] = counts.get(f"children_{row['status']}", 0) + 1
    for outcome, count in store.outcome_counts().items():
        counts[f"proposals_{outcome}"] = count
    return counts


def write_exports(rows: Sequence[LeaderboardRow], counts: dict[str, int], directory: str) -> None:
    """Write leaderboard.csv and leaderboard.json (strict JSON, no NaN) into `directory`."""
    os.makedirs(directory, exist_ok=True)
    fields = [field.name for field in dataclasses.fields(LeaderboardRow)]
    with open(os.path.join(directory, "leaderboard.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["rank"] + fields)
        writer.writeheader()
        for rank, row in enumerate(rows, start=1):
            writer.writerow({"rank": rank, **dataclasses.asdict(row)})
    with open(os.path.join(directory, "leaderboard.json"), "w") as f:
        json.dump({"counts": counts,
                   "leaderboard": [{"rank": rank, **dataclasses.asdict(row)}
                                   for rank, row in enumerate(rows, start=1)]},
                  f, indent=2, allow_nan=False)


def plot_top_functions(rows: Sequence[LeaderboardRow], path: str, top: int = 8) -> None:
    """Plot the best finished functions and the references over x in [-6, 6] (beta = 1)."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    x = np.linspace(-6.0, 6.0, 601)
    finished = [row for row in rows if row.mean_accuracy is not None]
    chosen = [row for row in finished if row.kind == "candidate"][:top]
    chosen += [row for row in finished if row.kind == "reference"]
    figure, axis = plt.subplots(figsize=(8, 5.5))
    for row in chosen:
        y = numpy_ops.evaluate(parse_expression(row.expression), x)
        y = np.broadcast_to(y, x.shape)
        style = "--" if row.kind == "reference" else "-"
        axis.plot(x, np.clip(y, -10, 10), style,
                  label=f"{row.expression} ({row.mean_accuracy:.3f})")
    axis.set_xlabel("x")
    axis.set_ylabel("f(x), beta = 1")
    axis.set_ylim(-6, 6)
    axis.grid(alpha=0.3)
    axis.axhline(0, color="black", linewidth=0.5)
    axis.axvline(0, color="black", linewidth=0.5)
    axis.set_title("Top functions by validation accuracy (dashed: references)")
    axis.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_progress(store: SearchStore, path: str) -> None:
    """Plot each proposal's reward and the best reward so far against proposals."""
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    proposals = store.proposals()
    samples = [row["sample"] for row in proposals]
    rewards = [row["reward"] for row in proposals]
    figure, axis = plt.subplots(figsize=(8, 4.5))
    if proposals:
        axis.scatter(samples, rewards, s=12, alpha=0.6, label="reward (validation accuracy)")
        axis.plot(samples, np.maximum.accumulate(rewards), color="tab:red", label="best so far")
    axis.set_xlabel("children proposed")
    axis.set_ylabel("reward")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(run_dir: str, top: int = 10) -> str:
    """Write every export and plot of `run_dir`; return the printable leaderboard text."""
    database = os.path.join(run_dir, DATABASE_NAME)
    if not os.path.isfile(database):
        raise FileNotFoundError(f"No search database at {database}; pass the --run_dir of a "
                                "search started with `python -m search.run`.")
    store = SearchStore.open_existing(run_dir)
    try:
        rows = leaderboard(store)
        counts = status_counts(store)
        directory = os.path.join(run_dir, "report")
        write_exports(rows, counts, directory)
        plot_top_functions(rows, os.path.join(directory, "top_functions.png"), top=top)
        plot_progress(store, os.path.join(directory, "search_progress.png"))
    finally:
        store.close()
    summary = ", ".join(f"{name} {count}" for name, count in counts.items() if count)
    return (f"{format_leaderboard(rows, top)}\n\nCounts: {summary}\n"
            f"Report files: {directory}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    print(write_report(flags.FLAGS.run_dir, flags.FLAGS.top))


if __name__ == "__main__":
    # Defined here rather than at import, so `search.run` can import this module's functions
    # and define its own --run_dir.
    flags.DEFINE_string("run_dir", None, "Run directory of a search (holds search.sqlite).")
    flags.DEFINE_integer("top", 10, "Functions to list and plot, besides the references.")
    flags.mark_flag_as_required("run_dir")
    app.run(main)
