"""Tests for models/training.py: schedules, weight decay, checkpoints and resume, strategies."""

import functools
import os
import subprocess
import sys
import textwrap

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from models import training
from swish_tf.data import cifar

BATCH_SIZE = 8


@pytest.fixture(scope="module")
def cifar_slice(cifar10_dir):
    """64 real CIFAR-10 training images and 32 test images, normalized."""
    splits = cifar.load_cifar10(cifar10_dir)
    return splits.train_images[:64], splits.train_labels[:64], splits, (
        splits.test_images[:32], splits.test_labels[:32])


def _datasets(cifar_slice):
    train_images, train_labels, splits, (test_images, test_labels) = cifar_slice
    train = cifar.make_dataset(train_images, train_labels, batch_size=BATCH_SIZE, training=True,
                               mean=splits.channel_mean, std=splits.channel_std)
    test = cifar.make_dataset(test_images, test_labels, batch_size=BATCH_SIZE, training=False,
                              mean=splits.channel_mean, std=splits.channel_std)
    return train, test


def _small_model():
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(4, 3, strides=2),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10),
    ])


def test_piecewise_constant_epoch_boundaries():
    schedule = training.piecewise_constant(1000, 10, initial_learning_rate=0.1,
                                           boundary_epochs=(81, 122), decay_factor=0.1)
    assert float(schedule(809)) == pytest.approx(0.1)
    assert float(schedule(811)) == pytest.approx(0.01)
    assert float(schedule(1221)) == pytest.approx(0.001)


def test_piecewise_constant_fraction_boundaries():
    schedule = training.piecewise_constant(300, 1, initial_learning_rate=0.1,
                                           boundary_fractions=(0.5, 0.75))
    assert float(schedule(149)) == pytest.approx(0.1)
    assert float(schedule(151)) == pytest.approx(0.01)
    assert float(schedule(226)) == pytest.approx(0.001)


def test_piecewise_constant_rejects_both_boundary_kinds():
    with pytest.raises(ValueError, match="not both"):
        training.piecewise_constant(100, 1, boundary_epochs=(1,), boundary_fractions=(0.5,))


def test_cosine_warmup_then_decay():
    schedule = training.cosine(110, 1, initial_learning_rate=0.2, warmup_steps=10)
    assert float(schedule(0)) == pytest.approx(0.0)
    assert float(schedule(10)) == pytest.approx(0.2)
    assert float(schedule(60)) == pytest.approx(0.1, rel=1e-4)
    assert float(schedule(110)) == pytest.approx(0.0, abs=1e-7)


def test_l2_penalty_counts_kernels_only():
    model = _small_model()
    for variable in model.trainable_variables:
        variable.assign(np.ones(variable.shape))
    # Conv kernel 3*3*3*4 = 108 and dense kernel 4*10 = 40 weights of 1; sum(w^2) / 2 = 74.
    assert float(training.l2_penalty(model)) == pytest.approx(74.0)


def test_model_regularizers_join_loss(cifar_slice, tmp_path):
    # One plain SGD step of learning rate 0.1: L2(0.5) on the dense kernel adds its value to the
    # gradient, so the regularized kernel ends 0.1 * initial kernel below the plain one.
    gin.parse_config("sgd.momentum = 0.0")
    schedule = functools.partial(training.piecewise_constant, initial_learning_rate=0.1)
    kernels = {}
    for regularizer in (None, keras.regularizers.L2(0.5)):
        keras.backend.clear_session()
        keras.utils.set_random_seed(1)

        def model_fn():
            return keras.Sequential([
                keras.Input((32, 32, 3)),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(10, kernel_regularizer=regularizer, name="logits"),
            ])

        initial = model_fn().get_layer("logits").kernel.numpy()
        keras.backend.clear_session()
        keras.utils.set_random_seed(1)
        captured = {}
        # A fresh dataset per run, because each new iterator of one dataset reshuffles.
        train, test = _datasets(cifar_slice)

        def capturing_model_fn():
            captured["model"] = model_fn()
            return captured["model"]

        training.train_and_evaluate(capturing_model_fn, train, test,
                                    str(tmp_path / str(regularizer is None)),
                                    batch_size=BATCH_SIZE, train_examples=64, train_steps=1,
                                    schedule_fn=schedule, progress_bar=False)
        kernels[regularizer is None] = captured["model"].get_layer("logits").kernel.numpy()
    np.testing.assert_allclose(kernels[True] - kernels[False], 0.1 * initial, atol=1e-6)


