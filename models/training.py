"""Train and evaluate an image classifier: the loop shared by the benchmark models.

The loop is generic: it takes a model builder, a (train, eval) dataset pair, an optimizer factory
and a learning-rate schedule factory, all bindable in Gin, and adds what long runs need:

- a `tf.distribute` strategy chosen by name (`make_strategy`),
- an L2 weight penalty added to the loss, as in the Torch code of the CIFAR papers,
- checkpoints every `checkpoint_every_steps` steps. A rerun with the same `model_dir` restores
  the latest one and continues from its step, so a killed run loses at most that many steps,
- TensorBoard summaries under `model_dir/tensorboard/{train,eval}`,
- a `keras.utils.Progbar` progress bar.

Schedules are written in epochs, as the papers state them, and converted to steps with
`steps_per_epoch = ceil(train_examples / batch_size)`.
"""

import math
import os
import time
from typing import Callable, Sequence

from absl import logging
import gin
import keras
import numpy as np
import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def make_strategy(name: str = "default", tpu_address: str = "") -> tf.distribute.Strategy:
    """Create the `tf.distribute` strategy called `name`.

    Args:
      name: "default" (one device, no distribution), "mirrored" (all local GPUs, or all logical
        devices of one kind), "multi_worker" (synchronous training across the machines listed in
        the TF_CONFIG environment variable) or "tpu".
      tpu_address: TPU name or grpc address for "tpu"; empty means the local or Cloud TPU that
        `TPUClusterResolver` finds by itself.

    Raises:
      ValueError: for an unknown name.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown distribution strategy {name!r}; use one of {STRATEGIES}.")


# Optimizers. Each factory takes the learning rate (a float or a schedule) from the loop and
# everything else from Gin.


@gin.configurable(denylist=["learning_rate"])
def sgd(learning_rate, momentum: float = 0.9, nesterov: bool = False) -> keras.optimizers.Optimizer:
    """Create SGD with momentum, the optimizer of the CIFAR papers."""
    return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov)


@gin.configurable(denylist=["learning_rate"])
def rmsprop(learning_rate, rho: float = 0.9, momentum: float = 0.9,
            epsilon: float = 1.0) -> keras.optimizers.Optimizer:
    """Create RMSProp; the defaults are those of the Inception papers (epsilon 1.0)."""
    return keras.optimizers.RMSprop(learning_rate=learning_rate, rho=rho, momentum=momentum,
                                    epsilon=epsilon)


# Learning-rate schedules. Each factory gets `total_steps` and `steps_per_epoch` from the loop.


@gin.configurable(denylist=["total_steps", "steps_per_epoch"])
def piecewise_constant(total_steps: int, steps_per_epoch: int, *,
                       initial_learning_rate: float = 0.1,
                       boundary_epochs: Sequence[float] = (),
                       boundary_fractions: Sequence[float] = (),
                       decay_factor: float = 0.1) -> keras.optimizers.schedules.LearningRateSchedule:
    """Multiply the learning rate by `decay_factor` at each boundary.

    Boundaries are given either in epochs (`boundary_epochs`, e.g. (81, 122) for ResNet-164) or as
    fractions of the whole run (`boundary_fractions`, e.g. (0.5, 0.75) for DenseNet), not both.
    """
    if boundary_epochs and boundary_fractions:
        raise ValueError("Set boundary_epochs or boundary_fractions, not both; received "
                         f"{tuple(boundary_epochs)} and {tuple(boundary_fractions)}.")
    if boundary_epochs:
        boundaries = [int(round(epoch * steps_per_epoch)) for epoch in boundary_epochs]
    else:
        boundaries = [int(round(fraction * total_steps)) for fraction in boundary_fractions]
    if boundaries != sorted(boundaries) or len(set(boundaries)) != len(boundaries):
        raise ValueError(f"Learning-rate boundaries must increase strictly; received {boundaries} "
                         "steps.")
    if not boundaries:
        return keras.optimizers.schedules.PiecewiseConstantDecay([total_steps + 1],
                                                                 [initial_learning_rate] * 2)
    values = [initial_learning_rate * decay_factor**i for i in range(len(boundaries) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


@gin.configurable(denylist=["total_steps", "steps_per_epoch"])
def cosine(total_steps: int, steps_per_epoch: int, *, initial_learning_rate: float = 0.1,
           warmup_steps: int = 0) -> keras.optimizers.schedules.LearningRateSchedule:
    """Decay the learning rate to 0 along a half cosine, after an optional linear warmup."""
    del steps_per_epoch  # The cosine spans the whole run.
    if warmup_steps >= total_steps:
        raise ValueError(f"warmup_steps={warmup_steps} must be below the run's {total_steps} "
                         "steps.")
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else initial_learning_rate,
        decay_steps=total_steps - warmup_steps,
        warmup_target=initial_learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps)


@gin.configurable(denylist=["total_steps", "steps_per_epoch"])
def exponential(total_steps: int, steps_per_epoch: int, *, initial_learning_rate: float,
                decay_epochs: float, decay_rate: float,
                staircase: bool = True) -> keras.optimizers.schedules.LearningRateSchedule:
    """Multiply the learning rate by `decay_rate` every `decay_epochs` epochs."""
    del total_steps
    return keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate, decay_steps=max(1, int(round(decay_epochs * steps_per_epoch))),
        decay_rate=decay_rate, staircase=staircase)


def l2_penalty(model: keras.Model) -> tf.Tensor:
    """Return sum(w^2) / 2 over the convolution and dense kernels of `model`.

    Times the weight decay, its gradient is `weight_decay * w`, the update that SGD's weight
    decay makes in the Torch code of the CIFAR papers.
    NOTE: that Torch code also decays biases and BatchNorm parameters; this penalty leaves them,
    and the activations' own parameters (Swish beta, PReLU alpha), undecayed.
    """
    kernels = [v for v in model.trainable_variables if v.path.endswith("kernel")]
    if not kernels:
        return tf.constant(0.0)
    return tf.add_n([tf.nn.l2_loss(tf.cast(v.value, tf.float32)) for v in kernels])


@gin.configurable(denylist=["model_fn", "train_dataset", "eval_dataset", "model_dir", "strategy"])
def train_and_evaluate(
    model_fn: Callable[[], keras.Model],
    train_dataset: tf.data.Dataset,
    eval_dataset: tf.data.Dataset,
    model_dir: str,
    strategy: tf.distribute.Strategy | None = None,
    *,
    batch_size: int = gin.REQUIRED,
    train_examples: int = gin.REQUIRED,
    train_epochs: float | None = None,
    train_steps: int | None = None,
    optimizer_fn: Callable[..., keras.optimizers.Optimizer] = sgd,
    schedule_fn: Callable[..., keras.optimizers.schedules.LearningRateSchedule] = piecewise_constant,
    weight_decay: float = 0.0,
    label_smoothing: float = 0.0,
    checkpoint_every_steps: int = 1000,
    eval_every_steps: int | None = None,
    log_every_steps: int = 100,
    progress_bar: bool = True,
) -> dict[str, float]:
    """Train `model_fn()` on `train_dataset`, evaluate on `eval_dataset`, return final metrics.

    Args:
      model_fn: builds the Keras model (logits out); called inside the strategy's scope.
      train_dataset: endless dataset of (images, integer labels) batches of `batch_size`
        examples in all (the global batch, split across replicas by the strategy).
      eval_dataset: finite dataset of (images, integer labels) batches; evaluated in full.
        Examples with label -1 are padding and count in no metric.
      model_dir: directory for checkpoints and TensorBoard logs; created if missing.
      strategy: the `tf.distribute` strategy; None means the default (one device).
      batch_size: global batch size, used for the loss average and to count epochs.
      train_examples: size of the training set, to convert epochs to steps.
      train_epochs: run length in epochs (the papers' unit); exactly one of train_epochs and
        train_steps must be set.
      train_steps: run length in optimizer steps.
      optimizer_fn: factory taking the learning-rate schedule, e.g. `sgd` or `rmsprop`.
      schedule_fn: factory taking (total_steps, steps_per_epoch), e.g. `piecewise_constant`.
      weight_decay: coefficient of `l2_penalty` in the loss. The losses of the model's own
        regularizers (`model.losses`) are added as well, so set only one of the two.
      label_smoothing: label smoothing of the cross-entropy (0 for the CIFAR papers).
      checkpoint_every_steps: how often to save a checkpoint; one is always saved at the end.
      eval_every_steps: evaluate every this many steps as well as at the end; None means only at
        the end.
      log_every_steps: how often to write training summaries and a log line.
      progress_bar: whether to show a `keras.utils.Progbar`.

    Returns:
      {"eval_accuracy", "eval_loss", "eval_examples", "train_loss", "train_accuracy", "steps",
      "train_seconds"}: eval metrics over the whole eval set at the last step, training metrics
      averaged over the last `log_every_steps` steps (0 when a resumed run had no step left), and
      the seconds spent in this call.

    Raises:
      ValueError: for an invalid run length or a NaN or infinite training loss.
    """
    if (train_epochs is None) == (train_steps is None):
        raise ValueError("Set exactly one of train_epochs and train_steps; received "
                         f"train_epochs={train_epochs}, train_steps={train_steps}.")
    if batch_size <= 0 or train_examples <= 0:
        raise ValueError(f"batch_size ({batch_size}) and train_examples ({train_examples}) must "
                         "be positive.")
    steps_per_epoch = math.ceil(train_examples / batch_size)
    total_steps = train_steps if train_steps is not None else int(round(train_epochs *
                                                                         steps_per_epoch))
    if total_steps <= 0:
        raise ValueError(f"The run must have at least one step; it has {total_steps}.")
    strategy = strategy or tf.distribute.get_strategy()
    os.makedirs(model_dir, exist_ok=True)
    logging.info("Training for %d steps (%.2f epochs of %d steps, global batch %d) on %d "
                 "replicas, model_dir=%s", total_steps, total_steps / steps_per_epoch,
                 steps_per_epoch, batch_size, strategy.num_replicas_in_sync, model_dir)

    with strategy.scope():
        model = model_fn()
        schedule = schedule_fn(total_steps, steps_per_epoch)
        optimizer = optimizer_fn(schedule)
        optimizer.build(model.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
        train_loss = keras.metrics.Mean("train_loss")
        train_accuracy = keras.metrics.SparseCategoricalAccuracy("train_accuracy")
        eval_loss = keras.metrics.Mean("eval_loss")
        eval_accuracy = keras.metrics.SparseCategoricalAccuracy("eval_accuracy")
    num_classes = model.output_shape[-1]

    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, os.path.join(model_dir, "checkpoints"),
                                         max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Resumed from %s at step %d.", manager.latest_checkpoint, int(step.numpy()))

    def cross_entropy(labels, logits):
        one_hot = tf.one_hot(tf.cast(labels, tf.int32), num_classes)
        return keras.losses.categorical_crossentropy(one_hot, tf.cast(logits, tf.float32),
                                                     from_logits=True,
                                                     label_smoothing=label_smoothing)

    def replica_train_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            per_example = cross_entropy(labels, logits)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=batch_size)
            if weight_decay:
                loss += weight_decay * l2_penalty(model) / strategy.num_replicas_in_sync
            if model.losses:
                # Regularizers that a model builder attached to its layers.
                loss += tf.add_n(model.losses) / strategy.num_replicas_in_sync
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        train_loss.update_state(per_example)
        train_accuracy.update_state(labels, logits)

    def replica_eval_step(images, labels):
        # Label -1 marks padding that fills the last batch to a static shape (TPUs need one).
        mask = tf.cast(labels >= 0, tf.float32)
        labels = tf.maximum(labels, 0)
        logits = model(images, training=False)
        eval_loss.update_state(cross_entropy(labels, logits), sample_weight=mask)
        eval_accuracy.update_state(labels, logits, sample_weight=mask)

    @tf.function
    def train_step(iterator):
        images, labels = next(iterator)
        strategy.run(replica_train_step, args=(images, labels))

    @tf.function
    def eval_step(batch):
        strategy.run(replica_eval_step, args=batch)

    def evaluate() -> tuple[float, float]:
        eval_loss.reset_state()
        eval_accuracy.reset_state()
        for batch in strategy.experimental_distribute_dataset(eval_dataset):
            eval_step(batch)
        return float(eval_loss.result()), float(eval_accuracy.result())

    train_writer = tf.summary.create_file_writer(os.path.join(model_dir, "tensorboard", "train"))
    eval_writer = tf.summary.create_file_writer(os.path.join(model_dir, "tensorboard", "eval"))
    iterator = iter(strategy.experimental_distribute_dataset(train_dataset))
    progbar = keras.utils.Progbar(total_steps, unit_name="step") if progress_bar else None
    start = time.time()
    current = int(step.numpy())
    if progbar:
        progbar.update(current)

    while current < total_steps:
        train_step(iterator)
        current = int(step.assign_add(1).numpy())
        at_end = current == total_steps

        if current % log_every_steps == 0 or at_end:
            loss_value = float(train_loss.result())
            if not np.isfinite(loss_value):
                raise ValueError(f"The training loss is {loss_value} at step {current}; lower the "
                                 "learning rate or check the activation for overflow.")
            with train_writer.as_default(step=current):
                tf.summary.scalar("losses/cross_entropy", loss_value)
                tf.summary.scalar("metrics/accuracy", train_accuracy.result())
                tf.summary.scalar("optimizer/learning_rate", schedule(current - 1))
            logging.info("step %d/%d: train loss %.4f, train accuracy %.4f", current, total_steps,
                         loss_value, float(train_accuracy.result()))
        if progbar:
            progbar.update(current, values=[("loss", float(train_loss.result()))])
        if (eval_every_steps and current % eval_every_steps == 0) or at_end:
            loss_value, accuracy = evaluate()
            with eval_writer.as_default(step=current):
                tf.summary.scalar("losses/cross_entropy", loss_value)
                tf.summary.scalar("metrics/accuracy", accuracy)
            logging.info("step %d/%d: eval loss %.4f, eval accuracy %.4f", current, total_steps,
                         loss_value, accuracy)
        if current % checkpoint_every_steps == 0 or at_end:
            manager.save(checkpoint_number=current)
        if current % log_every_steps == 0 and not at_end:
            train_loss.reset_state()
            train_accuracy.reset_state()

    if not eval_accuracy.count.numpy():
        # A resume found the run already finished, so no step ran here; evaluate anyway.
        evaluate()
    train_writer.flush()
    eval_writer.flush()
    return {
        "eval_accuracy": float(eval_accuracy.result()),
        "eval_loss": float(eval_loss.result()),
        "train_loss": float(train_loss.result()),
        "train_accuracy": float(train_accuracy.result()),
        "eval_examples": int(round(float(eval_accuracy.count.numpy()))),
        "steps": current,
        "train_seconds": time.time() - start,
    }
