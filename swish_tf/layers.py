"""Keras layers for searched activation functions and the per-channel PReLU baseline.

Both layers are registered Keras serializables: a model that uses them saves to `.keras` and
loads in a process that has imported `swish_tf`, with no `custom_objects` and in safe mode.
"""

import keras
import tensorflow as tf

from swish_tf import expressions, ops
from swish_tf.parser import parse_expression


def _channel_count(input_shape, layer_name: str) -> int:
    channels = input_shape[-1] if input_shape else None
    if channels is None:
        raise ValueError(
            f"Layer {layer_name!r} creates one parameter per channel, so the last axis of its "
            f"input must have a known size. Received input shape {tuple(input_shape)}.")
    return int(channels)


@keras.saving.register_keras_serializable(package="swish_tf")
class ExpressionActivation(keras.layers.Layer):
    """Activation layer that computes an expression of the search space, such as Swish.

    Every function of the expression that uses `beta` gets its own trainable parameter of shape
    `(C,)`, one value per channel of the last axis, so a conv net runs on any image size. In
    `beta * x1 + (1 - beta) * x2` both occurrences are one parameter.

    Args:
        expression: the expression text, such as `"x * sigmoid(beta * x)"`; see
            `swish_tf.parse_expression` for the syntax. The config stores its printed form.
        beta_initial_value: initial value of every beta, 1.0 by default.
        trainable_beta: whether the betas train; False keeps them at their initial value.
        **kwargs: standard Keras layer arguments (name, dtype, ...).
    """

    def __init__(self, expression: str, beta_initial_value: float = 1.0,
                 trainable_beta: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.tree = parse_expression(expression)
        self.expression = expressions.to_text(self.tree)
        self.beta_initial_value = float(beta_initial_value)
        self.trainable_beta = bool(trainable_beta)
        self.num_betas = expressions.count_betas(self.tree)
        self.supports_masking = True
        self.betas = []

    def build(self, input_shape):
        if self.num_betas:
            channels = _channel_count(input_shape, self.name)
            for index in range(self.num_betas):
                self.betas.append(self.add_weight(
                    name="beta" if self.num_betas == 1 else f"beta_{index}",
                    shape=(channels,),
                    initializer=keras.initializers.Constant(self.beta_initial_value),
                    trainable=self.trainable_beta))

    def call(self, inputs):
        x = tf.convert_to_tensor(inputs)
        betas = [tf.cast(beta, x.dtype) for beta in self.betas]
        return ops.evaluate(self.tree, x, betas)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({
            "expression": self.expression,
            "beta_initial_value": self.beta_initial_value,
            "trainable_beta": self.trainable_beta,
        })
        return config


@keras.saving.register_keras_serializable(package="swish_tf")
class PerChannelPReLU(keras.layers.Layer):
    """Parametric ReLU, f(x) = max(x, 0) + alpha * min(x, 0), with one alpha per channel.

    Keras's own `PReLU` creates one alpha per input element (per pixel of a feature map) unless
    `shared_axes` names every non-channel axis; this layer always has shape `(C,)`, as in He et
    al. (2015), "Delving Deep into Rectifiers", with alpha initialized to 0.25.
    """

    def __init__(self, alpha_initial_value: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        self.alpha_initial_value = float(alpha_initial_value)
        self.supports_masking = True

    def build(self, input_shape):
        channels = _channel_count(input_shape, self.name)
        self.alpha = self.add_weight(
            name="alpha", shape=(channels,),
            initializer=keras.initializers.Constant(self.alpha_initial_value))

    def call(self, inputs):
        x = tf.convert_to_tensor(inputs)
        return tf.nn.relu(x) + tf.cast(self.alpha, x.dtype) * tf.minimum(x, 0.0)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["alpha_initial_value"] = self.alpha_initial_value
        return config
