"""Tests of NASNet-A's own arguments; test_imagenet_models.py has the shared tests."""

import gin
import keras
import pytest

from model_testing import CountingActivation, activation_layers
from models import nasnet_mobile

# Activation layers of NASNet-A with one normal cell per stack.
TINY_NONLINEARITIES = 83


@pytest.mark.slow
def test_large_variant_parameter_count():
    model = nasnet_mobile.nasnet_large(CountingActivation())
    assert model.count_params() == keras.applications.NASNetLarge(weights=None).count_params()


def test_weight_decay_adds_losses():
    model = nasnet_mobile.nasnet_a("relu", 10, image_size=32, num_normal_cells=1,
                                   penultimate_filters=192, stem_filters=8, weight_decay=4e-5)
    single_kernel = [layer for layer in model.layers
                     if type(layer) in (keras.layers.Conv2D, keras.layers.Dense)]
    separable = [layer for layer in model.layers
                 if type(layer) is keras.layers.SeparableConv2D]
    # A separable convolution has a depthwise and a pointwise kernel.
    assert len(model.losses) == len(single_kernel) + 2 * len(separable)


def test_gin_binding_sets_activation():
    gin.parse_config("nasnet_a.activation = 'swish_1'")
    model = nasnet_mobile.nasnet_a(num_classes=10, image_size=32, num_normal_cells=1,
                                   penultimate_filters=192, stem_filters=8)
    assert len(activation_layers(model, "swish_1")) == TINY_NONLINEARITIES


@pytest.mark.parametrize("arguments, message", [
    ({"image_size": 31}, "image_size >= 32"),
    ({"penultimate_filters": 1000}, "multiple of 24"),
    ({"num_normal_cells": 0}, "num_normal_cells must be >= 1"),
    ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
    ({"activation": "no_such_activation"}, "no_such_activation"),
])
def test_invalid_arguments_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        nasnet_mobile.nasnet_a(**arguments)
