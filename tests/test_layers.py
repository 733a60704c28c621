"""Keras layers: per-channel parameters, saving and loading in a fresh process."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import swish_tf
from swish_tf import ExpressionActivation, PerChannelPReLU, get_activation


def test_swish_after_conv_has_one_beta_per_filter():
    inputs = keras.Input((None, None, 3))
    features = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    activation = get_activation("swish")
    model = keras.Model(inputs, activation(features))
    assert [tuple(weight.shape) for weight in activation.weights] == [(16,)]
    np.testing.assert_array_equal(activation.weights[0].numpy(), np.ones(16))
    assert model(np.zeros((1, 32, 32, 3), "float32")).shape == (1, 32, 32, 16)
    assert model(np.zeros((1, 64, 48, 3), "float32")).shape == (1, 64, 48, 16)


def test_shared_and_separate_betas():
    shared = ExpressionActivation("beta * x + (1 - beta) * sin(x)")
    shared.build((None, 4))
    assert len(shared.weights) == 1
    separate = ExpressionActivation("beta * x + sin(beta * x)")
    separate.build((None, 4))
    assert len(separate.weights) == 2
    assert all(tuple(weight.shape) == (4,) for weight in separate.weights)


def test_fixed_beta_is_not_trainable():
    layer = ExpressionActivation("x * sigmoid(beta * x)", trainable_beta=False,
                                 beta_initial_value=2.0)
    layer.build((None, 3))
    assert not layer.trainable_weights
    np.testing.assert_array_equal(layer.non_trainable_weights[0].numpy(), [2.0, 2.0, 2.0])


def test_unknown_channel_count_is_an_error():
    with pytest.raises(ValueError, match="last axis of its input must have a known size"):
        ExpressionActivation("x * sigmoid(beta * x)").build((None, None))


def test_prelu_is_per_channel():
    layer = PerChannelPReLU()
    outputs = layer(np.array([[[-2.0, 3.0]]], "float32"))
    assert tuple(layer.alpha.shape) == (2,)
    np.testing.assert_allclose(outputs.numpy(), [[[-0.5, 3.0]]])


def test_config_stores_expression_text():
    layer = ExpressionActivation("max(x,sigmoid( x ))")
    config = layer.get_config()
    assert config["expression"] == "max(x, sigmoid(x))"
    clone = ExpressionActivation.from_config(config)
    assert clone.expression == layer.expression


def _build_model():
    inputs = keras.Input((8, 8, 3))
    hidden = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    hidden = get_activation("swish")(hidden)
    hidden = keras.layers.Conv2D(4, 3, padding="same")(hidden)
    hidden = get_activation("beta * x + (1 - beta) * sin(x)")(hidden)
    hidden = keras.layers.Conv2D(4, 3, padding="same")(hidden)
    hidden = get_activation("prelu")(hidden)
    hidden = keras.layers.GlobalAveragePooling2D()(hidden)
    return keras.Model(inputs, keras.layers.Dense(2)(hidden))


def test_saved_model_loads_in_fresh_process(tmp_path):
    model = _build_model()
    # Move every beta and alpha away from its initial value so that restoring is observable.
    rng = np.random.default_rng(0)
    for weight in model.weights:
        if weight.path.split("/")[-1].startswith(("beta", "alpha")):
            weight.assign(rng.uniform(0.2, 1.8, weight.shape).astype("float32"))
    inputs = rng.normal(size=(2, 8, 8, 3)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "inputs.npy", inputs)
    np.save(tmp_path / "expected.npy", model(inputs).numpy())
    betas = {w.path: w.numpy() for w in model.weights if "beta" in w.path or "alpha" in w.path}
    np.savez(tmp_path / "betas.npz", **{k.replace("/", "|"): v for k, v in betas.items()})

    script = textwrap.dedent(f"""
        import keras, numpy as np
        import swish_tf
        model = keras.saving.load_model({str(path)!r})
        inputs = np.load({str(tmp_path / "inputs.npy")!r})
        expected = np.load({str(tmp_path / "expected.npy")!r})
        np.testing.assert_array_equal(model(inputs).numpy(), expected)
        betas = np.load({str(tmp_path / "betas.npz")!r})
        loaded = {{w.path.replace("/", "|"): w.numpy() for w in model.weights}}
        for name in betas.files:
            np.testing.assert_array_equal(loaded[name], betas[name])
        print("restored", len(betas.files))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "restored 3" in result.stdout


def test_trained_beta_changes_and_round_trips(tmp_path):
    inputs = keras.Input((4,))
    activation = get_activation("swish")
    model = keras.Model(inputs, keras.layers.Dense(1)(activation(keras.layers.Dense(4)(inputs))))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 4)).astype("float32")
    model.fit(x, np.sin(x).sum(axis=1, keepdims=True), epochs=2, verbose=0)
    beta = activation.weights[0].numpy()
    assert not np.allclose(beta, 1.0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert swish_tf.ExpressionActivation in {type(layer) for layer in loaded.layers}
