"""Helpers shared by the tests of the models in `models/`."""

import collections

import keras
import numpy as np
import tensorflow as tf

import swish_tf

# Every named activation of the benchmarks, plus an expression found by the search.
ACTIVATIONS = (*swish_tf.BENCHMARK_ACTIVATIONS, "max(x, sigmoid(x))")


class CountingActivation(keras.layers.Layer):
    """ReLU without parameters that counts its instances.

    A model that takes its activation from `swish_tf.get_activation` clones the given layer once
    per nonlinearity, so `instances` after building is the count of nonlinearities plus one (the
    original). Set `instances` to 0 before building.
    """

    instances = 0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        CountingActivation.instances += 1

    def call(self, inputs):
        return keras.ops.relu(inputs)

    def get_config(self):
        # get_activation clones this layer from its config; with the name in it, every clone
        # would share one name, and keras.Model rejects duplicate layer names.
        config = super().get_config()
        config.pop("name")
        return config


def count_nonlinearities(build) -> int:
    """Return how many activation layers `build(activation)` creates."""
    CountingActivation.instances = 0
    build(CountingActivation())
    return CountingActivation.instances - 1


def weight_shapes_by_layer_type(model: keras.Model) -> collections.Counter:
    """Return the multiset of (layer type, weight shape) over all layers of `model`."""
    shapes = collections.Counter()
    for layer in model.layers:
        for weight in layer.weights:
            shapes[(type(layer).__name__, tuple(weight.shape))] += 1
    return shapes


def activation_layers(model: keras.Model, activation: str) -> list[keras.layers.Layer]:
    """Return the layers of `model` of the type that `get_activation(activation)` makes."""
    kind = type(swish_tf.get_activation(activation))
    return [layer for layer in model.layers if type(layer) is kind]


def check_per_layer_parameters(model: keras.Model, activation: str, baseline_parameters: int,
                               nonlinearities: int) -> None:
    """Check that `model` has `nonlinearities` layers of `activation`, each with its own
    per-channel parameters (PReLU's alpha, Swish's beta) and no others.

    `baseline_parameters` is the parameter count of the same model with ReLU.
    """
    layers = activation_layers(model, activation)
    assert len(layers) == nonlinearities
    extra_parameters = model.count_params() - baseline_parameters
    if activation in ("prelu", "swish"):
        assert extra_parameters == sum(layer.input.shape[-1] for layer in layers)
        assert len({id(weight) for layer in layers for weight in layer.weights}) == len(layers)
    else:
        assert extra_parameters == 0


def train_step_and_evaluate(model: keras.Model, images: np.ndarray,
                            labels: np.ndarray) -> tuple[float, float]:
    """Run one SGD step and one evaluation; return (training loss, evaluation loss)."""
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(gradient is not None for gradient in gradients)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    eval_logits = model(images, training=False)
    eval_loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
        labels, eval_logits, from_logits=True))
    return float(loss), float(eval_loss)
