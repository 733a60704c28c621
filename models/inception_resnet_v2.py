"""Inception-ResNet-v2 with a configurable activation at every nonlinearity.

Architecture of "Inception-v4, Inception-ResNet and the Impact of Residual Connections on
Learning" (Szegedy et al., 2017), laid out like `keras.applications.InceptionResNetV2` so that
the parameter counts match when the activation has no parameters. Unlike that model, which
hard-codes ReLU, every nonlinearity here comes from `swish_tf.get_activation`.
"Searching for Activation Functions" reports ImageNet top-1 of ReLU 79.5 / 79.6 / 79.8 and
Swish 80.2 / 80.2 / 80.3 (3 runs) for this model.

NOTE: like `keras.applications.InceptionResNetV2`, the model has no auxiliary classifier.
"""

from typing import Any, Sequence

import gin
import keras

import swish_tf
from models.inception_v3 import ConvOptions, check_options, classifier_head, conv_bn

IMAGE_SIZE = 299
# Blocks of type 35 (35x35 grid), 17 (17x17) and 8 (8x8) in the published model.
BLOCK_COUNTS = (10, 20, 10)
# Residual scale per block type, as in keras.applications. The Inception-ResNet paper scales
# residuals by 0.1 to 0.3 because wide residual stacks otherwise become unstable in training.
RESIDUAL_SCALES = {"block35": 0.17, "block17": 0.1, "block8": 0.2}


