"""Tests of Inception-v3's own arguments; test_imagenet_models.py has the shared tests."""

import gin
import keras
import pytest

from model_testing import activation_layers
from models import inception_v3

TINY_NONLINEARITIES = 94


def test_weight_decay_adds_losses():
    model = inception_v3.inception_v3("relu", 10, image_size=75, filter_scale=1 / 16, weight_decay=4e-5)
    kernels = [layer for layer in model.layers
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                                     keras.layers.Dense))]
    assert len(model.losses) == len(kernels)


def test_gin_binding_sets_activation():
    gin.parse_config("inception_v3.activation = 'swish_1'")
    model = inception_v3.inception_v3(num_classes=10, image_size=75, filter_scale=1 / 16)
    assert len(activation_layers(model, "swish_1")) == TINY_NONLINEARITIES


@pytest.mark.parametrize("arguments, message", [
    ({"image_size": 74}, "image_size >= 75"),
    ({"filter_scale": -1.0}, "filter_scale must be > 0"),
    ({"activation": "no_such_activation"}, "no_such_activation"),
])
def test_invalid_arguments_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        inception_v3.inception_v3(**arguments)
