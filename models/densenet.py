"""DenseNet for CIFAR (DenseNet-BC 100-12 of the benchmarks).

Huang, Liu, van der Maaten and Weinberger, "Densely Connected Convolutional Networks" (2017).
Three dense blocks at 32x32, 16x16 and 8x8; each layer of a block takes the concatenation of all
earlier feature maps and adds `growth_rate` new ones. A 3x3 stem convolution comes first, a
transition (BN -> activation -> conv 1x1 -> 2x2 average pooling) sits between blocks, and
BN -> activation -> global average pooling -> dense ends the network.

Two variants of that paper:

- DenseNet (L, k): each layer is BN -> activation -> conv 3x3 (k filters); L = 3n + 4; the stem
  has 16 filters and transitions keep the width. DenseNet (100, 12) has 6,979,642 trainable
  parameters for 10 classes (7.0M in that paper).
- DenseNet-BC (L, k): each layer is BN -> activation -> conv 1x1 (4k) -> BN -> activation ->
  conv 3x3 (k) ("B", bottleneck); L = 6n + 4; the stem has 2k filters and transitions halve the
  width ("C", compression 0.5). DenseNet-BC (100, 12) has 769,162 trainable parameters for 10
  classes (0.8M in that paper).

Parameter counts are with ReLU, which has no parameters of its own.

"Searching for Activation Functions" names its model "DenseNet 100-12" without saying which;
the benchmark configs use DenseNet-BC 100-12 (`densenet_bc100_12`), and `densenet100_12` builds
the other.
"""

from typing import Sequence

import gin
import keras

from swish_tf import get_activation

_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
_KERNEL_INITIALIZER = keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def _conv(filters: int, kernel_size: int, name: str):
    return keras.layers.Conv2D(filters, kernel_size, padding="same", use_bias=False,
                               kernel_initializer=_KERNEL_INITIALIZER, name=name)


def _bn_activation(x, activation, name: str):
    x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON,
                                        name=f"{name}_bn")(x)
    return get_activation(activation)(x)


def _dense_layer(x, growth_rate: int, bottleneck: bool, dropout_rate: float, activation,
                 name: str):
    """Return x concatenated with growth_rate new feature maps computed from it."""
    y = x
    if bottleneck:
        y = _bn_activation(y, activation, f"{name}_1x1")
        y = _conv(4 * growth_rate, 1, name=f"{name}_conv1x1")(y)
        if dropout_rate:
            y = keras.layers.Dropout(dropout_rate, name=f"{name}_dropout1x1")(y)
    y = _bn_activation(y, activation, f"{name}_3x3")
    y = _conv(growth_rate, 3, name=f"{name}_conv3x3")(y)
    if dropout_rate:
        y = keras.layers.Dropout(dropout_rate, name=f"{name}_dropout3x3")(y)
    return keras.layers.Concatenate(name=f"{name}_concat")([x, y])


def _transition(x, filters: int, dropout_rate: float, activation, name: str):
    x = _bn_activation(x, activation, name)
    x = _conv(filters, 1, name=f"{name}_conv")(x)
    if dropout_rate:
        x = keras.layers.Dropout(dropout_rate, name=f"{name}_dropout")(x)
    return keras.layers.AveragePooling2D(2, name=f"{name}_pool")(x)


@gin.configurable
def densenet(depth: int, growth_rate: int, activation, num_classes: int = 10,
             bottleneck: bool = True, compression: float = 0.5, dropout_rate: float = 0.0,
             input_shape: Sequence[int] = (32, 32, 3)) -> keras.Model:
    """Build a CIFAR DenseNet.

    Args:
      depth: total layer count L: 6n + 4 with bottleneck layers, 3n + 4 without, for n layers
        per dense block (100 gives n = 16 with bottlenecks, 32 without).
      growth_rate: k, the feature maps each layer adds.
      activation: any spec of `swish_tf.get_activation`. Each nonlinearity gets its own layer:
        2 per bottleneck layer or 1 per plain layer, 1 per transition and 1 at the end.
      num_classes: size of the logits output.
      bottleneck: whether layers have the 1x1 bottleneck ("B").
      compression: fraction of channels a transition keeps ("C"; 1.0 keeps all).
      dropout_rate: dropout after each convolution (0.2 in that paper without data augmentation,
        0 with it).
      input_shape: (height, width, channels) of the input images.

    Returns:
      An uncompiled functional model that outputs logits.

    Raises:
      ValueError: for an impossible depth, growth_rate < 1, compression outside (0, 1] or
        dropout_rate outside [0, 1).
    """
    layers_per_unit = 2 if bottleneck else 1
    if depth < 4 + 3 * layers_per_unit or (depth - 4) % (3 * layers_per_unit):
        raise ValueError(f"densenet depth must be {3 * layers_per_unit}n + 4 with n >= 1 when "
                         f"bottleneck={bottleneck} (e.g. 100); received {depth}.")
    if growth_rate < 1:
        raise ValueError(f"growth_rate must be a positive integer; received {growth_rate}.")
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"compression must be in (0, 1]; received {compression}.")
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"dropout_rate must be in [0, 1); received {dropout_rate}.")
    layers_per_block = (depth - 4) // (3 * layers_per_unit)
    is_bc = bottleneck and compression < 1.0

    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = _conv(2 * growth_rate if is_bc else 16, 3, name="stem_conv")(inputs)
    for block in range(3):
        for layer in range(layers_per_block):
            x = _dense_layer(x, growth_rate, bottleneck, dropout_rate, activation,
                             name=f"block{block + 1}_layer{layer + 1}")
        if block < 2:
            filters = int(x.shape[-1] * compression)
            x = _transition(x, filters, dropout_rate, activation, name=f"transition{block + 1}")
    x = _bn_activation(x, activation, "final")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    prefix = "densenet_bc" if is_bc else "densenet"
    return keras.Model(inputs, outputs, name=f"{prefix}{depth}_{growth_rate}")


@gin.configurable
def densenet_bc100_12(activation="relu", num_classes: int = 10) -> keras.Model:
    """Build DenseNet-BC (L=100, k=12) for 32x32 images, the CIFAR benchmark model."""
    return densenet(100, 12, activation, num_classes, bottleneck=True, compression=0.5)


@gin.configurable
def densenet100_12(activation="relu", num_classes: int = 10) -> keras.Model:
    """Build DenseNet (L=100, k=12) without bottlenecks or compression: 7.0M parameters."""
    return densenet(100, 12, activation, num_classes, bottleneck=False, compression=1.0)


@gin.configurable
def densenet_tiny(activation="relu", num_classes: int = 10) -> keras.Model:
    """Build DenseNet-BC (L=10, k=4) for tests: the same code paths in seconds."""
    return densenet(10, 4, activation, num_classes, bottleneck=True, compression=0.5)