@keras.saving.register_keras_serializable(package="swish_tf")
class ScaledResidual(keras.layers.Layer):
    """Compute `shortcut + scale * residual` from the input list `[shortcut, residual]`."""

    def __init__(self, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale

    def call(self, inputs):
        shortcut, residual = inputs
        return shortcut + self.scale * residual

    def get_config(self):
        config = super().get_config()
        config["scale"] = self.scale
        return config


def _residual_block(x, block_type: str, scale: float, options: ConvOptions, name: str,
                    activate: bool = True):
    """Add one Inception-ResNet block: `x + scale * conv(concat(branches))`.

    The last 8x8 block of the published model has no activation after the sum (`activate`
    False).
    """
    if block_type == "block35":
        branch_0 = conv_bn(x, 32, 1, options)
        branch_1 = conv_bn(x, 32, 1, options)
        branch_1 = conv_bn(branch_1, 32, 3, options)
        branch_2 = conv_bn(x, 32, 1, options)
        branch_2 = conv_bn(branch_2, 48, 3, options)
        branch_2 = conv_bn(branch_2, 64, 3, options)
        branches = [branch_0, branch_1, branch_2]
    elif block_type == "block17":
        branch_0 = conv_bn(x, 192, 1, options)
        branch_1 = conv_bn(x, 128, 1, options)
        branch_1 = conv_bn(branch_1, 160, (1, 7), options)
        branch_1 = conv_bn(branch_1, 192, (7, 1), options)
        branches = [branch_0, branch_1]
    elif block_type == "block8":
        branch_0 = conv_bn(x, 192, 1, options)
        branch_1 = conv_bn(x, 192, 1, options)
        branch_1 = conv_bn(branch_1, 224, (1, 3), options)
        branch_1 = conv_bn(branch_1, 256, (3, 1), options)
        branches = [branch_0, branch_1]
    else:
        raise ValueError(
            f"Unknown block type {block_type!r}; expected 'block35', 'block17' or 'block8'.")

    mixed = keras.layers.Concatenate(name=f"{name}_mixed")(branches)
    # The projection back to the shortcut's width has a bias and no batch norm.
    residual = keras.layers.Conv2D(
        x.shape[-1],
        1,
        kernel_initializer=options.kernel_initializer,
        kernel_regularizer=options.kernel_regularizer(),
        name=f"{name}_conv",
    )(mixed)
    x = ScaledResidual(scale, name=f"{name}_scale")([x, residual])
    if activate:
        x = swish_tf.get_activation(options.activation)(x)
    return x


def count_nonlinearities(block_counts: Sequence[int] = BLOCK_COUNTS) -> int:
    """Return how many activation layers `inception_resnet_v2` creates (243 published)."""
    blocks_35, blocks_17, blocks_8 = block_counts
    stem, mixed_5b, mixed_6a, mixed_7a, conv_7b = 5, 7, 4, 7, 1
    return (stem + mixed_5b + 7 * blocks_35 + mixed_6a + 5 * blocks_17 + mixed_7a
            + 5 * blocks_8 - 1 + conv_7b)


@gin.configurable
def inception_resnet_v2(
    activation: Any = "relu",
    num_classes: int = 1000,
    image_size: int = IMAGE_SIZE,
    block_counts: Sequence[int] = BLOCK_COUNTS,
    filter_scale: float = 1.0,
    dropout_rate: float = 0.0,
    kernel_initializer: str = "he_normal",
    weight_decay: float = 0.0,
    batchnorm_scale: bool = False,
) -> keras.Model:
    """Build Inception-ResNet-v2 for `image_size` x `image_size` RGB input, returning logits.

    Args:
        activation: spec for `swish_tf.get_activation`, resolved anew at each nonlinearity
            (243 in the published model, see `count_nonlinearities`), so trainable
            parameters (Swish beta, PReLU alpha) are per layer.
        num_classes: width of the logits.
        image_size: input height and width; at least 75 because of the valid-padded stem.
        block_counts: numbers of 35x35, 17x17 and 8x8 residual blocks; each count >= 1.
        filter_scale: multiplier on every filter count; 1.0 is the published model.
        dropout_rate: dropout before the classifier. TF-Slim's `inception_resnet_v2` keeps
            0.8 of the units (rate 0.2); `keras.applications` uses none.
        kernel_initializer: initializer of all kernels; "Searching for Activation Functions"
            uses He initialization on ImageNet.
        weight_decay: TF-Slim-style L2 coefficient on every kernel (see `ConvOptions`).
        batchnorm_scale: learn a batch-norm scale. The Inception papers and
            `keras.applications` leave it off, which is harmless before ReLU. "Searching for
            Activation Functions" advises keeping it on for Swish.

    Raises:
        ValueError: for an image size below 75, block counts that are not three positive
            integers, or an invalid option.
    """
    if image_size < 75:
        raise ValueError(f"Inception-ResNet-v2 needs image_size >= 75, received {image_size}.")
    block_counts = tuple(block_counts)
    if len(block_counts) != 3 or any(int(count) != count or count < 1 for count in block_counts):
        raise ValueError(
            f"block_counts must be three positive integers, received {block_counts!r}.")
    check_options(weight_decay, filter_scale)
    options = ConvOptions(activation, kernel_initializer, weight_decay, batchnorm_scale,
                          filter_scale)
    blocks_35, blocks_17, blocks_8 = block_counts

    inputs = keras.Input((image_size, image_size, 3))
    x = conv_bn(inputs, 32, 3, options, strides=2, padding="valid")
    x = conv_bn(x, 32, 3, options, padding="valid")
    x = conv_bn(x, 64, 3, options)
    x = keras.layers.MaxPooling2D(3, strides=2)(x)
    x = conv_bn(x, 80, 1, options, padding="valid")
    x = conv_bn(x, 192, 3, options, padding="valid")
    x = keras.layers.MaxPooling2D(3, strides=2)(x)

    # Mixed 5b: an Inception-A module that widens the stem output to 320 channels.
    branch_0 = conv_bn(x, 96, 1, options)
    branch_1 = conv_bn(x, 48, 1, options)
    branch_1 = conv_bn(branch_1, 64, 5, options)
    branch_2 = conv_bn(x, 64, 1, options)
    branch_2 = conv_bn(branch_2, 96, 3, options)
    branch_2 = conv_bn(branch_2, 96, 3, options)
    branch_pool = keras.layers.AveragePooling2D(3, strides=1, padding="same")(x)
    branch_pool = conv_bn(branch_pool, 64, 1, options)
    x = keras.layers.Concatenate(name="mixed_5b")([branch_0, branch_1, branch_2, branch_pool])

    for index in range(1, blocks_35 + 1):
        x = _residual_block(x, "block35", RESIDUAL_SCALES["block35"], options,
                            name=f"block35_{index}")

    # Mixed 6a: reduction 35x35 -> 17x17.
    branch_0 = conv_bn(x, 384, 3, options, strides=2, padding="valid")
    branch_1 = conv_bn(x, 256, 1, options)
    branch_1 = conv_bn(branch_1, 256, 3, options)
    branch_1 = conv_bn(branch_1, 384, 3, options, strides=2, padding="valid")
    branch_pool = keras.layers.MaxPooling2D(3, strides=2)(x)
    x = keras.layers.Concatenate(name="mixed_6a")([branch_0, branch_1, branch_pool])

    for index in range(1, blocks_17 + 1):
        x = _residual_block(x, "block17", RESIDUAL_SCALES["block17"], options,
                            name=f"block17_{index}")

    # Mixed 7a: reduction 17x17 -> 8x8.
    branch_0 = conv_bn(x, 256, 1, options)
    branch_0 = conv_bn(branch_0, 384, 3, options, strides=2, padding="valid")
    branch_1 = conv_bn(x, 256, 1, options)
    branch_1 = conv_bn(branch_1, 288, 3, options, strides=2, padding="valid")
    branch_2 = conv_bn(x, 256, 1, options)
    branch_2 = conv_bn(branch_2, 288, 3, options)
    branch_2 = conv_bn(branch_2, 320, 3, options, strides=2, padding="valid")
    branch_pool = keras.layers.MaxPooling2D(3, strides=2)(x)
    x = keras.layers.Concatenate(name="mixed_7a")([branch_0, branch_1, branch_2, branch_pool])

    for index in range(1, blocks_8):
        x = _residual_block(x, "block8", RESIDUAL_SCALES["block8"], options,
                            name=f"block8_{index}")
    x = _residual_block(x, "block8", 1.0, options, name=f"block8_{blocks_8}", activate=False)
    x = conv_bn(x, 1536, 1, options)

    logits = classifier_head(x, num_classes, dropout_rate, options)
    return keras.Model(inputs, logits, name="inception_resnet_v2")


def inception_resnet_v2_tiny(activation: Any = "relu", num_classes: int = 10) -> keras.Model:
    """Build a test-only Inception-ResNet-v2: one block per stage, 1/16 of the filters, 75x75."""
    return inception_resnet_v2(activation, num_classes, image_size=75, block_counts=(1, 1, 1),
                               filter_scale=1 / 16)
