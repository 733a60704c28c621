"""Train one child network with a candidate activation and report its validation accuracy.

"Searching for Activation Functions" scores each candidate activation by the validation
accuracy of a ResNet-20 trained on CIFAR-10 for 10,000 steps. The paper does not give the
optimizer, so the defaults here are those of He et al. (2016) for CIFAR: SGD with momentum 0.9,
batch 128, learning rate 0.1, weight decay 1e-4, here with cosine decay to 0 over the run.

Search workers are long-lived processes: they call `configure_threads` once at startup, load
the data once, then call `train_child` for many candidates. `train_child` never raises for a
bad candidate. A malformed or untrainable expression, a loss that turns NaN or infinite, a
wall-clock limit and any other exception in training each end in a `ChildResult` with a
status, reward 0 and only finite numbers.
"""

import collections
import dataclasses
import json
import math
import time
from typing import Any

from absl import logging
import gin
import keras
import numpy as np
import tensorflow as tf

from models import resnet_cifar
import swish_tf
from swish_tf.data import cifar

STATUSES = ("ok", "diverged", "invalid", "timeout", "error")
PRECISIONS = ("float32", "mixed_bfloat16")
SCHEDULES = ("cosine", "step", "constant")
STRATEGIES = ("default", "one_device", "mirrored", "tpu")
CLOCKS = {"wall": time.perf_counter, "process": time.process_time}

# `train_loss` is the mean cross-entropy over the final steps of training, at most this many.
_TRAIN_LOSS_WINDOW = 100
_LOG_EVERY_STEPS = 500


