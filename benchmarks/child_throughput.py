r"""Measure the training throughput of child networks against a plain Keras ResNet-20.

  nice -n 19 python -m benchmarks.child_throughput --data_dir=/path/to/cifar10 \
      --intra_op_threads=1 --inter_op_threads=1

Measured, interleaved in rounds so that load from other processes spreads over all of them:

* reference: ResNet-20 written here with Keras's built-in "relu", trained with `model.fit`;
* the child trainer (`search.child_trainer.train_child`) with ReLU, Swish and search-space
  expressions, and optionally with ReLU under mixed_bfloat16.

Every run uses the same input pipeline (`swish_tf.data.cifar.make_dataset`, with augmentation),
batch size and optimizer, and leaves the first `--warmup_steps` steps (which include tracing)
out of the timing. The script prints images/s per configuration (median over rounds), the
ratio of each to the reference and to the trainer's ReLU, and an estimate of how many
quick-budget children (gin_configs/child/quick_cpu.gin) fit in an hour.
"""

import platform
import statistics
import time

from absl import app
from absl import flags
from absl import logging
import keras
import tensorflow as tf

from search import child_trainer
from swish_tf.data import cifar

_DATA_DIR = flags.DEFINE_string("data_dir", None, "CIFAR-10 location, as for load_cifar10.",
                                required=True)
_ACTIVATIONS = flags.DEFINE_multi_string(
    "activation", ["relu", "swish", "max(x, sigmoid(x))", "cos(x) - x"],
    "Activation to train with the child trainer; repeat the flag for several. Keep 'relu' for "
    "the step-time ratios.")
_BFLOAT16 = flags.DEFINE_bool("bfloat16", True, "Also time ReLU under mixed_bfloat16.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Rounds over all configurations.")
_STEPS = flags.DEFINE_integer("steps", 40, "Timed training steps per run.")
_WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", 10, "Untimed steps per run (tracing).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Images per step.")
_INTRA_OP_THREADS = flags.DEFINE_integer("intra_op_threads", 0, "TensorFlow intra-op threads "
                                         "(0: TensorFlow's choice).")
_INTER_OP_THREADS = flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow inter-op threads.")
_QUICK_STEPS = flags.DEFINE_integer("quick_steps", 150, "Steps of the quick child budget "
                                    "(gin_configs/child/quick_cpu.gin), for the children-per-hour "
                                    "estimate.")
_QUICK_BATCH_SIZE = flags.DEFINE_integer("quick_batch_size", 64, "Batch size of the quick child "
                                         "budget.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Parallel search workers, for children per hour.")
_CLOCK = flags.DEFINE_enum(
    "clock", "process", ["process", "wall"], "Clock of the throughput: 'process' (CPU time of "
    "this process) stays meaningful on a CPU shared with other jobs when the run uses one "
    "thread; 'wall' (elapsed time) is what an unshared machine sees.")

REFERENCE = "reference (Keras fit, built-in relu)"


