"""The search loop: propose, deduplicate, check, train in parallel, store, update.

For every proposal the loop computes the canonical key and fingerprint of its function. A
function already in the store at the same budget is not trained again: its stored reward is
reused and the proposal counted as a duplicate. A function that fails the cheap validity check
gets reward 0 and its reason, without training. Everything else goes to an executor's workers.
Results update the algorithm as they arrive, and after every proposal and every result the
algorithm state and the list of proposals in flight are checkpointed in the store. Rerunning
with the same run directory resumes there: the proposals in flight are resubmitted (or found
in the store, if they finished before the kill), and nothing finished is trained twice.
"""

import dataclasses
import hashlib
import inspect
import json
import math
import os
import time
from typing import Any, Callable

from absl import logging
import gin
import tensorflow as tf

from search import algorithms, executors
from search.store import SearchStore
from swish_tf import expressions, parser, validity
from swish_tf.search_space import SearchSpace

# Reference activations trained with the same budget as the candidates.
REFERENCES = {"relu": "max(x, 0)", "swish": "x * sigmoid(beta * x)"}

# Configurables that choose resources, not results: changing them does not change the
# configuration hash, so a search can resume with more workers or another cluster.
_RESOURCE_CONFIGURABLES = ("LocalExecutor", "RayExecutor", "configure_threads")


@gin.configurable
def search_space(num_units: int = 1, unary=None, binary=None, left_unary=None,
                 right_unary=None) -> SearchSpace:
    """Build the `SearchSpace` that Gin describes; None keeps the full function lists."""
    arguments = {"num_units": num_units, "left_unary": left_unary, "right_unary": right_unary}
    if unary is not None:
        arguments["unary"] = tuple(unary)
    if binary is not None:
        arguments["binary"] = tuple(binary)
    return SearchSpace(**arguments)


def config_hash(config_text: str) -> str:
    """Hash the Gin configuration text, leaving out resource-only bindings."""
    lines = []
    for line in config_text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if any(name in stripped.split("=")[0] for name in _RESOURCE_CONFIGURABLES):
            continue
        lines.append(stripped)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


@dataclasses.dataclass
class SearchSummary:
    """Counts of a finished (or resumed and finished) search."""

    proposals: int
    trained: int
    duplicates: int
    invalid: int
    references: int
    children_per_hour: float
    best_expression: str | None
    best_reward: float
    wall_time_s: float


def configured_train_steps() -> int:
    """Return the child budget bound to `train_child.train_steps`, or its default."""
    from search import child_trainer  # pylint: disable=import-outside-toplevel

    try:
        return int(gin.query_parameter("train_child.train_steps"))
    except ValueError:
        return int(inspect.signature(child_trainer.train_child).parameters["train_steps"].default)


