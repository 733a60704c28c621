"""The activation registry: one factory for named baselines and search-space expressions.

Models call `get_activation(spec)` once per nonlinearity, so every position gets its own layer
(and its own per-channel parameters). Names are this package's own: they do not register
anything in `keras.activations`, so Keras's built-in `"swish"` and `"silu"` strings keep meaning
Keras's fixed-beta SiLU.
"""

from typing import Callable

import gin
import keras

from swish_tf.layers import ExpressionActivation, PerChannelPReLU
from swish_tf.parser import ExpressionError


def _swish() -> keras.layers.Layer:
    return ExpressionActivation("x * sigmoid(beta * x)")


def _swish_1() -> keras.layers.Layer:
    return ExpressionActivation("x * sigmoid(x)")


# The baselines and Swish variants of "Searching for Activation Functions", in its table order.
_NAMED: dict[str, Callable[[], keras.layers.Layer]] = {
    "relu": lambda: keras.layers.Activation("relu"),
    "leaky_relu": lambda: keras.layers.LeakyReLU(negative_slope=0.01),
    "prelu": lambda: PerChannelPReLU(alpha_initial_value=0.25),
    "softplus": lambda: keras.layers.Activation("softplus"),
    "elu": lambda: keras.layers.Activation("elu"),
    "selu": lambda: keras.layers.Activation("selu"),
    # keras.activations.gelu defaults to the exact erf form, as in Hendrycks and Gimpel (2016).
    "gelu": lambda: keras.layers.Activation("gelu"),
    "swish_1": _swish_1,
    "swish": _swish,
}

BENCHMARK_ACTIVATIONS = tuple(_NAMED)

# Expression text of the named activations that are expressions of the search space.
NAMED_EXPRESSIONS = {
    "relu": "max(x, 0)",
    "swish_1": "x * sigmoid(x)",
    "swish": "x * sigmoid(beta * x)",
}


def get_activation(spec) -> keras.layers.Layer:
    """Return a new activation layer for `spec`.

    Args:
        spec: a name from `BENCHMARK_ACTIVATIONS`; an expression of the search space such as
            `"max(x, sigmoid(x))"`; a Keras layer, which is cloned from its config so that each
            call returns a separate layer with separate parameters; a Keras layer class, which is
            instantiated; or a plain callable such as `tf.nn.relu`, which is wrapped in
            `keras.layers.Activation`.

    Raises:
        ValueError: `spec` is a string that is neither a known name nor a valid expression.
        TypeError: `spec` is of another type.
    """
    if isinstance(spec, keras.layers.Layer):
        # Without its name, so that Keras gives each clone a unique one.
        config = spec.get_config()
        config.pop("name", None)
        return type(spec).from_config(config)
    if isinstance(spec, type) and issubclass(spec, keras.layers.Layer):
        return spec()
    if isinstance(spec, str):
        name = spec.strip()
        if name.lower() in _NAMED:
            return _NAMED[name.lower()]()
        try:
            return ExpressionActivation(name)
        except ExpressionError as error:
            raise ValueError(
                f"Unknown activation {spec!r}. Use one of the names "
                f"{', '.join(BENCHMARK_ACTIVATIONS)} or an expression such as "
                f"'max(x, sigmoid(x))'. Parsing it as an expression failed: {error}") from None
    if callable(spec):
        return keras.layers.Activation(spec)
    raise TypeError(f"An activation must be a name, an expression string, a Keras layer or a "
                    f"callable. Received {type(spec).__name__}: {spec!r}.")


@gin.configurable("swish_tf.activation")
def activation(spec="relu"):
    """Return `spec` unchanged, so Gin files can bind an activation once and reference it.

    For example `swish_tf.activation.spec = "swish"` and then `resnet.activation =
    @swish_tf.activation()`. Models still pass the value through `get_activation` at every
    position, so one bound layer never ends up shared between positions.
    """
    return spec


# Registered for Gin under the package's own module name, so a Gin file can write
# `@swish_tf.ExpressionActivation()` with its `expression` bound. A Keras Layer subclass must not
# be decorated with @gin.configurable, which breaks its construction in gin-config 0.5.
gin.external_configurable(ExpressionActivation, module="swish_tf")
gin.external_configurable(PerChannelPReLU, module="swish_tf")
gin.external_configurable(get_activation, module="swish_tf")