def _reference_resnet20() -> keras.Model:
    """ResNet-20 for CIFAR (He et al. 2016, option-A shortcuts) with built-in ReLU only."""
    layers = keras.layers

    def conv(filters, strides):
        return layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                             kernel_initializer="he_normal",
                             kernel_regularizer=keras.regularizers.L2(5e-5))

    def shortcut(x, filters):
        extra = filters - x.shape[-1]
        return layers.Lambda(lambda t: keras.ops.pad(
            t[:, ::2, ::2, :], [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]]))(x)

    inputs = keras.Input((32, 32, 3))
    x = layers.ReLU()(layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(conv(16, 1)(inputs)))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(3):
            strides = 2 if stage and not block else 1
            residual = x if strides == 1 else shortcut(x, filters)
            x = conv(filters, strides)(x)
            x = layers.ReLU()(layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(x))
            x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5)(conv(filters, 1)(x))
            x = layers.ReLU()(layers.Add()([x, residual]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(10, kernel_initializer="he_normal")(x))


def _time_reference(data: cifar.CifarSplits, seed: int) -> float:
    """Train the reference with `model.fit`; return images/s of the timed steps."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = _reference_resnet20()
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dataset = cifar.make_dataset(data.train_images, data.train_labels,
                                 batch_size=_BATCH_SIZE.value, training=True,
                                 mean=data.channel_mean, std=data.channel_std, seed=seed)
    model.fit(dataset, steps_per_epoch=_WARMUP_STEPS.value, epochs=1, verbose=0)
    clock = child_trainer.CLOCKS[_CLOCK.value]
    start = clock()
    # The second fit reuses the traced train function.
    model.fit(dataset, steps_per_epoch=_STEPS.value, epochs=1, verbose=0)
    return _STEPS.value * _BATCH_SIZE.value / (clock() - start)


def _time_child(activation: str, data: cifar.CifarSplits, seed: int,
                precision: str) -> tuple[float, float]:
    """Train a child; return its images/s and its seconds outside the timed steps.

    Both are on the `--clock` clock. The seconds outside the timed steps cover building,
    tracing, the warmup steps and validation on all 5,000 validation images.
    """
    clock = child_trainer.CLOCKS[_CLOCK.value]
    start = clock()
    result = child_trainer.train_child(
        activation, data, seed=seed, model="resnet20",
        train_steps=_WARMUP_STEPS.value + _STEPS.value, batch_size=_BATCH_SIZE.value,
        steps_per_loop=_WARMUP_STEPS.value, max_validation_examples=None, precision=precision,
        throughput_clock=_CLOCK.value)
    total = clock() - start
    if result.status != "ok":
        raise RuntimeError(f"Child {activation!r} ended with {result.status}: {result.reason}")
    timed = _STEPS.value * _BATCH_SIZE.value / result.images_per_sec
    return result.images_per_sec, total - timed


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    child_trainer.configure_threads(_INTRA_OP_THREADS.value, _INTER_OP_THREADS.value)
    data = cifar.load_cifar10(_DATA_DIR.value)

    configurations = [(REFERENCE, None, None)]
    configurations += [(activation, activation, "float32") for activation in _ACTIVATIONS.value]
    if _BFLOAT16.value:
        configurations.append(("relu (mixed_bfloat16)", "relu", "mixed_bfloat16"))
    speeds = {name: [] for name, _, _ in configurations}
    overheads = []
    for round_index in range(_ROUNDS.value):
        # Rotate the order so that no configuration always runs first or last in a round.
        shift = round_index % len(configurations)
        for name, activation, precision in configurations[shift:] + configurations[:shift]:
            if activation is None:
                speed = _time_reference(data, seed=round_index)
            else:
                speed, overhead = _time_child(activation, data, round_index, precision)
                overheads.append(overhead)
            speeds[name].append(speed)
            logging.info("Round %d: %s: %.1f images/s", round_index, name, speed)

    median = {name: statistics.median(values) for name, values in speeds.items()}
    relu = median.get("relu")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python "
          f"{platform.python_version()}, {platform.processor() or platform.machine()}, "
          f"threads intra_op={_INTRA_OP_THREADS.value} inter_op={_INTER_OP_THREADS.value}, "
          f"{_CLOCK.value} clock, "
          f"batch {_BATCH_SIZE.value}, {_STEPS.value} timed steps per run, {_ROUNDS.value} "
          "rounds")
    print(f"{'configuration':40s} {'images/s (median)':>18s} {'min':>7s} {'max':>7s} "
          f"{'vs reference':>13s} {'step time vs relu':>18s}")
    for name, values in speeds.items():
        step_ratio = f"{relu / median[name]:.3f}" if relu else "-"
        print(f"{name:40s} {median[name]:18.1f} {min(values):7.1f} {max(values):7.1f} "
              f"{median[name] / median[REFERENCE]:13.3f} {step_ratio:>18s}")

    if relu:
        # An estimate: the median time of the measured children outside their timed and warmup
        # steps, plus the quick budget's images at the trainer's ReLU speed at this batch size.
        overhead = (statistics.median(overheads)
                    - _WARMUP_STEPS.value * _BATCH_SIZE.value / relu)
        quick_child_s = overhead + _QUICK_STEPS.value * _QUICK_BATCH_SIZE.value / relu
        per_hour = _WORKERS.value * 3600.0 / quick_child_s
        print(f"Estimated quick-budget child ({_QUICK_STEPS.value} steps of batch "
              f"{_QUICK_BATCH_SIZE.value}) with ReLU: {quick_child_s:.0f} s on the "
              f"{_CLOCK.value} clock, {overhead:.0f} s of it outside training steps. So "
              f"{per_hour:.0f} children per hour fit on {_WORKERS.value} workers with these "
              "threads.")


if __name__ == "__main__":
    app.run(main)
