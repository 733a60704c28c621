"""Tests for models/densenet.py: structure, activation placement, training on CIFAR-10."""

import numpy as np
import pytest

from model_testing import ACTIVATIONS, CountingActivation, train_step_and_evaluate
from models import densenet
import swish_tf

# DenseNet-BC (L=10, k=4): one bottleneck layer (2 nonlinearities) per block, 2 transitions and
# one before pooling.
TINY_POSITIONS = 2 * 3 + 2 + 1
BC100_POSITIONS = 2 * 16 * 3 + 2 + 1
PLAIN100_POSITIONS = 32 * 3 + 2 + 1


def _trainable_count(model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def test_bc100_12_parameter_count_and_positions():
    CountingActivation.instances = 0
    model = densenet.densenet_bc100_12(activation=CountingActivation())
    # 0.8M in "Densely Connected Convolutional Networks", table 2.
    assert _trainable_count(model) == 769_162
    assert CountingActivation.instances == BC100_POSITIONS + 1
    # 24 stem channels + 16 * 12 = 216, halved to 108; + 192 = 300, halved to 150; + 192.
    assert model.get_layer("final_bn").input.shape[-1] == 342


def test_plain100_12_parameter_count_and_positions():
    CountingActivation.instances = 0
    model = densenet.densenet100_12(activation=CountingActivation())
    # 7.0M in "Densely Connected Convolutional Networks", table 2.
    assert _trainable_count(model) == 6_979_642
    assert CountingActivation.instances == PLAIN100_POSITIONS + 1


def test_tiny_counting_activation():
    CountingActivation.instances = 0
    densenet.densenet_tiny(activation=CountingActivation())
    assert CountingActivation.instances == TINY_POSITIONS + 1


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_tiny_trains_with_activation(activation, cifar_test_batch):
    images, labels = cifar_test_batch
    model = densenet.densenet_tiny(activation=activation)
    train_loss, eval_loss = train_step_and_evaluate(model, images, labels)
    assert np.isfinite(train_loss)
    assert np.isfinite(eval_loss)


@pytest.mark.parametrize("activation", ["prelu", "swish"])
def test_per_channel_parameters_per_layer(activation):
    model = densenet.densenet_tiny(activation=activation)
    layer_type = type(swish_tf.get_activation(activation))
    weights = [w for layer in model.layers if isinstance(layer, layer_type)
               for w in layer.trainable_weights]
    assert len(weights) == TINY_POSITIONS
    assert len({id(w) for w in weights}) == TINY_POSITIONS
    # Stem 8, block 1 -> 12, transition -> 6, block 2 -> 10, transition -> 5, block 3 -> 9.
    assert weights[-1].shape == (9,)


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth=99, growth_rate=12), "received 99"),
    (dict(depth=100, growth_rate=0), "received 0"),
    (dict(depth=100, growth_rate=12, compression=0.0), "received 0.0"),
    (dict(depth=100, growth_rate=12, dropout_rate=-0.1), "received -0.1"),
])
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        densenet.densenet(activation="relu", **kwargs)
