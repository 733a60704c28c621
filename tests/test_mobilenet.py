"""Tests of MobileNet's own arguments; test_imagenet_models.py has the shared tests."""

import gin
import keras
import pytest

from model_testing import activation_layers
from models import mobilenet

TINY_NONLINEARITIES = 27


def test_relu6_layer_instance_builds():
    model = mobilenet.mobilenet_tiny(keras.layers.ReLU(6.0))
    relu6_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    assert len(relu6_layers) == TINY_NONLINEARITIES
    assert all(layer.max_value == 6.0 for layer in relu6_layers)


def test_weight_decay_adds_losses():
    model = mobilenet.mobilenet("relu", 10, image_size=32, alpha=0.25, weight_decay=4e-5)
    kernels = [layer for layer in model.layers
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                     keras.layers.Dense))]
    assert len(model.losses) == len(kernels)


def test_gin_binding_sets_activation():
    gin.parse_config("mobilenet.activation = 'swish_1'")
    model = mobilenet.mobilenet(num_classes=10, image_size=32, alpha=0.25)
    assert len(activation_layers(model, "swish_1")) == TINY_NONLINEARITIES


@pytest.mark.parametrize("arguments, message", [
    ({"image_size": 16}, "image_size >= 32"),
    ({"alpha": 0.0}, "filter_scale must be > 0"),
    ({"depth_multiplier": 0}, "depth_multiplier must be >= 1"),
    ({"activation": "no_such_activation"}, "no_such_activation"),
])
def test_invalid_arguments_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        mobilenet.mobilenet(**arguments)