@gin.configurable(allowlist=["algorithm", "seed", "references", "reference_repeats"])
class SearchRunner:
    """Run one search in `run_dir` with an executor.

    Args:
        run_dir: directory of the store, checkpoints and TensorBoard logs.
        make_executor: callable that starts the executor, called once the store is open.
        algorithm: the search algorithm class, bound in Gin (`@ExhaustiveSearch` and so on);
            called with the search space.
        seed: seed of every child, so that candidates are compared under the same
            initialization and data order.
        references: names of `REFERENCES` to train under the same budget before the search.
        reference_repeats: seeds per reference activation (seed, seed + 1, ...).
        allow_config_change: continue a store written under another configuration.
        config_text: the Gin configuration text, hashed into the store.
    """

    def __init__(self, run_dir: str, make_executor: Callable[[], Any],
                 algorithm: Callable[..., algorithms.SearchAlgorithm] = gin.REQUIRED,
                 seed: int = 0, references: tuple[str, ...] = ("relu", "swish"),
                 reference_repeats: int = 1, allow_config_change: bool = False, config_text: str = ""):
        for name in references:
            if name not in REFERENCES:
                raise ValueError(f"Unknown reference activation {name!r}; expected one of "
                                 f"{sorted(REFERENCES)}.")
        self.run_dir = run_dir
        self.seed = seed
        self.references = tuple(references)
        self.reference_repeats = reference_repeats
        # The child budget; stored with every row, so results of different budgets never mix.
        self.train_steps = configured_train_steps()
        self.space = search_space()
        self.algorithm = algorithm(self.space)
        self.store = SearchStore(run_dir, config_hash(config_text), allow_config_change)
        self.make_executor = make_executor
        # Proposals without a reward yet, by sample number; checkpointed with the algorithm.
        self.pending: dict[int, algorithms.Candidate] = {}
        # Samples of pending proposals that wait for an idle worker.
        self.queue: list[int] = []
        self.trained_this_run = 0
        self.writer = tf.summary.create_file_writer(os.path.join(run_dir, "tensorboard"))
        self.best_reward = 0.0
        self.best_expression: str | None = None
        self.evaluated = 0
        self._restore()

    # --- Checkpoints ----------------------------------------------------------------------------

    def _restore(self) -> None:
        state = self.store.load_state("search")
        if state is None:
            return
        self.algorithm.load_state_dict(state["algorithm"])
        self.pending = dict(state["pending"])
        logging.info("Resuming the search in %s: %d proposals made, %d in flight at the stop.",
                     self.run_dir, self.algorithm.num_proposed, len(self.pending))

    def _checkpoint(self) -> None:
        self.store.save_state("search", {"algorithm": self.algorithm.state_dict(),
                                         "pending": dict(self.pending)})

    # --- Main loop ------------------------------------------------------------------------------

    def run(self) -> SearchSummary:
        """Run the search to the end; return its counts."""
        start = time.monotonic()
        self._update_best_from_store()
        executor = None
        try:
            executor = self.make_executor()
            self._train_references(executor)
            self._search(executor)
        finally:
            if executor is not None:
                executor.shutdown()
            self.writer.flush()
        return self._summary(time.monotonic() - start)

    def _train_references(self, executor) -> None:
        tasks = []
        for name in self.references:
            tree = parser.parse_expression(REFERENCES[name])
            for repeat in range(self.reference_repeats):
                seed = self.seed + repeat
                known = [row for row in self.store.find(expressions.canonical_key(tree),
                                                         expressions.fingerprint(tree),
                                                         self.train_steps)
                         if row["seed"] == seed and row["kind"] == "reference"]
                if not known:
                    tasks.append((name, tree, seed))
        if tasks:
            logging.info("Training %d reference children (%s) at %d steps.", len(tasks),
                         ", ".join(sorted({name for name, _, _ in tasks})), self.train_steps)
        next_id = -1
        waiting = {}
        while tasks or waiting:
            while tasks and executor.idle_slots() > 0:
                name, tree, seed = tasks.pop(0)
                executor.submit(executors.Task(next_id, expressions.to_text(tree), seed))
                waiting[next_id] = (name, tree, seed)
                next_id -= 1
            for finished in executor.poll(timeout=1.0):
                name, tree, seed = waiting.pop(finished.task_id)
                result = finished.result
                reward = _reward(result)
                self.trained_this_run += 1
                self.store.add_evaluation(
                    expression=expressions.to_text(tree),
                    canonical=expressions.canonical_key(tree),
                    fingerprint=expressions.fingerprint(tree), tokens=None, kind="reference",
                    train_steps=self.train_steps, seed=seed, status=result["status"],
                    reason=result["reason"], reward=reward, result=result,
                    worker=finished.worker)
                logging.info("Reference %s (seed %d): %s, validation accuracy %s, %.0f s.", name,
                             seed, result["status"], _format_accuracy(result["val_accuracy"]),
                             result["wall_time_s"] or 0.0)

    def _search(self, executor) -> None:
        logging.info("Search space: %d core unit(s), %d ordered candidates.",
                     self.space.num_units, self.space.size())
        # Resubmit what was in flight when an earlier run stopped.
        for candidate in sorted(self.pending.values(), key=lambda c: c.sample):
            self._resolve(candidate, resumed=True)
        while True:
            exhausted = False
            # Propose while a worker would otherwise idle. Duplicates and invalid candidates
            # are resolved at once and leave the queue empty, so proposing goes on.
            while len(self.queue) < executor.idle_slots():
                candidate = self.algorithm.propose()
                if candidate is None:
                    exhausted = True
                    break
                self.pending[candidate.sample] = candidate
                self._checkpoint()
                self._resolve(candidate)
            self._submit_queue(executor)
            if exhausted and not self.pending:
                return
            for finished in executor.poll(timeout=1.0):
                self._record(finished)

    def _budget(self, candidate: algorithms.Candidate) -> int:
        return candidate.train_steps or self.train_steps

    def _resolve(self, candidate: algorithms.Candidate, resumed: bool = False) -> None:
        """Resolve a proposal from the store or the validity check, or queue it for training."""
        tree = parser.parse_expression(candidate.expression)
        canonical = expressions.canonical_key(tree)
        fingerprint = expressions.fingerprint(tree)
        budget = self._budget(candidate)
        known = self.store.find(canonical, fingerprint, budget)
        if known:
            reward = sum(row["reward"] for row in known) / len(known)
            # A resumed proposal whose child finished before the stop was trained, not reused.
            trained_before_stop = resumed and any(
                row["kind"] == "candidate" and _same_tokens(row["tokens"], candidate.tokens)
                for row in known)
            self._finish(candidate, reward, "trained" if trained_before_stop else "duplicate",
                         known[-1]["id"])
            return
        check = validity.check_expression(tree)
        if not check.valid:
            evaluation_id = self.store.add_evaluation(
                expression=candidate.expression, canonical=canonical, fingerprint=fingerprint,
                tokens=candidate.tokens, kind="candidate", train_steps=budget, seed=self.seed,
                status="invalid", reason=check.reason, reward=0.0)
            self._finish(candidate, 0.0, "invalid", evaluation_id)
            return
        self.queue.append(candidate.sample)

    def _submit_queue(self, executor) -> None:
        while self.queue and executor.idle_slots() > 0:
            candidate = self.pending[self.queue.pop(0)]
            executor.submit(executors.Task(candidate.sample, candidate.expression, self.seed,
                                           candidate.train_steps))

    def _record(self, finished: executors.TaskResult) -> None:
        candidate = self.pending.get(finished.task_id)
        if candidate is None:
            return
        self.trained_this_run += 1
        result = finished.result
        tree = parser.parse_expression(candidate.expression)
        reward = _reward(result)
        evaluation_id = self.store.add_evaluation(
            expression=candidate.expression, canonical=expressions.canonical_key(tree),
            fingerprint=expressions.fingerprint(tree), tokens=candidate.tokens,
            kind="candidate", train_steps=self._budget(candidate), seed=self.seed,
            status=result["status"], reason=result["reason"], reward=reward, result=result,
            worker=finished.worker)
        self._finish(candidate, reward, "trained", evaluation_id, result)

    def _finish(self, candidate: algorithms.Candidate, reward: float, outcome: str,
                evaluation_id: int | None, result: dict[str, Any] | None = None) -> None:
        """Pass a reward to the algorithm, log the proposal and checkpoint."""
        self.store.add_proposal(sample=candidate.sample, expression=candidate.expression,
                                canonical=expressions.canonical_key(
                                    parser.parse_expression(candidate.expression)),
                                tokens=candidate.tokens, train_steps=self._budget(candidate),
                                outcome=outcome, reward=reward, evaluation_id=evaluation_id)
        self.pending.pop(candidate.sample, None)
        self.algorithm.observe(candidate, reward)
        self._checkpoint()
        self.evaluated += 1
        if reward > self.best_reward:
            self.best_reward, self.best_expression = reward, candidate.expression
        self._log_progress(candidate, reward, outcome, result)

    def _log_progress(self, candidate, reward, outcome, result) -> None:
        counts = self.store.outcome_counts()
        done = sum(counts.values())
        total = getattr(self.algorithm, "max_samples", None)
        progress = f"[{done}/{total}]" if total else f"[{done}]"
        if result is not None:
            detail = (f"{result['status']}, validation accuracy "
                      f"{_format_accuracy(result['val_accuracy'])}, "
                      f"{result['wall_time_s'] or 0.0:.0f} s")
            if result["reason"]:
                detail += f" ({result['reason'][:120]})"
        else:
            detail = f"{outcome}, reward {reward:.4f}"
        logging.info("%s %s: %s. Best so far: %.4f %s", progress, candidate.expression, detail,
                     self.best_reward, self.best_expression or "-")
        with self.writer.as_default(step=done):
            tf.summary.scalar("child/reward", reward)
            tf.summary.scalar("search/best_reward", self.best_reward)
            if result is not None and result.get("wall_time_s"):
                tf.summary.scalar("child/wall_time_s", result["wall_time_s"])
                tf.summary.scalar("child/images_per_sec", result["images_per_sec"] or 0.0)
            metrics = getattr(self.algorithm, "last_metrics", None)
            if metrics and self.algorithm.num_observed % max(
                    1, getattr(self.algorithm, "batch_size", 1)) == 0:
                for name, value in metrics.items():
                    tf.summary.scalar(name, value)

    def _update_best_from_store(self) -> None:
        for row in self.store.evaluations(kind="candidate"):
            if row["reward"] > self.best_reward:
                self.best_reward, self.best_expression = row["reward"], row["expression"]

    def _summary(self, wall_time_s: float) -> SearchSummary:
        counts = self.store.outcome_counts()
        return SearchSummary(
            proposals=sum(counts.values()), trained=counts["trained"],
            duplicates=counts["duplicate"], invalid=counts["invalid"],
            references=len(self.store.evaluations(kind="reference")),
            children_per_hour=self.trained_this_run * 3600.0 / max(wall_time_s, 1e-9),
            best_expression=self.best_expression, best_reward=self.best_reward,
            wall_time_s=wall_time_s)


def _same_tokens(stored: str | None, tokens) -> bool:
    return stored is not None and tokens is not None and json.loads(stored) == [
        int(t) for t in tokens]


def _reward(result: dict[str, Any]) -> float:
    """Validation accuracy of a finished child; 0 for every failure or non-finite value."""
    accuracy = result.get("val_accuracy")
    if result.get("status") != "ok" or accuracy is None or not math.isfinite(accuracy):
        return 0.0
    return float(accuracy)


def _format_accuracy(value) -> str:
    return "-" if value is None else f"{value:.4f}"
