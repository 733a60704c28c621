"""Benchmark activations: a grid of (model, activation, seed) training runs.

`run_benchmark` trains every model of the grid with every activation and seed, records each
run in an SQLite database in the run directory, and writes two tables in the style of
"Searching for Activation Functions":

1. the median test score over seeds, one row per activation and one column per model;
2. for each baseline, the number of models on which Swish is better, equal or worse, with a
   one-sided paired sign test over those models.

The comparison rule (`compare_to_baseline`):

- Per model, Swish and the baseline are compared by their median test score over seeds,
  rounded to 0.1 point (of accuracy in percent, or of BLEU), the precision of that paper's
  tables. A higher rounded median counts as "better", a lower one as "worse", the same one
  as "equal".
- Over models, the sign test pairs Swish with the baseline model by model. Ties ("equal") are
  dropped, and with n = better + worse, p_better = P(X >= better) and p_worse = P(X >= worse)
  for X ~ Binomial(n, 1/2): the chance of at least that many wins if neither activation were
  better. The verdict is "Swish better" when p_better < alpha, "baseline better" when
  p_worse < alpha, and "no significant difference" otherwise. With 9 models, as in that
  paper's summary, 9/0/0 gives p_better = 1/512 and 7/1/1 gives 9/256 = 0.035.

A trainer runs one grid cell. `train_image_classifier` (the default) trains an image
classifier with `models.training.train_and_evaluate` and scores its test accuracy.
`train_translator` trains a Transformer with `models.train_translation` and scores its test
BLEU, stored divided by 100 so that every score is a fraction in [0, 1].

Runs are resumable. A run is identified by (model, activation, seed, config hash). Rerunning
the same config skips finished runs and resumes an interrupted one from its last checkpoint.
The config hash covers every Gin binding except the grid itself (`run_benchmark.activations`
and `run_benchmark.seeds`), so adding seeds or activations keeps the finished runs. Any other
change (say, the learning rate) starts a fresh set of runs in the same directory, and the
tables show only the runs of the current config.
"""

import ast
import csv
import dataclasses
import hashlib
import json
import math
import os
import re
import sqlite3
import statistics
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from absl import logging
import gin
import keras
import numpy as np
import tensorflow as tf

from models import train_translation
from models import training
import swish_tf
from swish_tf.data import cifar

DATABASE_NAME = "runs.sqlite"
SWISH = "swish"

ACCURACY_TITLE = "Test accuracy (%)"

# Bindings that only choose which runs to make; they stay out of the config hash.
_GRID_BINDINGS = ("run_benchmark.activations", "run_benchmark.seeds")


@dataclasses.dataclass(frozen=True)
class BenchmarkData:
    """Datasets of one seed: an endless training set and a finite test set."""

    train: Any  # tf.data.Dataset of (images, labels) batches, repeated forever.
    test: Any  # tf.data.Dataset of (images, labels) batches, one pass.
    num_classes: int
    train_examples: int
    batch_size: int  # Global batch size of `train`.