def test_make_strategy_rejects_unknown_name():
    with pytest.raises(ValueError, match="mirored"):
        training.make_strategy("mirored")


def test_run_length_must_be_set_once(cifar_slice, tmp_path):
    train, test = _datasets(cifar_slice)
    with pytest.raises(ValueError, match="exactly one"):
        training.train_and_evaluate(_small_model, train, test, str(tmp_path), batch_size=8,
                                    train_examples=64, train_epochs=1, train_steps=8)


def test_train_and_evaluate_real_data(cifar_slice, tmp_path):
    train, test = _datasets(cifar_slice)
    metrics = training.train_and_evaluate(
        _small_model, train, test, str(tmp_path), batch_size=BATCH_SIZE, train_examples=64,
        train_epochs=0.5, weight_decay=1e-4, log_every_steps=2, progress_bar=False)

    assert metrics["steps"] == 4  # Half an epoch of 64 / 8 = 8 steps.
    assert np.isfinite(metrics["train_loss"])
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0
    assert metrics["eval_examples"] == 32
    assert os.listdir(tmp_path / "tensorboard" / "train")
    assert os.listdir(tmp_path / "tensorboard" / "eval")
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("-4")


def test_padded_eval_labels_not_counted(cifar_slice, tmp_path):
    train_images, train_labels, splits, (test_images, test_labels) = cifar_slice
    kwargs = dict(mean=splits.channel_mean, std=splits.channel_std)
    train = cifar.make_dataset(train_images, train_labels, batch_size=BATCH_SIZE, training=True,
                               **kwargs)
    # 30 images in batches of 8: two padding examples with label -1 fill the last batch.
    test = cifar.make_dataset(test_images[:30], test_labels[:30], batch_size=BATCH_SIZE,
                              training=False, pad_to_batch=True, **kwargs)
    metrics = training.train_and_evaluate(_small_model, train, test, str(tmp_path),
                                          batch_size=BATCH_SIZE, train_examples=64,
                                          train_steps=1, progress_bar=False)
    assert metrics["eval_examples"] == 30


def test_gin_configures_optimizer_and_schedule(cifar_slice, tmp_path):
    gin.parse_config("""
        train_and_evaluate.optimizer_fn = @sgd
        train_and_evaluate.schedule_fn = @piecewise_constant
        sgd.nesterov = True
        piecewise_constant.initial_learning_rate = 0.05
    """)
    train, test = _datasets(cifar_slice)
    training.train_and_evaluate(_small_model, train, test, str(tmp_path), batch_size=BATCH_SIZE,
                                train_examples=64, train_steps=1, progress_bar=False)
    operative = gin.operative_config_str()
    assert "sgd.nesterov = True" in operative
    assert "piecewise_constant.initial_learning_rate = 0.05" in operative


class _CrashingIterator:
    """Yields batches of a dataset, then raises, as a killed job stops mid-run."""

    def __init__(self, dataset, crash_after: int):
        self.batches = iter(dataset)
        self.crash_after = crash_after
        self.served = 0

    def __call__(self):
        while True:
            if self.served == self.crash_after:
                raise RuntimeError("simulated crash")
            self.served += 1
            yield next(self.batches)


