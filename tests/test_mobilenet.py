"""Tests of MobileNet: activation placement, keras.applications parity, training."""

import collections

import gin
import keras
import numpy as np
import pytest

import swish_tf
from models import mobilenet
from swish_tf.data import imagenet
from test_imagenet_data import write_cifar_image_folder

ACTIVATIONS = swish_tf.BENCHMARK_ACTIVATIONS + ("max(x, sigmoid(x))",)
TINY_IMAGE_SIZE = 32
# Activation layers of the published model and of the tiny variant.
FULL_NONLINEARITIES = 27
TINY_NONLINEARITIES = 27


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
    model = mobilenet.mobilenet(CountingActivation())
    reference = keras.applications.MobileNet(weights=None)

    assert CountingActivation.instances == FULL_NONLINEARITIES + 1
    assert model.count_params() == reference.count_params() == 4_253_864
    assert weight_shapes_by_layer_type(model) == weight_shapes_by_layer_type(reference)
    reference_activations = [layer for layer in reference.layers
                             if isinstance(layer, keras.layers.ReLU)]
    assert len(reference_activations) == FULL_NONLINEARITIES


def test_tiny_count_of_nonlinearities():
    CountingActivation.instances = 0
    mobilenet.mobilenet_tiny(CountingActivation())
    assert CountingActivation.instances == TINY_NONLINEARITIES + 1


@pytest.fixture(scope="module")
def baseline_parameter_count():
    return mobilenet.mobilenet_tiny("relu").count_params()


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_tiny_builds_with_activation(activation, baseline_parameter_count):
    model = mobilenet.mobilenet_tiny(activation)
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
    model = mobilenet.mobilenet_tiny("swish")
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


def test_relu6_layer_instance_builds():
    model = mobilenet.mobilenet_tiny(keras.layers.ReLU(6.0))
    relu6_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    assert len(relu6_layers) == TINY_NONLINEARITIES
    assert all(layer.max_value == 6.0 for layer in relu6_layers)


def test_he_initialization_by_default():
    model = mobilenet.mobilenet_tiny("relu")
    convolutions = [layer for layer in model.layers if type(layer) is keras.layers.Conv2D]
    assert convolutions
    for layer in convolutions:
        assert isinstance(layer.kernel_initializer, keras.initializers.HeNormal)


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


@pytest.mark.slow
def test_full_model_train_step_on_images(image_folder):
    train = imagenet.imagenet_dataset("train", str(image_folder), batch_size=2,
                                      image_size=224, source="image_folder",
                                      num_classes=10)
    images, labels = next(iter(train))
    model = mobilenet.mobilenet("relu", num_classes=10)
    model.compile(optimizer=keras.optimizers.RMSprop(0.045, rho=0.9, momentum=0.9, epsilon=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
    loss = model.train_on_batch(images, labels)
    assert np.isfinite(loss)
