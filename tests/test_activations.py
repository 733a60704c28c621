"""The activation registry and its Gin bindings."""

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

import swish_tf
from swish_tf import BENCHMARK_ACTIVATIONS, get_activation

X = np.array([[-2.0, -0.5, 0.0, 0.5, 2.0]], "float32")


@pytest.mark.parametrize("name, reference", [
    ("relu", lambda x: np.maximum(x, 0)),
    ("leaky_relu", lambda x: np.where(x > 0, x, 0.01 * x)),
    ("prelu", lambda x: np.where(x > 0, x, 0.25 * x)),
    ("softplus", lambda x: np.log1p(np.exp(x))),
    ("elu", lambda x: np.where(x > 0, x, np.expm1(x))),
    ("selu", lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x))),
    ("gelu", lambda x: 0.5 * x * (1 + tf.math.erf(x / np.sqrt(2)).numpy())),
    ("swish_1", lambda x: x / (1 + np.exp(-x))),
    ("swish", lambda x: x / (1 + np.exp(-x))),
])
def test_named_activation_values(name, reference):
    np.testing.assert_allclose(get_activation(name)(X).numpy(), reference(X), rtol=1e-5,
                               atol=1e-6)


def test_benchmark_names_in_paper_order():
    assert BENCHMARK_ACTIVATIONS == ("relu", "leaky_relu", "prelu", "softplus", "elu", "selu",
                                     "gelu", "swish_1", "swish")


def test_each_call_returns_new_layer():
    first, second = get_activation("swish"), get_activation("swish")
    assert first is not second
    template = swish_tf.ExpressionActivation("max(x, sigmoid(x))")
    clone = get_activation(template)
    assert clone is not template
    assert clone.expression == "max(x, sigmoid(x))"


def test_layer_clones_fit_in_one_model():
    template = swish_tf.ExpressionActivation("max(x, sigmoid(x))", name="searched")
    inputs = keras.Input((4,))
    hidden = get_activation(template)(keras.layers.Dense(4)(inputs))
    outputs = get_activation(template)(keras.layers.Dense(4)(hidden))
    model = keras.Model(inputs, outputs)
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))


def test_expression_and_callable_specs():
    assert get_activation("cos(x) - x").expression == "cos(x) - x"
    layer = get_activation(tf.nn.relu)
    np.testing.assert_array_equal(layer(X).numpy(), np.maximum(X, 0))


def test_unknown_name_is_value_error_naming_it():
    with pytest.raises(ValueError, match=r"Unknown activation 'swishh'.*relu, leaky_relu"):
        get_activation("swishh")
    with pytest.raises(TypeError, match="Received int"):
        get_activation(3)


def test_keras_builtin_swish_is_untouched():
    assert keras.activations.get("swish") is keras.activations.silu
    assert keras.activations.get("silu") is keras.activations.silu


@gin.configurable(denylist=["inputs"])
def _two_layer_net(inputs, activation="relu"):
    first = get_activation(activation)
    second = get_activation(activation)
    return first, second


def test_gin_selects_activation_by_name():
    gin.parse_config('_two_layer_net.activation = "swish"')
    first, second = _two_layer_net(None)
    assert first is not second
    assert first.expression == "x * sigmoid(beta * x)"


def test_gin_selects_configured_layer_with_own_instances():
    gin.parse_config("""
        import swish_tf
        swish_tf.ExpressionActivation.expression = "max(x, tanh(x))"
        _two_layer_net.activation = @swish_tf.ExpressionActivation()
    """)
    first, second = _two_layer_net(None)
    assert first is not second
    assert type(first) is swish_tf.ExpressionActivation
    assert first.get_config()["expression"] == "max(x, tanh(x))"


def test_gin_activation_macro():
    gin.parse_config("""
        swish_tf.activation.spec = "prelu"
        _two_layer_net.activation = @swish_tf.activation()
    """)
    first, _ = _two_layer_net(None)
    assert isinstance(first, swish_tf.PerChannelPReLU)


def test_gin_rejects_unknown_binding():
    with pytest.raises(ValueError, match="No configurable matching 'swish_tf.ExpressionActivatio'"):
        gin.parse_config('swish_tf.ExpressionActivatio.expression = "x"')