def test_killed_run_resumes_from_checkpoint(cifar_slice, tmp_path):
    train, test = _datasets(cifar_slice)
    signature = train.element_spec

    crashing = _CrashingIterator(train, crash_after=5)
    crashing_dataset = tf.data.Dataset.from_generator(crashing, output_signature=signature)
    with pytest.raises(Exception, match="simulated crash"):
        training.train_and_evaluate(_small_model, crashing_dataset, test, str(tmp_path),
                                    batch_size=BATCH_SIZE, train_examples=64, train_steps=8,
                                    checkpoint_every_steps=2, progress_bar=False)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")).endswith("-4")

    keras.backend.clear_session()
    counting = _CrashingIterator(train, crash_after=-1)
    counting_dataset = tf.data.Dataset.from_generator(counting, output_signature=signature)
    metrics = training.train_and_evaluate(_small_model, counting_dataset, test, str(tmp_path),
                                          batch_size=BATCH_SIZE, train_examples=64,
                                          train_steps=8, checkpoint_every_steps=2,
                                          progress_bar=False)
    assert metrics["steps"] == 8
    # Steps 5 to 8 ran after the resume; tf.data may prefetch a few batches beyond them.
    assert 4 <= counting.served <= 4 + 8


def test_finished_run_is_not_retrained(cifar_slice, tmp_path):
    train, test = _datasets(cifar_slice)
    first = training.train_and_evaluate(_small_model, train, test, str(tmp_path),
                                        batch_size=BATCH_SIZE, train_examples=64, train_steps=2,
                                        progress_bar=False)
    keras.backend.clear_session()
    second = training.train_and_evaluate(_small_model, train, test, str(tmp_path),
                                         batch_size=BATCH_SIZE, train_examples=64,
                                         train_steps=2, progress_bar=False)
    assert second["steps"] == 2
    assert second["eval_accuracy"] == pytest.approx(first["eval_accuracy"])


def test_nan_loss_raises(cifar_slice, tmp_path):
    train, test = _datasets(cifar_slice)
    poisoned = train.map(lambda images, labels: (images * np.float32("nan"), labels))
    with pytest.raises(ValueError, match="training loss is nan"):
        training.train_and_evaluate(_small_model, poisoned, test, str(tmp_path),
                                    batch_size=BATCH_SIZE, train_examples=64, train_steps=2,
                                    log_every_steps=1, progress_bar=False)


# The mirrored strategy needs two devices, and logical CPU devices can only be set before
# TensorFlow initializes, so this test runs in a fresh interpreter.
_MIRRORED_SCRIPT = textwrap.dedent("""
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from models import training
    from swish_tf.data import cifar

    splits = cifar.load_cifar10(sys.argv[1])
    kwargs = dict(mean=splits.channel_mean, std=splits.channel_std)
    train = cifar.make_dataset(splits.train_images[:64], splits.train_labels[:64],
                               batch_size=8, training=True, **kwargs)
    test = cifar.make_dataset(splits.test_images[:30], splits.test_labels[:30], batch_size=8,
                              training=False, **kwargs)
    strategy = training.make_strategy("mirrored")

    def model_fn():
        return keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3),
                                 keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(),
                                 keras.layers.Dense(10)])

    metrics = training.train_and_evaluate(model_fn, train, test, sys.argv[2], strategy,
                                          batch_size=8, train_examples=64, train_steps=3,
                                          weight_decay=1e-4, progress_bar=False)
    print("REPLICAS", strategy.num_replicas_in_sync)
    print("STEPS", metrics["steps"])
    print("LOSS", metrics["train_loss"])
    print("EXAMPLES", metrics["eval_examples"])
""")


def test_mirrored_strategy_two_logical_cpus(cifar10_dir, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    environment = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH",
                                                                                  ""))
    result = subprocess.run(
        [sys.executable, "-c", _MIRRORED_SCRIPT, str(cifar10_dir), str(tmp_path / "model")],
        capture_output=True, text=True, env=environment, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    values = dict(line.split(" ", 1) for line in result.stdout.splitlines()
                  if line.split(" ", 1)[0] in ("REPLICAS", "STEPS", "LOSS", "EXAMPLES"))
    assert values["REPLICAS"] == "2"
    assert values["STEPS"] == "3"
    assert np.isfinite(float(values["LOSS"]))
    # 30 test images in batches of 8 over 2 replicas: the last, partial batch must count too.
    assert values["EXAMPLES"] == "30"