@gin.configurable(denylist=["data_dir", "seed"])
def cifar_data(data_dir: str, seed: int, *, dataset: str = "cifar10", batch_size: int = 128,
               eval_batch_size: int = 500, train_on_validation: bool = True,
               test_examples: int | None = None,
               pad_test_to_batch: bool = False) -> BenchmarkData:
    """Load CIFAR-10 or CIFAR-100 (official python layout) for one benchmark seed.

    Args:
      data_dir: directory with `cifar-10-batches-py` or `cifar-100-python` (or their archives).
      seed: seed of shuffling and augmentation.
      dataset: "cifar10" or "cifar100".
      batch_size: global training batch size.
      eval_batch_size: test batch size (does not change the result).
      train_on_validation: train on all 50,000 training images, as the CIFAR papers do; False
        holds out the loader's validation split (5,000 images) unused.
      test_examples: evaluate on the first this many test images to save time on small
        budgets; None evaluates on all 10,000.
      pad_test_to_batch: pad the last test batch to eval_batch_size with label -1, which
        `train_and_evaluate` leaves out of the metrics. TPUs need this static batch shape.

    Raises:
      ValueError: for an unknown dataset name or a test_examples outside [1, 10000].
    """
    loaders = {"cifar10": cifar.load_cifar10, "cifar100": cifar.load_cifar100}
    if dataset not in loaders:
        raise ValueError(f"Unknown dataset {dataset!r}; use one of {sorted(loaders)}.")
    # The validation split is fixed (seed 0) so that every run trains on the same images.
    splits = loaders[dataset](data_dir, seed=0)
    images, labels = splits.train_images, splits.train_labels
    if train_on_validation:
        images = np.concatenate([images, splits.validation_images])
        labels = np.concatenate([labels, splits.validation_labels])
    test_images, test_labels = splits.test_images, splits.test_labels
    if test_examples is not None:
        if not 1 <= test_examples <= len(test_images):
            raise ValueError(f"test_examples must be in [1, {len(test_images)}]; received "
                             f"{test_examples}.")
        test_images, test_labels = test_images[:test_examples], test_labels[:test_examples]
    train = cifar.make_dataset(images, labels, batch_size=batch_size, training=True,
                               mean=splits.channel_mean, std=splits.channel_std, seed=seed)
    test = cifar.make_dataset(test_images, test_labels,
                              batch_size=eval_batch_size, training=False,
                              mean=splits.channel_mean, std=splits.channel_std,
                              pad_to_batch=pad_test_to_batch)
    return BenchmarkData(train=train, test=test, num_classes=splits.num_classes,
                         train_examples=len(images), batch_size=batch_size)


