r"""Train a Transformer for English-to-German translation and score it with BLEU.

Usage:
    python -m models.train_translation \
        --gin_file=gin_configs/transformer/multi30k_cpu.gin \
        --gin_param='build_transformer.activation = "swish"' \
        --data_dir=/path/to/multi30k --run_dir=/tmp/runs/multi30k_swish

The run directory receives the SentencePiece vocabulary, checkpoints (a rerun with the same
--run_dir resumes from the latest), TensorBoard scalars, the operative Gin config, the test-set
hypotheses and a row in the SQLite table `runs` of `results.sqlite`.
"""

import datetime
import hashlib
import json
import os
import pathlib
import platform
import sqlite3
import time
from typing import Any, Callable, Sequence

from absl import app
from absl import flags
from absl import logging
import gin
import keras
import numpy as np
import sacrebleu
import tensorflow as tf

from models import transformer
from models import translation_data
from swish_tf import gin_utils

RESULTS_DATABASE = "results.sqlite"


def record_run(database_path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one result row to the SQLite table `runs`, creating the table if needed.

    Columns: created_at (UTC, ISO 8601), model, activation, seed, dataset, split, bleu, steps,
    tokens_per_s (non-padding source plus target tokens per second of training), wall_time_s
    (training, validation and test decoding, summed over resumed runs), gin_config_hash
    (SHA-256 of the operative Gin config) and details (JSON).
    """
    columns = ("model", "activation", "seed", "dataset", "split", "bleu", "steps",
               "tokens_per_s", "wall_time_s", "gin_config_hash", "details")
    with sqlite3.connect(database_path) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "created_at TEXT NOT NULL, model TEXT, activation TEXT, seed INTEGER, dataset TEXT, "
            "split TEXT, bleu REAL, steps INTEGER, tokens_per_s REAL, wall_time_s REAL, "
            "gin_config_hash TEXT, details TEXT)")
        created_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        connection.execute(
            f"INSERT INTO runs (created_at, {', '.join(columns)}) "
            f"VALUES (?, {', '.join('?' for _ in columns)})",
            [created_at] + [row.get(column) for column in columns])


def translate(model, tokenizer, sentences: Sequence[str], beam_size: int, alpha: float,
              batch_size: int) -> list[str]:
    """Translate sentences in length-sorted batches; beam_size 1 means greedy decoding."""
    ids = translation_data.encode(tokenizer, sentences)
    order = np.argsort([len(row) for row in ids], kind="stable")
    hypotheses = [""] * len(ids)
    for start in range(0, len(order), batch_size):
        batch_indices = order[start:start + batch_size]
        source = translation_data.pad_batch(
            [ids[i] + [translation_data.EOS_ID] for i in batch_indices])
        if beam_size == 1:
            output = transformer.greedy_decode(model, source)
        else:
            output = transformer.beam_search(model, source, beam_size, alpha)
        for index, text in zip(batch_indices, translation_data.decode(tokenizer, output)):
            hypotheses[index] = text
    return hypotheses


def compute_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Return corpus BLEU of detokenized text with sacrebleu's defaults (13a tokenization)."""
    return sacrebleu.metrics.BLEU().corpus_score(list(hypotheses), [list(references)]).score


def evaluate_loss(model, dataset, label_smoothing: float) -> float:
    """Return the per-token negative log-likelihood over a finite dataset."""
    nll_total, token_total = 0.0, 0.0
    for inputs, labels in dataset:
        logits = model(inputs, training=False)
        _, nll, tokens = transformer.smoothed_cross_entropy(labels, logits, label_smoothing)
        nll_total += float(nll)
        token_total += float(tokens)
    return nll_total / max(token_total, 1.0)


def restore_checkpoint(path: str, model: transformer.Transformer,
                       optimizer: keras.optimizers.Optimizer,
                       progress: dict[str, tf.Variable]) -> None:
    """Restore the model, optimizer and progress totals from a training checkpoint.

    A checkpoint written before the totals existed restores the model and optimizer and leaves
    the totals as they are, with a warning.
    """
    saved_names = [name for name, _ in tf.train.list_variables(path)]
    if any(name.startswith("progress/") for name in saved_names):
        checkpoint = transformer.make_checkpoint(model, optimizer, progress=progress)
    else:
        logging.warning("%s contains no wall-time and token totals, so the recorded wall time "
                        "and tokens/s count only the training after this restore.", path)
        checkpoint = transformer.make_checkpoint(model, optimizer)
    checkpoint.restore(path).assert_existing_objects_matched()


@gin.configurable("train_translation",
                  denylist=["data_dir", "run_dir", "model_fn", "activation_name"])
def train_and_evaluate(data_dir: str | None, run_dir: str, train_steps: int = 300_000,
                       max_tokens: int = 4096, max_length: int = 256, vocab_size: int = 32_000,
                       label_smoothing: float = 0.1, seed: int = 0, eval_every: int = 1000,
                       checkpoint_every: int = 1000, log_every: int = 100,
                       beam_size: int = 4, alpha: float = 0.6,
                       decode_batch_size: int = 64,
                       model_fn: Callable[[int], transformer.Transformer] | None = None,
                       activation_name: str | None = None) -> dict[str, Any]:
    """Train for `train_steps` updates (resuming from `run_dir`), then score test BLEU.

    Args:
        data_dir, run_dir: see the flags of the same name.
        train_steps: total optimizer updates, including those of earlier runs in `run_dir`.
        max_tokens: padded tokens per batch on the longer side (source or target).
        max_length: training pairs with more subword tokens on either side are dropped.
        vocab_size: joint SentencePiece vocabulary size.
        label_smoothing: mass spread uniformly over the vocabulary in the training loss.
        seed: seed for weight initialization, dropout and data order.
        eval_every: steps between validation loss and greedy validation BLEU.
        checkpoint_every: steps between checkpoints.
        log_every: steps between training-loss and throughput logs.
        beam_size, alpha: beam search on the test set (GNMT length penalty).
        decode_batch_size: sentences per decoding batch.
        model_fn: builds the model from the vocabulary size; None means
            `transformer.build_transformer` as Gin configures it.
        activation_name: the activation recorded with the result; None reads
            `build_transformer.activation` from Gin.

    Returns:
        The recorded result row.
    """
    run_path = pathlib.Path(run_dir)
    run_path.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)

    corpus, (train_split, validation_split, test_split) = translation_data.load_corpus(data_dir)
    train_sources, train_targets = corpus[train_split]
    tokenizer = translation_data.load_or_train_tokenizer(
        run_path, train_sources + train_targets, vocab_size, seed)
    train_dataset = translation_data.make_dataset(
        translation_data.encode(tokenizer, train_sources),
        translation_data.encode(tokenizer, train_targets),
        max_tokens, max_length, shuffle=True, repeat=True, seed=seed)
    validation_sources, validation_targets = corpus[validation_split]
    validation_source_ids = translation_data.encode(tokenizer, validation_sources)
    validation_target_ids = translation_data.encode(tokenizer, validation_targets)
    # Keep every validation pair: the length limit is the longest pair plus EOS.
    validation_max_length = 1 + max(max(len(source), len(target)) for source, target in
                                     zip(validation_source_ids, validation_target_ids))
    validation_dataset = translation_data.make_dataset(
        validation_source_ids, validation_target_ids,
        max(max_tokens, validation_max_length), validation_max_length, shuffle=False)

    model = (model_fn or transformer.build_transformer)(vocab_size)
    if activation_name is None:
        activation_name = _activation_name()
    optimizer = transformer.build_optimizer(model.d_model)
    optimizer.build(model.trainable_variables)
    train_step = transformer.make_train_step(model, optimizer, label_smoothing)
    logging.info("Model %s: %d parameters, activation %s.", model.name, model.count_params(),
                 activation_name)

    # Totals over every run in run_dir, checkpointed so that a resumed run reports the whole
    # training's wall time and throughput. Time between the last checkpoint and an
    # interruption is lost with the steps it trained.
    progress = {name: tf.Variable(0.0, dtype=tf.float64, trainable=False, name=name)
                for name in ("wall_seconds", "train_seconds", "tokens")}
    checkpoint = transformer.make_checkpoint(model, optimizer, progress=progress)
    manager = tf.train.CheckpointManager(checkpoint, run_path / "checkpoints", max_to_keep=2)
    if manager.latest_checkpoint:
        restore_checkpoint(manager.latest_checkpoint, model, optimizer, progress)
        logging.info("Resumed from %s at step %d.", manager.latest_checkpoint,
                     int(optimizer.iterations))
        # NOTE: the shuffle state is not checkpointed, so the data order after a resume
        # differs from an uninterrupted run. The shuffle seed is offset by the step.
        train_dataset = translation_data.make_dataset(
            translation_data.encode(tokenizer, train_sources),
            translation_data.encode(tokenizer, train_targets),
            max_tokens, max_length, shuffle=True, repeat=True,
            seed=seed + int(optimizer.iterations))

    writer = tf.summary.create_file_writer(str(run_path / "tensorboard"))
    operative_config_path = run_path / "operative_config.gin"
    start_step = int(optimizer.iterations)
    earlier_wall_seconds = float(progress["wall_seconds"])
    segment_start = time.perf_counter()

    def wall_seconds() -> float:
        return earlier_wall_seconds + time.perf_counter() - segment_start

    window_seconds, window_tokens = 0.0, 0.0
    iterator = iter(train_dataset)
    step = start_step
    while step < train_steps:
        step_start = time.perf_counter()
        (source, target_input), labels = next(iterator)
        metrics = train_step((source, target_input), labels)
        step = int(optimizer.iterations)
        # Reading the counts waits for the step to finish, so the step time is complete.
        batch_tokens = float(tf.math.count_nonzero(source)) + float(metrics["target_tokens"])
        step_seconds = time.perf_counter() - step_start
        if step == start_step + 1:
            operative_config_path.write_text(gin.operative_config_str())
        else:
            # The first step of each process traces the train step, so it is left out of
            # the throughput.
            window_seconds += step_seconds
            window_tokens += batch_tokens
            progress["train_seconds"].assign_add(step_seconds)
            progress["tokens"].assign_add(batch_tokens)
        if not np.isfinite(float(metrics["loss"])):
            raise FloatingPointError(
                f"Training loss is {float(metrics['loss'])} at step {step}. Lower "
                "build_optimizer.learning_rate_scale or raise warmup_steps.")
        if step % log_every == 0 or step == train_steps:
            tokens_per_s = window_tokens / window_seconds if window_seconds else float("nan")
            learning_rate = float(optimizer.learning_rate)
            logging.info("step %d: loss %.4f, nll %.4f, lr %.2e, %.0f tokens/s", step,
                         float(metrics["loss"]), float(metrics["nll"]), learning_rate,
                         tokens_per_s)
            with writer.as_default(step=step):
                tf.summary.scalar("losses/train_smoothed", metrics["loss"])
                tf.summary.scalar("losses/train_nll", metrics["nll"])
                tf.summary.scalar("optimizer/learning_rate", learning_rate)
                if window_seconds:
                    tf.summary.scalar("throughput/tokens_per_s", tokens_per_s)
            window_seconds, window_tokens = 0.0, 0.0
        if step % checkpoint_every == 0 or step == train_steps:
            progress["wall_seconds"].assign(wall_seconds())
            manager.save(checkpoint_number=step)
        if step % eval_every == 0 or step == train_steps:
            validation_nll = evaluate_loss(model, validation_dataset, label_smoothing)
            hypotheses = translate(model, tokenizer, validation_sources, 1, alpha,
                                   decode_batch_size)
            validation_bleu = compute_bleu(hypotheses, validation_targets)
            logging.info("step %d: validation nll %.4f, greedy BLEU %.2f", step, validation_nll,
                         validation_bleu)
            with writer.as_default(step=step):
                tf.summary.scalar("losses/validation_nll", validation_nll)
                tf.summary.scalar("bleu/validation_greedy", validation_bleu)
            writer.flush()

    test_sources, test_targets = corpus[test_split]
    hypotheses = translate(model, tokenizer, test_sources, beam_size, alpha, decode_batch_size)
    bleu_metric = sacrebleu.metrics.BLEU()
    test_bleu = bleu_metric.corpus_score(hypotheses, [test_targets]).score
    (run_path / f"{test_split}.hyp.de").write_text("\n".join(hypotheses) + "\n",
                                                   encoding="utf-8")
    logging.info("%s BLEU (beam %d, alpha %.1f): %.2f", test_split, beam_size, alpha, test_bleu)
    with writer.as_default(step=step):
        tf.summary.scalar("bleu/test_beam", test_bleu)
    writer.flush()

    if not operative_config_path.exists():  # No training step ran in this process.
        operative_config_path.write_text(gin.operative_config_str())
    operative_config = operative_config_path.read_text()
    row = {
        "model": model.name,
        "activation": activation_name,
        "seed": seed,
        "dataset": gin.query_parameter("load_corpus.dataset")
        if _is_bound("load_corpus.dataset") else "multi30k",
        "split": test_split,
        "bleu": test_bleu,
        "steps": step,
        "tokens_per_s": (float(progress["tokens"]) / float(progress["train_seconds"])
                         if float(progress["train_seconds"]) else None),
        "wall_time_s": wall_seconds(),
        "gin_config_hash": hashlib.sha256(operative_config.encode("utf-8")).hexdigest(),
        "details": json.dumps({
            "parameters": model.count_params(), "beam_size": beam_size, "alpha": alpha,
            "resumed_from_step": start_step, "train_seconds": float(progress["train_seconds"]),
            "tokens": float(progress["tokens"]), "tensorflow": tf.__version__,
            "keras": keras.__version__, "sacrebleu": sacrebleu.__version__,
            "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "bleu_signature": str(bleu_metric.get_signature())}),
    }
    record_run(run_path / RESULTS_DATABASE, row)
    logging.info("Recorded %s in %s.", {k: v for k, v in row.items() if k != "details"},
                 run_path / RESULTS_DATABASE)
    return row


def _is_bound(name: str) -> bool:
    try:
        gin.query_parameter(name)
    except ValueError:
        return False
    return True


def _activation_name() -> str:
    if not _is_bound("build_transformer.activation"):
        return "relu"
    return str(gin.query_parameter("build_transformer.activation"))


def _define_flags() -> None:
    """Define the command-line flags.

    Called only when the module runs as a program, so importing it next to other entry points,
    as the tests do, defines no duplicate flags.
    """
    flags.DEFINE_multi_string("gin_file", [], "Gin config files, applied in order.")
    flags.DEFINE_multi_string(
        "gin_param", [], "Gin bindings applied after the files, e.g. "
        "'build_transformer.activation = \"swish\"'.")
    flags.DEFINE_string(
        "data_dir", None, "For multi30k: the directory with train/val/test_2016_flickr .en.gz "
        "and .de.gz files. For wmt14: the tensorflow-datasets data directory (default: tfds's "
        "own).")
    flags.DEFINE_string("run_dir", None, "Directory for checkpoints, logs and results.")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    if not values.run_dir:
        raise app.UsageError("--run_dir is required.")
    try:
        gin_utils.parse_gin(values.gin_file, values.gin_param)
    except gin_utils.GinConfigError as error:
        raise app.UsageError(str(error)) from error
    logging.info("Gin config:\n%s", gin.config_str())
    train_and_evaluate(values.data_dir, values.run_dir)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
