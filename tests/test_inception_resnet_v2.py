"""Tests of Inception-ResNet-v2's own arguments; test_imagenet_models.py has the shared tests."""

import gin
import keras
import pytest

from model_testing import activation_layers, count_nonlinearities
from models import inception_resnet_v2


def test_count_of_nonlinearities_by_block_counts():
    assert inception_resnet_v2.count_nonlinearities() == 243
    assert inception_resnet_v2.count_nonlinearities((1, 1, 1)) == 40
    assert count_nonlinearities(inception_resnet_v2.inception_resnet_v2_tiny) == 40


def test_weight_decay_adds_losses():
    model = inception_resnet_v2.inception_resnet_v2(
        "relu", 10, image_size=75, block_counts=(1, 1, 1), filter_scale=1 / 16,
        weight_decay=4e-5)
    kernels = [layer for layer in model.layers
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]
    assert len(model.losses) == len(kernels)


def test_gin_binding_sets_activation():
    gin.parse_config("inception_resnet_v2.activation = 'swish_1'")
    model = inception_resnet_v2.inception_resnet_v2(image_size=75, block_counts=(1, 1, 1),
                                                    filter_scale=1 / 16)
    assert len(activation_layers(model, "swish_1")) == 40


@pytest.mark.parametrize("arguments, message", [
    ({"image_size": 64}, "image_size >= 75"),
    ({"block_counts": (1, 0, 1)}, "three positive integers"),
    ({"filter_scale": 0.0}, "filter_scale must be > 0"),
    ({"activation": "no_such_activation"}, "no_such_activation"),
])
def test_invalid_arguments_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        inception_resnet_v2.inception_resnet_v2(**arguments)