@gin.configurable(denylist=["data_dir", "seed"])
def translation_data_dir(data_dir: str, seed: int) -> str:
    """Return data_dir for `train_translator`, which reads the corpus itself on every run.

    Raises:
      FileNotFoundError: data_dir is not a directory.
    """
    del seed  # The translation trainer seeds its own data order.
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"Translation data directory {data_dir} not found; pass the "
                                "directory with the corpus files (for Multi30k, "
                                "train.en.gz and its siblings) as --data_dir.")
    return data_dir


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Result of one finished run, as a trainer returns it."""

    test_score: float  # A fraction in [0, 1]: accuracy, or BLEU / 100.
    test_loss: float | None
    steps: int
    train_seconds: float


@gin.configurable(denylist=["model_dir", "builder", "activation", "seed", "data", "strategy"])
def train_image_classifier(model_dir: str, builder: Callable[..., keras.Model], activation: str,
                           seed: int, data: BenchmarkData, strategy) -> RunResult:
    """Train builder(activation=..., num_classes=...) on `data` and score its test accuracy."""
    del seed  # Already set globally by the driver; the data carries its own seed.

    def model_fn():
        return builder(activation=activation, num_classes=data.num_classes)

    metrics = training.train_and_evaluate(model_fn, data.train, data.test, model_dir, strategy,
                                          batch_size=data.batch_size,
                                          train_examples=data.train_examples)
    return RunResult(test_score=metrics["eval_accuracy"], test_loss=metrics["eval_loss"],
                     steps=metrics["steps"], train_seconds=metrics["train_seconds"])


@gin.configurable(denylist=["model_dir", "builder", "activation", "seed", "data", "strategy"])
def train_translator(model_dir: str, builder: Callable[..., keras.Model], activation: str,
                     seed: int, data: str, strategy) -> RunResult:
    """Train builder(vocab_size, activation=...) with `train_translation` and score test BLEU.

    `data` is the corpus directory. The `train_translation.*` bindings set the budget and
    decoding; the grid's activation and seed override theirs.

    Raises:
      NotImplementedError: for a strategy other than the default, which translation training
        lacks.
    """
    if strategy is not None and strategy is not tf.distribute.get_strategy():
        raise NotImplementedError("Translation runs train on the default device only; run "
                                  "the benchmark with --strategy=default.")

    def model_fn(vocab_size):
        return builder(vocab_size, activation=activation)

    row = train_translation.train_and_evaluate(data, model_dir, seed=seed, model_fn=model_fn,
                                               activation_name=activation)
    details = json.loads(row["details"])
    return RunResult(test_score=row["bleu"] / 100.0, test_loss=None, steps=row["steps"],
                     train_seconds=details["train_seconds"])


# ----------------------------------------------------------------------------------------------
# The run store.


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """One row of the run store."""

    model: str
    activation: str
    seed: int
    config_hash: str
    status: str  # "running", "finished" or "failed".
    test_score: float | None = None  # A fraction in [0, 1]: accuracy, or BLEU / 100.
    test_loss: float | None = None
    steps: int | None = None
    train_seconds: float | None = None
    error: str | None = None


class RunStore:
    """SQLite table of benchmark runs, in WAL mode so readers never block the writer."""

    def __init__(self, path: str):
        self.path = path
        self._connection = sqlite3.connect(path, timeout=60.0)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("""
            CREATE TABLE IF NOT EXISTS runs (
                model TEXT NOT NULL,
                activation TEXT NOT NULL,
                seed INTEGER NOT NULL,
                config_hash TEXT NOT NULL,
                status TEXT NOT NULL,
                test_score REAL,
                test_loss REAL,
                steps INTEGER,
                train_seconds REAL,
                error TEXT,
                updated_at REAL NOT NULL,
                PRIMARY KEY (model, activation, seed, config_hash))""")
        columns = [row[1] for row in self._connection.execute("PRAGMA table_info(runs)")]
        if "test_accuracy" in columns:  # The column's name in stores written before BLEU.
            self._connection.execute("ALTER TABLE runs RENAME COLUMN test_accuracy TO test_score")
        self._connection.commit()

    def close(self) -> None:
        self._connection.close()

    def get(self, model: str, activation: str, seed: int, config_hash: str) -> RunRecord | None:
        row = self._connection.execute(
            "SELECT model, activation, seed, config_hash, status, test_score, test_loss, "
            "steps, train_seconds, error FROM runs WHERE model = ? AND activation = ? AND "
            "seed = ? AND config_hash = ?", (model, activation, seed, config_hash)).fetchone()
        return RunRecord(*row) if row else None

    def put(self, record: RunRecord) -> None:
        self._connection.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*dataclasses.astuple(record), time.time()))
        self._connection.commit()

    def records(self, config_hash: str | None = None) -> list[RunRecord]:
        """Return all runs, or those of one config, ordered by model, activation and seed."""
        query = ("SELECT model, activation, seed, config_hash, status, test_score, test_loss, "
                 "steps, train_seconds, error FROM runs")
        arguments: tuple = ()
        if config_hash is not None:
            query += " WHERE config_hash = ?"
            arguments = (config_hash,)
        rows = self._connection.execute(query + " ORDER BY model, activation, seed", arguments)
        return [RunRecord(*row) for row in rows]


def hash_config(config_str: str) -> str:
    """Return a 16-hex-digit hash of a Gin config string, leaving out the grid bindings.

    `config_str` is what `gin.config_str()` returns: one binding per line, with long values
    continued on indented lines, which belong to the binding above them.
    """
    kept = []
    skipping = False
    for line in config_str.splitlines():
        if line.startswith((" ", "\t")) and skipping:
            continue
        skipping = line.startswith(_GRID_BINDINGS)
        if not skipping and line.strip() and not line.lstrip().startswith("#"):
            kept.append(line.rstrip())
    return hashlib.sha256("\n".join(kept).encode()).hexdigest()[:16]


def run_directory_name(name: str) -> str:
    """Return a directory name for a model name or activation spec: itself, or a slug + hash."""
    if re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        return name
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")[:40]
    return f"{slug}_{hashlib.sha256(name.encode()).hexdigest()[:8]}"


# ----------------------------------------------------------------------------------------------
# Tables and the sign test.


def median_scores(records: Iterable[RunRecord]) -> dict[tuple[str, str], tuple[float, int]]:
    """Return {(model, activation): (median test score, finished seeds)} over finished runs."""
    scores: dict[tuple[str, str], list[float]] = {}
    for record in records:
        if record.status == "finished":
            scores.setdefault((record.model, record.activation), []).append(record.test_score)
    return {key: (statistics.median(values), len(values)) for key, values in scores.items()}


def sign_test_p_value(wins: int, losses: int) -> float:
    """Return P(X >= wins) for X ~ Binomial(wins + losses, 1/2): the one-sided sign test."""
    if wins < 0 or losses < 0:
        raise ValueError(f"wins and losses must be >= 0; received {wins} and {losses}.")
    trials = wins + losses
    return sum(math.comb(trials, k) for k in range(wins, trials + 1)) / 2**trials


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Swish against one baseline, over the models where both have finished runs."""

    baseline: str
    better: int
    equal: int
    worse: int
    p_better: float
    p_worse: float
    verdict: str


