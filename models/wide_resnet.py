"""Wide ResNet for CIFAR (WRN-28-10 of the benchmarks).

Zagoruyko and Komodakis, "Wide Residual Networks" (2016). WRN-d-k has depth d = 6n + 4: a 3x3
stem convolution with 16 filters, three stages of n pre-activation basic blocks with 16k, 32k and
64k filters at 32x32, 16x16 and 8x8, then BN -> activation -> global average pooling -> dense.
A block is BN -> activation -> conv 3x3 -> [dropout] -> BN -> activation -> conv 3x3 added to the
shortcut. The first block of each stage changes the width (stages 2 and 3 also stride by 2), and
its shortcut is a 1x1 projection of the pre-activated input. WRN-28-10 has 36,479,194 trainable
parameters with ReLU and 10 classes (36.5M in that paper).
"""

from typing import Sequence

import gin
import keras

from swish_tf import get_activation

_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
_KERNEL_INITIALIZER = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def _conv(filters: int, kernel_size: int, strides: int = 1, name: str | None = None):
    return keras.layers.Conv2D(filters, kernel_size, strides=strides, padding="same",
                               use_bias=False, kernel_initializer=_KERNEL_INITIALIZER, name=name)


def _batch_norm(name: str):
    return keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name)


def _basic_block(x, filters: int, strides: int, dropout_rate: float, activation, name: str):
    """Apply one pre-activation block of two 3x3 convolutions."""
    preactivated = _batch_norm(f"{name}_bn1")(x)
    preactivated = get_activation(activation)(preactivated)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(filters, 1, strides, name=f"{name}_projection")(preactivated)
    else:
        shortcut = x

    y = _conv(filters, 3, strides, name=f"{name}_conv1")(preactivated)
    if dropout_rate:
        y = keras.layers.Dropout(dropout_rate, name=f"{name}_dropout")(y)
    y = _batch_norm(f"{name}_bn2")(y)
    y = get_activation(activation)(y)
    y = _conv(filters, 3, name=f"{name}_conv2")(y)
    return keras.layers.Add(name=f"{name}_add")([shortcut, y])


@gin.configurable
def wide_resnet(depth: int, width: int, activation, num_classes: int = 10,
                dropout_rate: float = 0.0,
                input_shape: Sequence[int] = (32, 32, 3)) -> keras.Model:
    """Build WRN-depth-width for CIFAR.

    Args:
      depth: 6n + 4 for n blocks per stage, e.g. 28 (n = 4) or 10 (n = 1).
      width: widening factor k; stages have 16k, 32k and 64k filters.
      activation: any spec of `swish_tf.get_activation`; each of the 2 * 3n + 1 nonlinearities
        gets its own layer.
      num_classes: size of the logits output.
      dropout_rate: dropout between the two convolutions of a block (0.3 in some of that paper's
        runs, 0 in the others).
      input_shape: (height, width, channels) of the input images.

    Returns:
      An uncompiled functional model that outputs logits.

    Raises:
      ValueError: if depth is not 6n + 4 with n >= 1, width < 1 or dropout_rate not in [0, 1).
    """
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"wide_resnet depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40); "
                         f"received {depth}.")
    if width < 1:
        raise ValueError(f"wide_resnet width must be a positive integer; received {width}.")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1); received {dropout_rate}.")
    blocks_per_stage = (depth - 4) // 6

    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = _conv(16, 3, name="stem_conv")(inputs)
    for stage in range(3):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, 16 * width * 2**stage, strides, dropout_rate, activation,
                             name=f"stage{stage + 1}_block{block + 1}")
    x = _batch_norm("final_bn")(x)
    x = get_activation(activation)(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=f"wide_resnet{depth}_{width}")


@gin.configurable
def wide_resnet28_10(activation="relu", num_classes: int = 10,
                     dropout_rate: float = 0.0) -> keras.Model:
    """Build WRN-28-10 for 32x32 images, the CIFAR benchmark model."""
    return wide_resnet(28, 10, activation, num_classes, dropout_rate)


@gin.configurable
def wide_resnet_tiny(activation="relu", num_classes: int = 10,
                     dropout_rate: float = 0.0) -> keras.Model:
    """Build WRN-10-1 for tests: the same code paths in seconds."""
    return wide_resnet(10, 1, activation, num_classes, dropout_rate)
