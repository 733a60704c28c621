"""Pre-activation ResNet with bottleneck blocks for CIFAR (ResNet-164 of the benchmarks).

He, Zhang, Ren and Sun, "Identity Mappings in Deep Residual Networks" (2016): every residual unit
is BN -> activation -> conv 1x1 -> BN -> activation -> conv 3x3 -> BN -> activation -> conv 1x1
(4x wider out), added to an identity shortcut. For CIFAR, depth = 9n + 2: a 3x3 stem convolution
with 16 filters, three stages of n units with 16, 32 and 64 bottleneck filters (64, 128, 256
output channels) at 32x32, 16x16 and 8x8, then BN -> activation -> global average pooling ->
dense. ResNet-164 (n = 18) has 1,703,258 trainable parameters with ReLU and 10 classes (1.7M in
that paper).

The first unit of each stage changes the width (and, in stages 2 and 3, halves the resolution
with stride 2 in its 3x3 convolution). Its shortcut is a 1x1 projection that reads the unit's
pre-activated input, as that paper does after the stem convolution.
"""

from typing import Sequence

import gin
import keras

from swish_tf import get_activation

# Torch's BatchNorm momentum 0.1 and epsilon 1e-5, as in the authors' code.
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
# He initialization with fan_out, as in the authors' Torch code.
_KERNEL_INITIALIZER = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def _conv(filters: int, kernel_size: int, strides: int = 1, name: str | None = None):
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                               use_bias=False, kernel_initializer=_KERNEL_INITIALIZER, name=name)


def _batch_norm(name: str):
    return keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)


def _bottleneck_unit(x, filters: int, strides: int, activation, name: str):
    """Apply one pre-activation bottleneck unit with 4 * filters output channels."""
    out_channels = 4 * filters
    preactivated = _batch_norm(f"{name}_bn1")(x)
    preactivated = get_activation(activation)(preactivated)
    if strides != 1 or x.shape[-1] != out_channels:
        shortcut = _conv(out_channels, 1, strides, name=f"{name}_projection")(preactivated)
    else:
        shortcut = x

    y = _conv(filters, 1, name=f"{name}_conv1")(preactivated)
    y = _batch_norm(f"{name}_bn2")(y)
    y = get_activation(activation)(y)
    y = _conv(filters, 3, strides, name=f"{name}_conv2")(y)
    y = _batch_norm(f"{name}_bn3")(y)
    y = get_activation(activation)(y)
    y = _conv(out_channels, 1, name=f"{name}_conv3")(y)
    return keras.layers.Add(name=f"{name}_add")([shortcut, y])


@gin.configurable
def preact_resnet(depth: int, activation, num_classes: int = 10,
                  input_shape: Sequence[int] = (32, 32, 3),
                  base_filters: int = 16) -> keras.Model:
    """Build a CIFAR pre-activation bottleneck ResNet.

    Args:
      depth: 9n + 2 for n units per stage, e.g. 164 (n = 18) or 11 (n = 1).
      activation: any spec of `swish_tf.get_activation`; each of the 3 * 3n + 1 nonlinearities
        gets its own layer, so per-channel parameters are never shared.
      num_classes: size of the logits output.
      input_shape: (height, width, channels) of the input images.
      base_filters: bottleneck filters of the first stage (16 in the paper); the stem has this
        many filters and later stages double it.

    Returns:
      An uncompiled functional model that outputs logits.

    Raises:
      ValueError: if depth is not 9n + 2 with n >= 1.
    """
    if depth < 11 or (depth - 2) % 9:
        raise ValueError(f"preact_resnet depth must be 9n + 2 with n >= 1 (11, 20, ..., 164, "
                         f"1001); received {depth}.")
    units_per_stage = (depth - 2) // 9

    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = _conv(base_filters, 3, name="stem_conv")(inputs)
    for stage in range(3):
        for unit in range(units_per_stage):
            strides = 2 if stage > 0 and unit == 0 else 1
            x = _bottleneck_unit(x, base_filters * 2**stage, strides, activation,
                                 name=f"stage{stage + 1}_unit{unit + 1}")
    x = _batch_norm("final_bn")(x)
    x = get_activation(activation)(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"preact_resnet{depth}")


@gin.configurable
def preact_resnet164(activation="relu", num_classes: int = 10) -> keras.Model:
    """Build ResNet-164 for 32x32 images, the CIFAR benchmark model."""
    return preact_resnet(164, activation, num_classes)


@gin.configurable
def preact_resnet_tiny(activation="relu", num_classes: int = 10) -> keras.Model:
    """Build an 11-layer, 4-filter version for tests: the same code paths in seconds."""
    return preact_resnet(11, activation, num_classes, base_filters=4)