def compare_to_baseline(swish_medians: Mapping[str, float], baseline_medians: Mapping[str, float],
                        baseline: str, alpha: float = 0.05) -> Comparison:
    """Count better / equal / worse models and run the sign test (rule in the module docstring).

    Args:
      swish_medians: {model: median test score of Swish, as a fraction in [0, 1]}.
      baseline_medians: {model: median test score of the baseline}; only models in both
        mappings count.
      baseline: the baseline's name, copied into the result.
      alpha: significance level of each one-sided test.
    """
    better = equal = worse = 0
    for model in sorted(set(swish_medians) & set(baseline_medians)):
        swish_tenths = round(1000 * swish_medians[model])  # Tenths of a percentage point.
        baseline_tenths = round(1000 * baseline_medians[model])
        if swish_tenths > baseline_tenths:
            better += 1
        elif swish_tenths < baseline_tenths:
            worse += 1
        else:
            equal += 1
    p_better = sign_test_p_value(better, worse)
    p_worse = sign_test_p_value(worse, better)
    if p_better < alpha:
        verdict = "Swish better"
    elif p_worse < alpha:
        verdict = "baseline better"
    else:
        verdict = "no significant difference"
    return Comparison(baseline, better, equal, worse, p_better, p_worse, verdict)


def format_tables(records: Sequence[RunRecord], models: Sequence[str],
                  activations: Sequence[str], swish: str = SWISH, alpha: float = 0.05,
                  score_title: str = ACCURACY_TITLE
                  ) -> tuple[str, list[list[str]], list[list[str]]]:
    """Build the median table and the Swish comparison as Markdown and as CSV rows.

    Scores print as 100 times the stored fraction: accuracy in percent, or BLEU. score_title
    heads the median table.

    Returns:
      (markdown, median_rows, comparison_rows); the row lists start with a header row.
    """
    medians = median_scores(records)
    seeds_header = "seeds (min-max)"
    median_rows = [["activation", *models, seeds_header]]
    for activation in activations:
        row = [activation]
        counts = []
        for model in models:
            median, count = medians.get((model, activation), (None, 0))
            row.append("-" if median is None else f"{100 * median:.1f}")
            counts.append(count)
        row.append(f"{min(counts)}-{max(counts)}" if min(counts) != max(counts)
                   else str(counts[0]))
        median_rows.append(row)

    comparison_rows = [["baseline", "better", "equal", "worse", "p_better", "p_worse",
                        "verdict"]]
    swish_medians = {model: medians[(model, swish)][0] for model in models
                     if (model, swish) in medians}
    for baseline in activations:
        if baseline == swish:
            continue
        baseline_medians = {model: medians[(model, baseline)][0] for model in models
                            if (model, baseline) in medians}
        result = compare_to_baseline(swish_medians, baseline_medians, baseline, alpha)
        comparison_rows.append([baseline, str(result.better), str(result.equal),
                                str(result.worse), f"{result.p_better:.4g}",
                                f"{result.p_worse:.4g}", result.verdict])

    def markdown_table(rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
        return "\n".join(lines)

    markdown = "\n".join([
        f"## {score_title}, median over seeds",
        "",
        markdown_table(median_rows),
        "",
        f"## {swish} against each baseline: models better / equal / worse",
        "",
        "Medians compared at 0.1 point precision; one-sided paired sign test over models, "
        f"ties dropped, alpha = {alpha}.",
        "",
        markdown_table(comparison_rows),
        "",
    ])
    return markdown, median_rows, comparison_rows


def write_tables(run_dir: str, records: Sequence[RunRecord], models: Sequence[str],
                 activations: Sequence[str], swish: str = SWISH, alpha: float = 0.05,
                 score_title: str = ACCURACY_TITLE) -> str:
    """Write results.md, medians.csv, comparison.csv and runs.csv into run_dir.

    Returns:
      The Markdown text.
    """
    markdown, median_rows, comparison_rows = format_tables(records, models, activations, swish,
                                                           alpha, score_title)
    with open(os.path.join(run_dir, "results.md"), "w") as f:
        f.write(markdown)
    for name, rows in (("medians.csv", median_rows), ("comparison.csv", comparison_rows)):
        with open(os.path.join(run_dir, name), "w", newline="") as f:
            csv.writer(f).writerows(rows)
    with open(os.path.join(run_dir, "runs.csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([field.name for field in dataclasses.fields(RunRecord)])
        writer.writerows(dataclasses.astuple(record) for record in records)
    return markdown


def merge_run_dirs(run_dirs: Sequence[str], output_dir: str,
                   activations: Sequence[str] = swish_tf.BENCHMARK_ACTIVATIONS,
                   swish: str = SWISH, alpha: float = 0.05) -> str:
    """Write the tables over the finished runs of several run directories into output_dir.

    The sign test of "Searching for Activation Functions" counts models across experiments
    (CIFAR-10 and CIFAR-100, several architectures), which this project runs as one run
    directory per Gin file. Each directory contributes the runs of the config in its
    config.gin, so stale runs of an edited config stay out. Model names must differ between
    directories; the CIFAR configs name them with the dataset, e.g. "ResNet-164 C100".

    Raises:
      FileNotFoundError: a directory has no config.gin or no run store.
      ValueError: a directory has no runs of its config, two directories report the same
        model name, or they report different score titles (accuracy and BLEU do not belong
        in one table).
    """
    records: list[RunRecord] = []
    models: list[str] = []
    titles: dict[str, str] = {}
    for run_dir in run_dirs:
        config_path = os.path.join(run_dir, "config.gin")
        store_path = os.path.join(run_dir, DATABASE_NAME)
        for path in (config_path, store_path):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} not found: {run_dir} is not a benchmark run "
                                        "directory, or its first run has not started yet.")
        with open(config_path) as f:
            config_str = f.read()
        config_hash = hash_config(config_str)
        titles[run_dir] = _score_title(config_str)
        if len(set(titles.values())) > 1:
            raise ValueError(f"The run directories score different metrics ({titles}); merge "
                             "only directories with the same run_benchmark.score_title.")
        store = RunStore(store_path)
        try:
            dir_records = store.records(config_hash)
        finally:
            store.close()
        if not dir_records:
            raise ValueError(f"{config_path} matches no run in {store_path}: the last command in "
                             f"{run_dir} changed the config and trained nothing. Rerun the "
                             "benchmark there with the config of its finished runs, or leave "
                             "the directory out.")
        dir_models = list(dict.fromkeys(record.model for record in dir_records))
        repeated = sorted(set(dir_models) & set(models))
        if repeated:
            raise ValueError(f"Model names {repeated} of {run_dir} also appear in an earlier run "
                             "directory; give each experiment distinct model names in "
                             "run_benchmark.models.")
        models += dir_models
        records += dir_records
    os.makedirs(output_dir, exist_ok=True)
    return write_tables(output_dir, records, models, activations, swish, alpha,
                        score_title=titles[run_dirs[0]] if run_dirs else ACCURACY_TITLE)


def _score_title(config_str: str) -> str:
    """Return the run_benchmark.score_title bound in a config.gin text, or the default."""
    match = re.search(r"^run_benchmark\.score_title = (.+)$", config_str, re.MULTILINE)
    return ast.literal_eval(match.group(1)) if match else ACCURACY_TITLE


# ----------------------------------------------------------------------------------------------
# The driver.


@gin.configurable(denylist=["run_dir", "data_dir", "strategy"])
def run_benchmark(run_dir: str, data_dir: str, strategy=None, *,
                  models: Mapping[str, Callable[..., keras.Model]] = gin.REQUIRED,
                  activations: Sequence[str] = swish_tf.BENCHMARK_ACTIVATIONS,
                  seeds: Sequence[int] = (0, 1, 2, 3, 4),
                  data_fn: Callable[..., Any] = cifar_data,
                  trainer: Callable[..., RunResult] = train_image_classifier,
                  score_title: str = ACCURACY_TITLE,
                  alpha: float = 0.05) -> str:
    """Train every (model, activation, seed) of the grid that has not finished yet.

    Args:
      run_dir: directory for the run store, the per-run checkpoints and the tables.
      data_dir: dataset directory, passed to `data_fn`.
      strategy: `tf.distribute` strategy for every run; None means the default.
      models: {display name: builder}. `train_image_classifier` calls a builder as
        builder(activation=..., num_classes=...) for a logits model, `train_translator` as
        builder(vocab_size, activation=...) for a Transformer.
      activations: activation specs (registry names or expressions) in table order.
      seeds: seeds of weight initialization, shuffling and augmentation.
      data_fn: called as data_fn(data_dir, seed) once per seed; its result goes to `trainer`.
        `cifar_data` and `imagenet_benchmark_data` suit `train_image_classifier`,
        `translation_data_dir` suits `train_translator`.
      trainer: called as trainer(model_dir, builder, activation, seed, data, strategy) for
        each run and returns a `RunResult`.
      score_title: heading of the median table, naming the trainer's score.
      alpha: significance level of the sign test.

    Returns:
      The Markdown tables, also written to run_dir/results.md.

    Raises:
      ValueError: for an empty grid or a name that `swish_tf.get_activation` rejects. A run
        that fails in training (for example a NaN loss) is recorded as failed instead.
    """
    if not models or not activations or not seeds:
        raise ValueError("The benchmark grid is empty: set run_benchmark.models, .activations "
                         f"and .seeds (received {len(models)} models, {len(activations)} "
                         f"activations, {len(seeds)} seeds).")
    for activation in activations:
        swish_tf.get_activation(activation)  # Raises on a bad name before any training.
    os.makedirs(run_dir, exist_ok=True)
    config_hash = hash_config(gin.config_str())
    store = RunStore(os.path.join(run_dir, DATABASE_NAME))
    logging.info("Benchmark in %s, config hash %s: %d models x %d activations x %d seeds.",
                 run_dir, config_hash, len(models), len(activations), len(seeds))

    def tables() -> str:
        return write_tables(run_dir, store.records(config_hash), list(models), list(activations),
                            alpha=alpha, score_title=score_title)

    try:
        for seed in seeds:
            data = None  # Loaded on the first run of this seed that is not finished.
            for model_name, builder in models.items():
                for activation in activations:
                    existing = store.get(model_name, activation, seed, config_hash)
                    if existing and existing.status == "finished":
                        logging.info("Skipping finished run %s / %s / seed %d.", model_name,
                                     activation, seed)
                        continue
                    if data is None:
                        data = data_fn(data_dir, seed)
                    _train_one(store, run_dir, config_hash, model_name, builder, activation,
                               seed, data, strategy, trainer)
                    tables()
        markdown = tables()
    finally:
        store.close()
    return markdown


def _train_one(store: RunStore, run_dir: str, config_hash: str, model_name: str,
               builder: Callable[..., keras.Model], activation: str, seed: int, data: Any,
               strategy, trainer: Callable[..., RunResult]) -> None:
    """Train one run and record it as finished or failed."""
    model_dir = os.path.join(run_dir, config_hash, run_directory_name(model_name),
                             run_directory_name(activation), f"seed_{seed}")
    logging.info("Run %s / %s / seed %d in %s.", model_name, activation, seed, model_dir)
    store.put(RunRecord(model_name, activation, seed, config_hash, "running"))
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    try:
        result = trainer(model_dir, builder, activation, seed, data, strategy)
    except (ValueError, ArithmeticError) as e:
        # A diverging candidate is a result, not a crash of the benchmark.
        logging.error("Run %s / %s / seed %d failed: %s", model_name, activation, seed, e)
        store.put(RunRecord(model_name, activation, seed, config_hash, "failed",
                            error=str(e)[:2000]))
        return
    store.put(RunRecord(model_name, activation, seed, config_hash, "finished",
                        test_score=result.test_score, test_loss=result.test_loss,
                        steps=result.steps, train_seconds=result.train_seconds))
    logging.info("Run %s / %s / seed %d: test score %.4f after %d steps (%.0f s of training).",
                 model_name, activation, seed, result.test_score, result.steps,
                 result.train_seconds)
    config_path = os.path.join(model_dir, "operative_config.gin")
    if not os.path.exists(config_path):  # The translation trainer writes its own.
        with open(config_path, "w") as f:
            f.write(gin.operative_config_str())
