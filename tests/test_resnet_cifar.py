"""Tests of models.resnet_cifar: structure, parameter counts, an activation at every position."""

import gin
import keras
import numpy as np
import pytest

from model_testing import CountingActivation
from models import resnet_cifar


def _parameter_counts(model):
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    return trainable, non_trainable


def test_resnet20_parameter_count():
    model = resnet_cifar.resnet20()
    trainable, non_trainable = _parameter_counts(model)
    # He et al. report 0.27M parameters for ResNet-20.
    assert trainable == 269_722
    assert non_trainable == 1_376  # Moving mean and variance of 688 batch-norm channels.
    assert model.count_params() == 271_098


def test_resnet56_parameter_count():
    trainable, _ = _parameter_counts(resnet_cifar.resnet56())
    assert trainable == 853_018  # He et al.: 0.85M.


@pytest.mark.parametrize("variant, positions", [
    ("resnet_tiny", 7), ("resnet20", 19), ("resnet32", 31), ("resnet110", 109)])
def test_activation_at_every_position(variant, positions):
    CountingActivation.instances = 0
    activation = CountingActivation()
    model = resnet_cifar.build_variant(variant, activation=activation)
    assert CountingActivation.instances == positions + 1
    used = [layer for layer in model.layers if isinstance(layer, CountingActivation)]
    assert len(used) == positions
    assert activation not in used


def test_swish_adds_per_channel_beta():
    relu_trainable, _ = _parameter_counts(resnet_cifar.resnet20())
    swish_trainable, _ = _parameter_counts(resnet_cifar.resnet20(activation="swish"))
    assert swish_trainable - relu_trainable == 688


def test_output_shape_and_dtype():
    model = resnet_cifar.resnet_tiny(num_classes=7)
    images = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
    logits = model(images, training=False)
    assert tuple(logits.shape) == (2, 7)
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"


def test_feature_map_sizes():
    model = resnet_cifar.resnet20()
    assert model.get_layer("stage1_block3_add").output.shape[1:] == (32, 32, 16)
    assert model.get_layer("stage2_block1_add").output.shape[1:] == (16, 16, 32)
    assert model.get_layer("stage3_block3_add").output.shape[1:] == (8, 8, 64)


def test_convolutions_are_channels_last():
    model = resnet_cifar.resnet_tiny()
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convolutions) == 7
    for layer in convolutions:
        assert layer.data_format == "channels_last"


@pytest.mark.parametrize("depth", [7, 21, 2])
def test_invalid_depth_raises(depth):
    with pytest.raises(ValueError, match=f"6n \\+ 2.*{depth}"):
        resnet_cifar.resnet_cifar(depth)


def test_unknown_variant_raises():
    with pytest.raises(ValueError, match="'resnet18'.*resnet20"):
        resnet_cifar.build_variant("resnet18")


def test_padded_shortcut_matches_numpy():
    inputs = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    outputs = resnet_cifar.PaddedShortcut(filters=8, strides=2)(inputs)
    expected = np.pad(inputs[:, ::2, ::2, :], [(0, 0), (0, 0), (0, 0), (2, 3)])
    np.testing.assert_array_equal(np.asarray(outputs), expected)


def test_padded_shortcut_config_round_trip():
    layer = resnet_cifar.PaddedShortcut(filters=32, strides=2, name="shortcut")
    clone = resnet_cifar.PaddedShortcut.from_config(layer.get_config())
    assert clone.filters == 32
    assert clone.strides == 2
    assert clone.name == "shortcut"


def test_weight_decay_adds_l2_losses():
    model = resnet_cifar.resnet_tiny(weight_decay=2e-4)
    assert len(model.losses) == 8  # Seven convolutions and the dense kernel.
    kernel = model.get_layer("logits").kernel
    expected = 1e-4 * float(np.sum(np.square(np.asarray(kernel))))
    np.testing.assert_allclose(float(model.get_layer("logits").losses[0]), expected, rtol=1e-5)
    assert not resnet_cifar.resnet_tiny().losses


def test_gin_binds_builder_arguments():
    gin.parse_config(["resnet_cifar.base_filters = 8", "resnet_cifar.activation = 'elu'"])
    model = resnet_cifar.resnet20()
    assert model.get_layer("stage3_block3_add").output.shape[-1] == 32
    activations = [layer for layer in model.layers if isinstance(layer, keras.layers.Activation)]
    assert len(activations) == 19
    assert all(layer.activation is keras.activations.elu for layer in activations)
