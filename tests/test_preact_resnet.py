"""Tests for models/preact_resnet.py: structure, activation placement, training on CIFAR-10."""

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from models import preact_resnet
import swish_tf

ACTIVATIONS = (*swish_tf.BENCHMARK_ACTIVATIONS, "max(x, sigmoid(x))")
# ResNet-11 (one unit per stage): 3 nonlinearities per unit and one before pooling.
TINY_POSITIONS = 3 * 3 + 1
RESNET164_POSITIONS = 3 * 3 * 18 + 1


class CountingActivation(keras.layers.Layer):
    """ReLU that counts its instances, to count the positions that call get_activation."""

    instances = 0

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        CountingActivation.instances += 1

    def call(self, inputs):
        return keras.ops.relu(inputs)

    def get_config(self):
        # get_activation clones this layer from its config; with the name in it, every clone
        # would share one name, and keras.Model rejects duplicate layer names.
        config = super().get_config()
        config.pop("name")
        return config


@pytest.fixture(scope="module")
def cifar_batch(cifar10_dir):
    from swish_tf.data import cifar
    splits = cifar.load_cifar10(cifar10_dir)
    images = ((splits.test_images[:8] / 255.0 - splits.channel_mean) / splits.channel_std)
    return images.astype(np.float32), splits.test_labels[:8]


def _train_step_and_evaluate(model, images, labels):
    """Run one SGD step and one evaluation; return (training loss, evaluation loss)."""
    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        loss = tf.reduce_mean(loss)
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None for g in gradients)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    eval_logits = model(images, training=False)
    eval_loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
        labels, eval_logits, from_logits=True))
    return float(loss), float(eval_loss)


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
def test_tiny_trains_with_activation(activation, cifar_batch):
    images, labels = cifar_batch
    model = preact_resnet.preact_resnet_tiny(activation=activation)
    train_loss, eval_loss = _train_step_and_evaluate(model, images, labels)
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