@dataclasses.dataclass
class ChildResult:
    """Outcome of training one child network; the search stores these fields.

    Attributes:
      activation: the activation spec as given to `train_child`.
      status: "ok", "diverged" (the loss or the logits became NaN or infinite), "invalid"
        (the spec is malformed or unknown, or fails `swish_tf.check_expression`), "timeout"
        (the wall-clock limit passed) or "error" (any other exception).
      reason: empty when ok; otherwise what happened, in words.
      val_accuracy: accuracy on the validation split in [0, 1]; None unless measured and finite.
      train_loss: mean training cross-entropy (without weight decay) over the last steps, at
        most 100; None if none ran or it is not finite.
      steps: optimizer steps run.
      images_per_sec: training throughput after the first loop call, which includes tracing
        (or of the first call, if no other ran).
      wall_time_s: seconds from the call of `train_child` to its return.
      seed: the seed of the run.
    """

    activation: str
    status: str
    reason: str
    val_accuracy: float | None
    train_loss: float | None
    steps: int
    images_per_sec: float
    wall_time_s: float
    seed: int

    @property
    def reward(self) -> float:
        """Validation accuracy if the child trained normally, else 0."""
        if self.status == "ok" and self.val_accuracy is not None:
            return self.val_accuracy
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as plain Python values, with every non-finite float as None."""
        return {field.name: _finite_or_none(getattr(self, field.name))
                for field in dataclasses.fields(self)}

    def to_json(self) -> str:
        """Return one line of strict JSON (no NaN or Infinity tokens)."""
        return json.dumps(self.to_dict(), allow_nan=False, sort_keys=False)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ChildResult":
        """Rebuild a result from `to_dict` output (e.g. parsed from `to_json`)."""
        return cls(**values)


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# ----------------------------------------------------------------------------------------------
# Process setup: threads and distribution strategy.


@gin.configurable
def configure_threads(intra_op_threads: int = 0, inter_op_threads: int = 0) -> None:
    """Set TensorFlow's thread pools; call once per process before TensorFlow runs any op.

    Args:
      intra_op_threads: threads that one op (a convolution, a matmul) may use; 0 lets
        TensorFlow choose (all cores).
      inter_op_threads: threads that run independent ops in parallel; 0 lets TensorFlow choose.

    Raises:
      RuntimeError: TensorFlow already ran an op with other thread settings.
    """
    if intra_op_threads < 0 or inter_op_threads < 0:
        raise ValueError(f"Thread counts must be >= 0; received intra_op_threads="
                         f"{intra_op_threads}, inter_op_threads={inter_op_threads}.")
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    except RuntimeError as e:
        raise RuntimeError(
            f"Cannot set TensorFlow threads to intra_op={intra_op_threads}, "
            f"inter_op={inter_op_threads}: TensorFlow has already run an op ({e}). Call "
            "configure_threads at process start, before loading data or building models.") from e
    logging.info("TensorFlow threads: intra_op=%d, inter_op=%d (0 = TensorFlow's choice)",
                 intra_op_threads, inter_op_threads)


_STRATEGY_CACHE: dict[tuple[str, str | None], tf.distribute.Strategy] = {}


@gin.configurable(denylist=["kind"])
def get_strategy(kind: str = "default", *, device: str | None = None,
                 tpu_address: str | None = None) -> tf.distribute.Strategy:
    """Return a `tf.distribute` strategy, created once per process and kind.

    Args:
      kind: "default" (no distribution: the current device), "one_device" (`device`, or the
        first GPU, else the CPU), "mirrored" (all local GPUs) or "tpu".
      device: device of "one_device", e.g. "/gpu:0".
      tpu_address: TPU name or grpc address for "tpu"; None lets the cluster resolver find it
        (as on Cloud TPU VMs).
    """
    if kind not in STRATEGIES:
        raise ValueError(f"Unknown strategy {kind!r}; expected one of {STRATEGIES}.")
    key = (kind, device or tpu_address)
    if key in _STRATEGY_CACHE:
        return _STRATEGY_CACHE[key]
    if kind == "default":
        strategy = tf.distribute.get_strategy()
    elif kind == "one_device":
        if device is None:
            device = "/gpu:0" if tf.config.list_logical_devices("GPU") else "/cpu:0"
        strategy = tf.distribute.OneDeviceStrategy(device)
    elif kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        # NOTE: the TPU path follows the TensorFlow TPU guide but has not run on a TPU here.
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy = tf.distribute.TPUStrategy(resolver)
    logging.info("Strategy %s with %d replicas", type(strategy).__name__,
                 strategy.num_replicas_in_sync)
    _STRATEGY_CACHE[key] = strategy
    return strategy


# ----------------------------------------------------------------------------------------------
# Training one child.


def _learning_rate(schedule: str, learning_rate: float, train_steps: int, warmup_steps: int):
    if schedule == "constant":
        return learning_rate
    if schedule == "step":
        # He et al. divide the rate by 10 at 32k and 48k of 64k steps: at 50% and 75%.
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            [train_steps // 2, train_steps * 3 // 4],
            [learning_rate, learning_rate / 10, learning_rate / 100])
    if warmup_steps:
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(train_steps - warmup_steps, 1), warmup_target=learning_rate,
            warmup_steps=warmup_steps)
    return keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=train_steps)


class _Diverged(Exception):
    pass


def _validity_failure(activation: Any) -> str:
    """Return why an expression string cannot train (see `swish_tf.check_expression`), or ""."""
    if not isinstance(activation, str):
        return ""
    if activation.strip().lower() in swish_tf.BENCHMARK_ACTIVATIONS:
        return ""
    validity = swish_tf.check_expression(swish_tf.parse_expression(activation))
    if validity.valid:
        return ""
    return f"fails the validity check: {validity.reason}"


class _Timeout(Exception):
    pass


@gin.configurable(denylist=["activation", "data", "seed"])
def train_child(activation: Any, data: cifar.CifarSplits, *, seed: int = 0,
                model: str = "resnet20", train_steps: int = 10_000, batch_size: int = 128,
                learning_rate: float = 0.1, schedule: str = "cosine", warmup_steps: int = 0,
                momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 1e-4,
                steps_per_loop: int = 10, eval_batch_size: int = 500,
                max_validation_examples: int | None = None, time_limit_s: float | None = None,
                jit_compile: bool = False, precision: str = "float32",
                strategy: str = "default", data_threads: int | None = None,
                check_validity: bool = True, throughput_clock: str = "wall") -> ChildResult:
    """Train a CIFAR ResNet with `activation` at every nonlinearity; score it on validation.

    Resets the Keras session and seeds Python, NumPy and TensorFlow at the start, so the same
    arguments give the same run (up to nondeterministic kernels on accelerators).

    Args:
      activation: a spec for `swish_tf.get_activation`: a registry name or an expression string
        such as "x * sigmoid(beta * x)".
      data: loaded splits; train on `train_*`, score on `validation_*`.
      seed: seed of initialization, shuffling and augmentation.
      model: a variant of `models.resnet_cifar.VARIANTS`.
      train_steps: optimizer steps (10,000 in "Searching for Activation Functions").
      batch_size: global batch size, divided among replicas.
      learning_rate: peak learning rate.
      schedule: "cosine" (to 0 at `train_steps`), "step" (divide by 10 at 50% and 75% of the
        steps, as He et al.) or "constant".
      warmup_steps: linear warmup from 0 (cosine schedule only).
      momentum, nesterov: SGD momentum.
      weight_decay: L2 coefficient on kernels, in the SGD convention (gradient += wd * w).
      steps_per_loop: steps per call of the compiled training loop. The loss is checked for NaN
        and infinity, and the time limit, after each call, so a diverged child stops within
        this many steps.
      eval_batch_size: batch size of validation.
      max_validation_examples: score on the first this many validation images only (for
        tests); None uses all of them.
      time_limit_s: wall-clock limit for the whole call; past it the child stops with status
        "timeout". None for no limit.
      jit_compile: compile each training step with XLA.
      precision: "float32" or "mixed_bfloat16" (bfloat16 compute, float32 weights and logits).
      strategy: a `tf.distribute` strategy kind for `get_strategy`.
      data_threads: size of the tf.data thread pools; None for tf.data's default.
      check_validity: before training, run `swish_tf.check_expression` on an expression
        string and report status "invalid" if its values or gradients cannot train (for
        example a constant output or a NaN gradient on typical inputs).
      throughput_clock: clock of `images_per_sec`: "wall" (elapsed time) or "process" (CPU
        time of all threads of this process). With one TensorFlow thread, the process clock
        approximates the speed on an unshared core even when other processes share the CPU.

    Returns:
      The `ChildResult`. This function does not raise for bad candidates or failed training.

    Raises:
      ValueError: a hyperparameter is out of range (a configuration error, not a bad
        candidate).
    """
    start = time.perf_counter()
    _check_hyperparameters(train_steps=train_steps, batch_size=batch_size,
                           learning_rate=learning_rate, schedule=schedule,
                           warmup_steps=warmup_steps, steps_per_loop=steps_per_loop,
                           eval_batch_size=eval_batch_size, precision=precision, model=model,
                           time_limit_s=time_limit_s, throughput_clock=throughput_clock)
    spec = activation if isinstance(activation, str) else repr(activation)
    progress = {"steps": 0, "images_per_sec": 0.0, "train_loss": None}

    def result(status: str, reason: str = "", val_accuracy: float | None = None) -> ChildResult:
        record = ChildResult(
            activation=spec, status=status, reason=reason,
            val_accuracy=_finite_or_none(val_accuracy),
            train_loss=_finite_or_none(progress["train_loss"]), steps=progress["steps"],
            images_per_sec=float(progress["images_per_sec"]),
            wall_time_s=time.perf_counter() - start, seed=seed)
        logging.info("Child %r: status=%s val_accuracy=%s steps=%d %.0f images/s %.1f s %s",
                     spec, record.status, record.val_accuracy, record.steps,
                     record.images_per_sec, record.wall_time_s, record.reason)
        return record

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    try:
        swish_tf.get_activation(activation)
    except (ValueError, TypeError) as e:
        return result("invalid", f"{type(e).__name__}: {e}")
    if check_validity:
        reason = _validity_failure(activation)
        if reason:
            return result("invalid", reason)

    try:
        val_accuracy = _train_and_evaluate(
            activation, data, progress, seed=seed, model_name=model, train_steps=train_steps,
            batch_size=batch_size, learning_rate=learning_rate, schedule=schedule,
            warmup_steps=warmup_steps, momentum=momentum, nesterov=nesterov,
            weight_decay=weight_decay, steps_per_loop=steps_per_loop,
            eval_batch_size=eval_batch_size, max_validation_examples=max_validation_examples,
            deadline=None if time_limit_s is None else start + time_limit_s,
            time_limit_s=time_limit_s,
            jit_compile=jit_compile, precision=precision, strategy_kind=strategy,
            data_threads=data_threads, clock=CLOCKS[throughput_clock])
    except _Diverged as e:
        return result("diverged", str(e))
    except _Timeout as e:
        return result("timeout", str(e))
    except Exception as e:  # pylint: disable=broad-except
        # A search must survive any failure of one child, so record it instead of raising.
        logging.exception("Child %r failed", spec)
        return result("error", f"{type(e).__name__}: {e}")
    return result("ok", val_accuracy=val_accuracy)


def _check_hyperparameters(*, train_steps, batch_size, learning_rate, schedule, warmup_steps,
                           steps_per_loop, eval_batch_size, precision, model, time_limit_s,
                           throughput_clock) -> None:
    for name, value in (("train_steps", train_steps), ("batch_size", batch_size),
                        ("steps_per_loop", steps_per_loop), ("eval_batch_size", eval_batch_size)):
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer; received {value!r}.")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive; received {learning_rate!r}.")
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown schedule {schedule!r}; expected one of {SCHEDULES}.")
    if warmup_steps and (schedule != "cosine" or not 0 < warmup_steps < train_steps):
        raise ValueError(f"warmup_steps must be in (0, train_steps) and needs the cosine "
                         f"schedule; received warmup_steps={warmup_steps}, schedule={schedule!r}, "
                         f"train_steps={train_steps}.")
    if throughput_clock not in CLOCKS:
        raise ValueError(f"Unknown throughput_clock {throughput_clock!r}; expected one of "
                         f"{tuple(CLOCKS)}.")
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; expected one of {PRECISIONS}.")
    if model not in resnet_cifar.VARIANTS:
        raise ValueError(f"Unknown model {model!r}; expected one of "
                         f"{sorted(resnet_cifar.VARIANTS)}.")
    if time_limit_s is not None and not time_limit_s > 0:
        raise ValueError(f"time_limit_s must be positive or None; received {time_limit_s!r}.")


def _build_model(activation, *, model_name: str, num_classes: int, weight_decay: float,
                 precision: str) -> keras.Model:
    # Layers take the global dtype policy when they are created, so the policy needs to hold
    # only while building. Restoring it keeps the next child of a worker in float32.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        return resnet_cifar.build_variant(model_name, activation=activation,
                                          num_classes=num_classes, weight_decay=weight_decay)
    finally:
        keras.config.set_dtype_policy(previous)


def _train_and_evaluate(activation, data: cifar.CifarSplits, progress: dict[str, Any], *,
                        seed, model_name, train_steps, batch_size, learning_rate, schedule,
                        warmup_steps, momentum, nesterov, weight_decay, steps_per_loop,
                        eval_batch_size, max_validation_examples, deadline, time_limit_s,
                        jit_compile, precision, strategy_kind, data_threads, clock) -> float:
    """Run training, then validation; update `progress` in place; return the accuracy.

    Raises:
      _Diverged: the loss or the validation logits are not finite.
      _Timeout: `deadline` (a `time.perf_counter` value) passed.
    """
    strategy = get_strategy(strategy_kind)
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas or eval_batch_size % replicas:
        raise ValueError(f"batch_size {batch_size} and eval_batch_size {eval_batch_size} must be "
                         f"divisible by the {replicas} replicas.")

    logging.info(
        "Training child %r: %s, %d steps of batch %d, lr %g (%s, warmup %d), momentum %g, "
        "weight decay %g, %s, jit_compile=%s, seed %d", activation, model_name, train_steps,
        batch_size, learning_rate, schedule, warmup_steps, momentum, weight_decay, precision,
        jit_compile, seed)
    with strategy.scope():
        model = _build_model(activation, model_name=model_name, num_classes=data.num_classes,
                             weight_decay=weight_decay, precision=precision)
        optimizer = keras.optimizers.SGD(
            learning_rate=_learning_rate(schedule, learning_rate, train_steps, warmup_steps),
            momentum=momentum, nesterov=nesterov)
        optimizer.build(model.trainable_variables)

    train_dataset = cifar.make_dataset(
        data.train_images, data.train_labels, batch_size=batch_size, training=True,
        mean=data.channel_mean, std=data.channel_std, seed=seed, threads=data_threads)
    iterator = iter(strategy.experimental_distribute_dataset(train_dataset))

    def train_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels, tf.cast(logits, tf.float32))
            # Sum over the replica's examples / global batch: the replicas' gradients add up.
            loss = tf.reduce_sum(cross_entropy) / batch_size
            total_loss = loss
            if model.losses:
                total_loss += tf.add_n(model.losses) / replicas
        gradients = tape.gradient(total_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    if jit_compile:
        train_step = tf.function(train_step, jit_compile=True)

    @tf.function
    def train_loop(iterator, num_steps):
        # Sum of the per-step losses; NaN or infinity in any step makes the sum non-finite.
        loss_sum = tf.constant(0.0, tf.float32)
        for _ in tf.range(num_steps):
            per_replica_loss = strategy.run(train_step, args=next(iterator))
            loss_sum += strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_loss, axis=None)
        return loss_sum

    recent_losses = collections.deque()  # (loss sum, steps) of the last calls.
    loop_start = clock()  # `clock` measures throughput.
    timed_start = None
    timed_steps = 0
    while progress["steps"] < train_steps:
        num_steps = min(steps_per_loop, train_steps - progress["steps"])
        loss_sum = float(train_loop(iterator, tf.constant(num_steps, tf.int32)))
        first_step = progress["steps"] + 1
        progress["steps"] += num_steps
        now = time.perf_counter()
        clock_now = clock()
        if timed_start is None:
            # The first call traces the loop, so later calls measure throughput. Until one
            # ends, the only measure includes the tracing.
            timed_start = clock_now
            progress["images_per_sec"] = num_steps * batch_size / (clock_now - loop_start)
        else:
            timed_steps += num_steps
            progress["images_per_sec"] = timed_steps * batch_size / (clock_now - timed_start)
        if not math.isfinite(loss_sum):
            raise _Diverged(f"training loss became {loss_sum} in steps {first_step}-"
                            f"{progress['steps']} of {train_steps}")
        recent_losses.append((loss_sum, num_steps))
        while sum(n for _, n in recent_losses) - recent_losses[0][1] >= _TRAIN_LOSS_WINDOW:
            recent_losses.popleft()
        progress["train_loss"] = (sum(s for s, _ in recent_losses)
                                  / sum(n for _, n in recent_losses))
        if progress["steps"] // _LOG_EVERY_STEPS > (first_step - 1) // _LOG_EVERY_STEPS:
            logging.info("Step %d of %d: train loss %.4f, %.0f images/s", progress["steps"],
                         train_steps, progress["train_loss"], progress["images_per_sec"])
        if deadline is not None and now > deadline:
            raise _Timeout(f"timed out after {progress['steps']} of {train_steps} steps: "
                           f"{now - deadline + time_limit_s:.1f} s passed the time limit of "
                           f"{time_limit_s:g} s")

    return _evaluate(model, data, strategy, eval_batch_size=eval_batch_size,
                     max_examples=max_validation_examples, data_threads=data_threads)


def _evaluate(model: keras.Model, data: cifar.CifarSplits, strategy: tf.distribute.Strategy, *,
              eval_batch_size: int, max_examples: int | None, data_threads: int | None) -> float:
    """Return the validation accuracy; raise _Diverged if any logit is NaN or infinite."""
    images, labels = data.validation_images, data.validation_labels
    if max_examples is not None:
        images, labels = images[:max_examples], labels[:max_examples]
    dataset = cifar.make_dataset(images, labels, batch_size=eval_batch_size, training=False,
                                 mean=data.channel_mean, std=data.channel_std, pad_to_batch=True,
                                 threads=data_threads)

    def eval_step(images, labels):
        logits = model(images, training=False)
        valid = labels >= 0
        predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
        correct = tf.reduce_sum(tf.cast(valid & (predictions == labels), tf.int64))
        finite = tf.reduce_all(tf.math.is_finite(logits), axis=-1)
        nonfinite = tf.reduce_sum(tf.cast(valid & ~finite, tf.int64))
        return correct, nonfinite

    @tf.function
    def distributed_eval_step(batch):
        correct, nonfinite = strategy.run(eval_step, args=batch)
        return (strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, nonfinite, axis=None))

    total_correct = 0
    total_nonfinite = 0
    for batch in strategy.experimental_distribute_dataset(dataset):
        correct, nonfinite = distributed_eval_step(batch)
        total_correct += int(correct)
        total_nonfinite += int(nonfinite)
    if total_nonfinite:
        raise _Diverged(f"{total_nonfinite} of {len(labels)} validation images got NaN or "
                        "infinite logits")
    return total_correct / len(labels)
