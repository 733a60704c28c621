"""Tests that every ImageNet model passes: keras.applications parity, activation placement,
per-layer parameters, He initialization, and training on real images.

Tests of one model's own arguments are in `test_<model>.py`.
"""

import dataclasses
from typing import Callable

import keras
import numpy as np
import pytest

from model_testing import (ACTIVATIONS, CountingActivation, check_per_layer_parameters,
                           count_nonlinearities, weight_shapes_by_layer_type)
from models import inception_resnet_v2, inception_v3, mobilenet, nasnet_mobile
from swish_tf.data import imagenet
from test_imagenet_data import write_cifar_image_folder


@dataclasses.dataclass(frozen=True)
class ImageNetModel:
    full: Callable[..., keras.Model]  # The paper-size builder: full(activation, **kwargs).
    tiny: Callable[..., keras.Model]  # The test-only builder: tiny(activation).
    reference: Callable[..., keras.Model]  # Its keras.applications counterpart.
    parameters: int  # Of the full model and of the reference, 1000 classes.
    full_nonlinearities: int
    tiny_nonlinearities: int
    reference_activation: type  # The layer type of the reference's nonlinearities.
    full_image_size: int
    tiny_image_size: int
    parity_arguments: dict = dataclasses.field(default_factory=dict)


MODELS = {
    "inception_resnet_v2": ImageNetModel(
        full=inception_resnet_v2.inception_resnet_v2,
        tiny=inception_resnet_v2.inception_resnet_v2_tiny,
        reference=keras.applications.InceptionResNetV2, parameters=55_873_736,
        full_nonlinearities=243, tiny_nonlinearities=40,
        reference_activation=keras.layers.Activation, full_image_size=299, tiny_image_size=75,
        # keras.applications learns no batch-norm scale (gamma) in this model.
        parity_arguments={"batchnorm_scale": False}),
    "inception_v3": ImageNetModel(
        full=inception_v3.inception_v3, tiny=inception_v3.inception_v3_tiny,
        reference=keras.applications.InceptionV3, parameters=23_851_784,
        full_nonlinearities=94, tiny_nonlinearities=94,
        reference_activation=keras.layers.Activation, full_image_size=299, tiny_image_size=75),
    "mobilenet": ImageNetModel(
        full=mobilenet.mobilenet, tiny=mobilenet.mobilenet_tiny,
        reference=keras.applications.MobileNet, parameters=4_253_864,
        full_nonlinearities=27, tiny_nonlinearities=27,
        reference_activation=keras.layers.ReLU, full_image_size=224, tiny_image_size=32),
    "nasnet_mobile": ImageNetModel(
        full=nasnet_mobile.nasnet_mobile, tiny=nasnet_mobile.nasnet_tiny,
        reference=keras.applications.NASNetMobile, parameters=5_326_716,
        full_nonlinearities=192, tiny_nonlinearities=83,
        reference_activation=keras.layers.Activation, full_image_size=224, tiny_image_size=32),
}

KERNEL_INITIALIZERS = ("kernel_initializer", "depthwise_initializer", "pointwise_initializer")


@pytest.fixture
def image_folder(cifar10_dir, tmp_path):
    write_cifar_image_folder(cifar10_dir, tmp_path, 16, split="train")
    write_cifar_image_folder(cifar10_dir, tmp_path, 8, split="validation")
    return tmp_path


@pytest.fixture(scope="module")
def relu_parameters():
    """The parameter count of each tiny model with ReLU, built once per module."""
    return {name: model.tiny("relu").count_params() for name, model in MODELS.items()}


@pytest.mark.parametrize("name", MODELS)
def test_full_model_matches_keras_applications(name):
    spec = MODELS[name]
    CountingActivation.instances = 0
    model = spec.full(CountingActivation(), **spec.parity_arguments)
    reference = spec.reference(weights=None)

    assert CountingActivation.instances == spec.full_nonlinearities + 1
    assert model.count_params() == reference.count_params() == spec.parameters
    # The same layer types with the same weight shapes.
    assert weight_shapes_by_layer_type(model) == weight_shapes_by_layer_type(reference)
    reference_activations = [layer for layer in reference.layers
                             if isinstance(layer, spec.reference_activation)]
    assert len(reference_activations) == spec.full_nonlinearities


@pytest.mark.parametrize("name", MODELS)
def test_tiny_count_of_nonlinearities(name):
    assert count_nonlinearities(MODELS[name].tiny) == MODELS[name].tiny_nonlinearities


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("name", MODELS)
def test_tiny_builds_with_activation(name, activation, relu_parameters):
    spec = MODELS[name]
    model = spec.tiny(activation)
    check_per_layer_parameters(model, activation, relu_parameters[name],
                               spec.tiny_nonlinearities)

    size = spec.tiny_image_size
    images = np.linspace(-1.0, 1.0, 2 * size * size * 3, dtype=np.float32)
    logits = model(images.reshape(2, size, size, 3), training=False)
    assert logits.shape == (2, 10)
    assert np.isfinite(logits.numpy()).all()


@pytest.mark.parametrize("name", MODELS)
def test_he_initialization_by_default(name):
    model = MODELS[name].tiny("relu")
    initializers = [getattr(layer, attribute) for layer in model.layers
                    if isinstance(layer, (keras.layers.Conv2D, keras.layers.SeparableConv2D,
                                          keras.layers.DepthwiseConv2D))
                    for attribute in KERNEL_INITIALIZERS if hasattr(layer, attribute)]
    assert initializers
    assert all(isinstance(initializer, keras.initializers.HeNormal)
               for initializer in initializers)


@pytest.mark.parametrize("name", MODELS)
def test_tiny_trains_and_evaluates_on_images(name, image_folder):
    spec = MODELS[name]
    datasets = [imagenet.imagenet_dataset(split, str(image_folder), batch_size=4,
                                          image_size=spec.tiny_image_size,
                                          source="image_folder", num_classes=10)
                for split in ("train", "validation")]
    model = spec.tiny("swish")
    model.compile(
        optimizer=keras.optimizers.RMSprop(0.01, rho=0.9, momentum=0.9, epsilon=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        # Tracing the graph of a model this deep costs more than the few steps save.
        run_eagerly=True,
    )
    before = [weight.numpy().copy() for weight in model.trainable_weights]

    history = model.fit(datasets[0].take(2), epochs=1, verbose=0)
    loss, accuracy = model.evaluate(datasets[1], verbose=0)

    assert np.isfinite(history.history["loss"][0])
    assert np.isfinite(loss)
    assert 0.0 <= accuracy <= 1.0
    unchanged = [weight.path for old, weight in zip(before, model.trainable_weights)
                 if np.array_equal(old, weight.numpy())]
    assert unchanged == []


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_full_model_train_step_on_images(name, image_folder):
    spec = MODELS[name]
    train = imagenet.imagenet_dataset("train", str(image_folder), batch_size=2,
                                      image_size=spec.full_image_size, source="image_folder",
                                      num_classes=10)
    images, labels = next(iter(train))
    model = spec.full("relu", num_classes=10)
    model.compile(optimizer=keras.optimizers.RMSprop(0.045, rho=0.9, momentum=0.9, epsilon=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    loss = model.train_on_batch(images, labels)
    assert np.isfinite(loss)
