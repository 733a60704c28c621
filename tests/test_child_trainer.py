"""Tests of search.child_trainer and the search.train_child CLI on real CIFAR-10 data."""

import json
import math
import os
import pathlib
import subprocess
import sys

from absl import app
import gin
import numpy as np
import pytest
import tensorflow as tf

from search import child_trainer
from search import train_child
from swish_tf.data import cifar

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# The budget of gin_configs/child/tiny.gin, passed as arguments.
TINY = dict(model="resnet_tiny", train_steps=3, batch_size=16, steps_per_loop=1,
            eval_batch_size=100, max_validation_examples=500)


@pytest.fixture(scope="module")
def data(cifar10_dir):
    return cifar.load_cifar10(cifar10_dir)


def _train_tiny(activation, data, **overrides):
    return child_trainer.train_child(activation, data, **{**TINY, **overrides})


def _assert_strict_json(result):
    text = result.to_json()
    assert "NaN" not in text
    assert "Infinity" not in text
    parsed = json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in {text}"))
    assert parsed["status"] == result.status
    return parsed


@pytest.fixture(scope="module")
def tiny_swish_result(data):
    return _train_tiny("x * sigmoid(beta * x)", data, seed=7)


def test_tiny_child_trains(tiny_swish_result):
    result = tiny_swish_result
    assert result.status == "ok"
    assert result.reason == ""
    assert result.steps == 3
    assert result.seed == 7
    assert 0.0 <= result.val_accuracy <= 1.0
    assert result.reward == result.val_accuracy
    assert math.isfinite(result.train_loss)
    assert result.images_per_sec > 0
    assert result.wall_time_s > 0
    parsed = _assert_strict_json(result)
    assert child_trainer.ChildResult.from_dict(parsed) == result


def test_same_seed_repeats_run(data, tiny_swish_result):
    again = _train_tiny("x * sigmoid(beta * x)", data, seed=7)
    assert again.status == "ok"
    assert again.train_loss == tiny_swish_result.train_loss
    assert again.val_accuracy == tiny_swish_result.val_accuracy


def test_exploding_activation_diverges_at_once(data):
    # Skipping the validity check makes training meet the overflow itself.
    result = _train_tiny("exp(exp(exp(x^2)))", data, train_steps=50, steps_per_loop=2,
                         check_validity=False)
    assert result.status == "diverged"
    assert result.steps == 2  # Stopped after the first loop call.
    assert "training loss became" in result.reason
    assert result.val_accuracy is None
    assert result.train_loss is None
    assert result.reward == 0.0
    _assert_strict_json(result)


@pytest.mark.parametrize("activation", ["exp(exp(exp(x^2)))", "sqrt(-|x|)"])
def test_untrainable_expression_is_invalid(data, activation):
    result = _train_tiny(activation, data)
    assert result.status == "invalid"
    assert "validity check" in result.reason
    assert result.steps == 0
    assert result.reward == 0.0
    _assert_strict_json(result)


@pytest.mark.parametrize("activation, message", [
    ("max(x,", "position 6"), ("no_such_function(x)", "no_such_function")])
def test_malformed_activation_is_invalid(data, activation, message):
    result = _train_tiny(activation, data)
    assert result.status == "invalid"
    assert message in result.reason
    assert result.activation == activation
    assert result.reward == 0.0
    _assert_strict_json(result)


def test_time_limit_stops_child(data):
    result = _train_tiny("relu", data, train_steps=1000, steps_per_loop=2, time_limit_s=1e-3)
    assert result.status == "timeout"
    assert result.steps == 2
    assert "timed out after 2 of 1000 steps" in result.reason
    assert result.val_accuracy is None
    assert result.reward == 0.0
    _assert_strict_json(result)


def test_training_exception_is_error(data):
    few = cifar.CifarSplits(**{**data.__dict__, "train_images": data.train_images[:8],
                               "train_labels": data.train_labels[:8]})
    result = _train_tiny("relu", few)
    assert result.status == "error"
    assert "fewer than one batch" in result.reason
    assert result.reward == 0.0


