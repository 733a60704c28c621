"""Tests of NASNet-A: activation placement, keras.applications parity, training."""

import collections

import gin
import keras
import numpy as np
import pytest

import swish_tf
from models import nasnet_mobile
from swish_tf.data import imagenet
from test_imagenet_data import write_cifar_image_folder

ACTIVATIONS = swish_tf.BENCHMARK_ACTIVATIONS + ("max(x, sigmoid(x))",)
TINY_IMAGE_SIZE = 32
# Activation layers of Mobile NASNet-A (4 @ 1056) and of the tiny variant (1 @ 192).
MOBILE_NONLINEARITIES = 192
TINY_NONLINEARITIES = 83


class CountingActivation(keras.layers.Layer):
    """ReLU without parameters that counts its instances."""

    instances = 0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        type(self).instances += 1

    def call(self, inputs):
        return keras.ops.relu(inputs)

    def get_config(self):
        # Without a fixed name each clone gets a unique one, as Keras requires in a model.
        config = super().get_config()
        config.pop("name")
        return config


def weight_shapes_by_layer_type(model):
    """Return the multiset of (layer type, weight shape) over all layers of `model`."""
    shapes = collections.Counter()
    for layer in model.layers:
        for weight in layer.weights:
            shapes[(type(layer).__name__, tuple(weight.shape))] += 1
    return shapes


def activation_layers(model, name):
    kind = type(swish_tf.get_activation(name))
    return [layer for layer in model.layers if type(layer) is kind]


@pytest.fixture
def image_folder(cifar10_dir, tmp_path):
    write_cifar_image_folder(cifar10_dir, tmp_path, 16, split="train")
    write_cifar_image_folder(cifar10_dir, tmp_path, 8, split="validation")
    return tmp_path


def test_full_model_matches_keras_applications():
    CountingActivation.instances = 0
    model = nasnet_mobile.nasnet_mobile(CountingActivation())
    reference = keras.applications.NASNetMobile(weights=None)

    assert CountingActivation.instances == MOBILE_NONLINEARITIES + 1
    assert model.count_params() == reference.count_params() == 5_326_716
    assert weight_shapes_by_layer_type(model) == weight_shapes_by_layer_type(reference)
    reference_relus = [layer for layer in reference.layers
                       if isinstance(layer, keras.layers.Activation)]
    assert len(reference_relus) == MOBILE_NONLINEARITIES


def test_tiny_count_of_nonlinearities():
    CountingActivation.instances = 0
    nasnet_mobile.nasnet_tiny(CountingActivation())
    assert CountingActivation.instances == TINY_NONLINEARITIES + 1


@pytest.fixture(scope="module")
def baseline_parameter_count():
    return nasnet_mobile.nasnet_tiny("relu").count_params()


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_tiny_builds_with_activation(activation, baseline_parameter_count):
    model = nasnet_mobile.nasnet_tiny(activation)
    layers = activation_layers(model, activation)
    assert len(layers) == TINY_NONLINEARITIES

    # Per-channel parameters (PReLU alpha, Swish beta) are separate variables in every layer.
    extra_parameters = model.count_params() - baseline_parameter_count
    channels = sum(layer.input.shape[-1] for layer in layers)
    if activation in ("prelu", "swish"):
        assert extra_parameters == channels
        variable_ids = {id(weight) for layer in layers for weight in layer.weights}
        assert len(variable_ids) == len(layers)
    else:
        assert extra_parameters == 0

    images = np.linspace(-1.0, 1.0, 2 * TINY_IMAGE_SIZE**2 * 3, dtype=np.float32)
    logits = model(images.reshape(2, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, 3), training=False)
    assert logits.shape == (2, 10)
    assert np.isfinite(logits.numpy()).all()


def test_tiny_trains_and_evaluates_on_images(image_folder):
    train = imagenet.imagenet_dataset("train", str(image_folder), batch_size=4,
                                      image_size=TINY_IMAGE_SIZE, source="image_folder",
                                      num_classes=10)
    evaluation = imagenet.imagenet_dataset("validation", str(image_folder), batch_size=4,
                                           image_size=TINY_IMAGE_SIZE, source="image_folder",
                                           num_classes=10)
    model = nasnet_mobile.nasnet_tiny("swish")
    model.compile(
        optimizer=keras.optimizers.RMSprop(0.01, rho=0.9, momentum=0.9, epsilon=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        # Tracing the graph of a model this deep costs more than the few steps save.
        run_eagerly=True,
    )
    before = [weight.numpy().copy() for weight in model.trainable_weights]

    history = model.fit(train.take(2), epochs=1, verbose=0)
    loss, accuracy = model.evaluate(evaluation, verbose=0)

    assert np.isfinite(history.history["loss"][0])
    assert np.isfinite(loss)
    assert 0.0 <= accuracy <= 1.0
    changed = [not np.array_equal(old, new.numpy())
               for old, new in zip(before, model.trainable_weights)]
    assert all(changed)


@pytest.mark.slow
def test_large_variant_parameter_count():
    model = nasnet_mobile.nasnet_large(CountingActivation())
    assert model.count_params() == keras.applications.NASNetLarge(weights=None).count_params()


def test_he_initialization_by_default():
    model = nasnet_mobile.nasnet_tiny("relu")
    convolutions = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    separable = [layer for layer in model.layers
                 if isinstance(layer, keras.layers.SeparableConv2D)]
    assert convolutions
    assert separable
    for layer in convolutions:
        assert isinstance(layer.kernel_initializer, keras.initializers.HeNormal)
    for layer in separable:
        assert isinstance(layer.depthwise_initializer, keras.initializers.HeNormal)
        assert isinstance(layer.pointwise_initializer, keras.initializers.HeNormal)


def test_weight_decay_adds_losses():
    model = nasnet_mobile.nasnet_a("relu", 10, image_size=32, num_normal_cells=1,
                                   penultimate_filters=96, stem_filters=8, weight_decay=4e-5)
    single_kernel = [layer for layer in model.layers
                     if type(layer) in (keras.layers.Conv2D, keras.layers.Dense)]
    separable = [layer for layer in model.layers
                 if type(layer) is keras.layers.SeparableConv2D]
    # A separable convolution has a depthwise and a pointwise kernel.
    assert len(model.losses) == len(single_kernel) + 2 * len(separable)


def test_gin_binding_sets_activation():
    gin.parse_config("nasnet_a.activation = 'swish_1'")
    model = nasnet_mobile.nasnet_a(num_classes=10, image_size=32, num_normal_cells=1,
                                   penultimate_filters=96, stem_filters=8)
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


@pytest.mark.slow
def test_full_model_train_step_on_images(image_folder):
    train = imagenet.imagenet_dataset("train", str(image_folder), batch_size=2, image_size=224,
                                      source="image_folder", num_classes=10)
    images, labels = next(iter(train))
    model = nasnet_mobile.nasnet_mobile("relu", num_classes=10)
    model.compile(optimizer=keras.optimizers.RMSprop(0.045, rho=0.9, momentum=0.9, epsilon=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    loss = model.train_on_batch(images, labels)
    assert np.isfinite(loss)
