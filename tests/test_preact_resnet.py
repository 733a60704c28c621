"""Tests for models/preact_resnet.py: structure, activation placement, training on CIFAR-10."""

import gin
import numpy as np
import pytest

from model_testing import ACTIVATIONS, CountingActivation, train_step_and_evaluate
from models import preact_resnet
import swish_tf

# ResNet-11 (one unit per stage): 3 nonlinearities per unit and one before pooling.
TINY_POSITIONS = 3 * 3 + 1
RESNET164_POSITIONS = 3 * 3 * 18 + 1


def test_resnet164_parameter_count_and_positions():
    CountingActivation.instances = 0
    model = preact_resnet.preact_resnet164(activation=CountingActivation())
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    # 1.7M in "Identity Mappings in Deep Residual Networks", table 2.
    assert trainable == 1_703_258
    assert CountingActivation.instances == RESNET164_POSITIONS + 1
    assert model.output_shape == (None, 10)


def test_tiny_counting_activation():
    CountingActivation.instances = 0
    preact_resnet.preact_resnet_tiny(activation=CountingActivation())
    assert CountingActivation.instances == TINY_POSITIONS + 1


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_tiny_trains_with_activation(activation, cifar_test_batch):
    images, labels = cifar_test_batch
    model = preact_resnet.preact_resnet_tiny(activation=activation)
    train_loss, eval_loss = train_step_and_evaluate(model, images, labels)
    assert np.isfinite(train_loss)
    assert np.isfinite(eval_loss)


@pytest.mark.parametrize("activation", ["prelu", "swish"])
def test_per_channel_parameters_per_layer(activation):
    model = preact_resnet.preact_resnet_tiny(activation=activation)
    layer_type = type(swish_tf.get_activation(activation))
    weights = [w for layer in model.layers if isinstance(layer, layer_type)
               for w in layer.trainable_weights]
    assert len(weights) == TINY_POSITIONS
    assert len({id(w) for w in weights}) == TINY_POSITIONS
    # The last position gets the 4 * 16 = 64 output channels of stage 3.
    assert weights[-1].shape == (64,)


def test_cifar100_head():
    model = preact_resnet.preact_resnet_tiny(num_classes=100)
    assert model.output_shape == (None, 100)


@pytest.mark.parametrize("depth", [10, 12, 0])
def test_invalid_depth_raises(depth):
    with pytest.raises(ValueError, match=f"received {depth}"):
        preact_resnet.preact_resnet(depth, "relu")


def test_gin_binds_builder():
    gin.parse_config("""
        import models.preact_resnet
        preact_resnet.base_filters = 2
    """)
    model = preact_resnet.preact_resnet(11, "relu")
    assert model.get_layer("stem_conv").filters == 2
