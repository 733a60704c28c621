"""Tests for models/wide_resnet.py: structure, activation placement, training on CIFAR-10."""

import keras
import numpy as np
import pytest

from model_testing import ACTIVATIONS, CountingActivation, train_step_and_evaluate
from models import wide_resnet
import swish_tf

# WRN-10-1 (one block per stage): 2 nonlinearities per block and one before pooling.
TINY_POSITIONS = 2 * 3 + 1
WRN28_POSITIONS = 2 * 3 * 4 + 1


def test_wrn28_10_parameter_count_and_positions():
    CountingActivation.instances = 0
    model = wide_resnet.wide_resnet28_10(activation=CountingActivation())
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    # 36.5M in "Wide Residual Networks", table 5.
    assert trainable == 36_479_194
    assert CountingActivation.instances == WRN28_POSITIONS + 1


def test_tiny_counting_activation():
    CountingActivation.instances = 0
    wide_resnet.wide_resnet_tiny(activation=CountingActivation())
    assert CountingActivation.instances == TINY_POSITIONS + 1


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_tiny_trains_with_activation(activation, cifar_test_batch):
    images, labels = cifar_test_batch
    model = wide_resnet.wide_resnet_tiny(activation=activation)
    train_loss, eval_loss = train_step_and_evaluate(model, images, labels)
    assert np.isfinite(train_loss)
    assert np.isfinite(eval_loss)


@pytest.mark.parametrize("activation", ["prelu", "swish"])
def test_per_channel_parameters_per_layer(activation):
    model = wide_resnet.wide_resnet_tiny(activation=activation)
    layer_type = type(swish_tf.get_activation(activation))
    weights = [w for layer in model.layers if isinstance(layer, layer_type)
               for w in layer.trainable_weights]
    assert len(weights) == TINY_POSITIONS
    assert len({id(w) for w in weights}) == TINY_POSITIONS
    assert weights[-1].shape == (64,)  # Stage 3 of WRN-10-1 has 64 filters.


def test_dropout_layers_only_when_requested():
    plain = wide_resnet.wide_resnet_tiny()
    assert not [l for l in plain.layers if isinstance(l, keras.layers.Dropout)]
    keras.backend.clear_session()
    with_dropout = wide_resnet.wide_resnet_tiny(dropout_rate=0.3)
    dropouts = [l for l in with_dropout.layers if isinstance(l, keras.layers.Dropout)]
    assert len(dropouts) == 3
    assert all(l.rate == 0.3 for l in dropouts)


def test_dropout_off_in_evaluation(cifar_test_batch):
    images, _ = cifar_test_batch
    model = wide_resnet.wide_resnet_tiny(dropout_rate=0.3)
    first = model(images, training=False)
    second = model(images, training=False)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("kwargs, message", [
    (dict(depth=12, width=1), "received 12"),
    (dict(depth=28, width=0), "received 0"),
    (dict(depth=28, width=1, dropout_rate=1.0), "received 1.0"),
])
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        wide_resnet.wide_resnet(activation="relu", **kwargs)