@pytest.mark.slow
def test_mixed_bfloat16_child_trains(data):
    result = _train_tiny("swish", data, precision="mixed_bfloat16")
    assert result.status == "ok"
    assert 0.0 <= result.val_accuracy <= 1.0


def test_invalid_hyperparameters_raise(data):
    with pytest.raises(ValueError, match="schedule 'linear'"):
        _train_tiny("relu", data, schedule="linear")
    with pytest.raises(ValueError, match="train_steps.*0"):
        _train_tiny("relu", data, train_steps=0)
    with pytest.raises(ValueError, match="precision 'float16'"):
        _train_tiny("relu", data, precision="float16")


def test_result_json_replaces_non_finite_numbers():
    result = child_trainer.ChildResult(
        activation="relu", status="diverged", reason="loss became nan", val_accuracy=float("nan"),
        train_loss=float("inf"), steps=4, images_per_sec=10.0, wall_time_s=1.5, seed=0)
    parsed = _assert_strict_json(result)
    assert parsed["val_accuracy"] is None
    assert parsed["train_loss"] is None
    assert result.reward == 0.0


def test_reward_is_accuracy_only_when_ok():
    fields = dict(activation="relu", reason="", train_loss=1.0, steps=1, images_per_sec=1.0,
                  wall_time_s=1.0, seed=0)
    assert child_trainer.ChildResult(status="ok", val_accuracy=0.8, **fields).reward == 0.8
    assert child_trainer.ChildResult(status="timeout", val_accuracy=0.8, **fields).reward == 0.0


def test_configure_threads_after_start_raises():
    tf.constant(1.0) + 1.0  # Starts the TensorFlow runtime.
    current = tf.config.threading.get_intra_op_parallelism_threads()
    with pytest.raises(RuntimeError, match="configure_threads at process start"):
        child_trainer.configure_threads(intra_op_threads=current + 3)


def test_gin_configs_parse(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)  # Gin resolves `include` against the working directory.
    for name in ("paper", "quick_cpu", "tiny"):
        gin.clear_config()
        gin.parse_config_file(f"gin_configs/child/{name}.gin")
    assert gin.query_parameter("train_child.train_steps") == 3
    assert gin.query_parameter("train_child.learning_rate") == 0.1


def test_gin_unknown_parameter_raises():
    with pytest.raises(ValueError, match="train_stepz"):
        gin.parse_config("train_child.train_stepz = 3")


def _run_cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "search.train_child", *args], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def test_cli_prints_result_json(cifar10_dir):
    completed = _run_cli("--activation=x * sigmoid(beta * x)", f"--data_dir={cifar10_dir.parent}",
                         "--gin_file=gin_configs/child/tiny.gin",
                         "--gin_param=train_child.train_steps=2")
    assert completed.returncode == 0, completed.stderr[-3000:]
    lines = completed.stdout.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["status"] == "ok"
    assert record["steps"] == 2
    assert record["activation"] == "x * sigmoid(beta * x)"
    assert 0.0 <= record["val_accuracy"] <= 1.0


def test_cli_rejects_unknown_gin_binding():
    with pytest.raises(app.UsageError, match="train_child.no_such_parameter"):
        train_child._parse_gin([], ["train_child.no_such_parameter = 1"])
    with pytest.raises(app.UsageError, match="no_such_configurable"):
        train_child._parse_gin([], ["no_such_configurable.steps = 1"])
    with pytest.raises(app.UsageError, match="missing.gin"):
        train_child._parse_gin(["missing.gin"], [])


@pytest.mark.slow
def test_jit_compiled_child_trains(data):
    result = _train_tiny("max(x, sigmoid(x))", data, jit_compile=True)
    assert result.status == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "swish"])
def test_quick_budget_beats_chance(data, activation, monkeypatch):
    """The quick CPU budget on real CIFAR-10 reaches far above 10% accuracy."""
    monkeypatch.chdir(REPO_ROOT)
    gin.parse_config_file("gin_configs/child/quick_cpu.gin")
    result = child_trainer.train_child(activation, data)
    assert result.status == "ok", result.reason
    assert result.val_accuracy > 0.35
    np.testing.assert_array_less(result.train_loss, 2.0)
