"""ResNet for CIFAR (He et al. 2016, "Deep Residual Learning for Image Recognition", section 4.2).

The child network of "Searching for Activation Functions" is ResNet-20 trained on CIFAR-10.
The CIFAR variant has depth 6n + 2. A 3x3 stem convolution with 16 filters comes first, then
three stages of n basic blocks with 16, 32 and 64 filters on 32x32, 16x16 and 8x8 feature maps,
then global average pooling and a dense softmax classifier. The first block of stages 2 and 3
halves the feature map with stride 2.

Shortcuts follow the CIFAR experiments of He et al. (option A): identity everywhere, and where
the shape changes the shortcut takes every second pixel and pads the new channels with zeros,
so shortcuts add no parameters. ResNet-20 with ReLU then has 269,722 trainable parameters (the
0.27M of He et al.) plus 1,376 batch-norm moving means and variances, 271,098 in all. An
activation with one trainable weight per channel adds 688 more over its 19 positions.

The network is channels_last (NHWC); on CPUs channels_first runs far slower.
"""

from typing import Any, Callable

import gin
import keras

import swish_tf

_STAGE_FILTER_MULTIPLIERS = (1, 2, 4)  # Stages 1, 2, 3 have 16, 32, 64 filters at base width 16.


@keras.saving.register_keras_serializable(package="swish_tf")
class PaddedShortcut(keras.layers.Layer):
    """The option-A shortcut of He et al.: subsample by `strides`, zero-pad the channels.

    Input (B, H, W, C_in); output (B, ceil(H / strides), ceil(W / strides), `filters`).
    """

    def __init__(self, filters: int, strides: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        if height is not None:
            height = -(-height // self.strides)
        if width is not None:
            width = -(-width // self.strides)
        return (batch, height, width, self.filters)

    def call(self, inputs):
        outputs = inputs[:, ::self.strides, ::self.strides, :]
        extra = self.filters - inputs.shape[-1]
        if extra < 0:
            raise ValueError(
                f"PaddedShortcut cannot reduce {inputs.shape[-1]} channels to {self.filters}.")
        return keras.ops.pad(outputs, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


def _conv(filters: int, strides: int, weight_decay: float, name: str) -> keras.layers.Conv2D:
    # He et al. initialize convolutions as in their "Delving Deep into Rectifiers" (He normal)
    # and drop the bias, which the batch norm that follows would cancel.
    return keras.layers.Conv2D(
        filters, 3, strides=strides, padding="same", use_bias=False,
        kernel_initializer="he_normal", kernel_regularizer=_l2(weight_decay), name=name)


def _batch_norm(name: str) -> keras.layers.BatchNormalization:
    # Momentum 0.9 and epsilon 1e-5 are PyTorch's defaults. Keras's default momentum 0.99
    # averages the moving statistics over about 100 steps instead of 10.
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def _l2(weight_decay: float) -> keras.regularizers.Regularizer | None:
    # Keras's L2 adds factor * sum(w^2) to the loss, so factor = weight_decay / 2 gives the
    # gradient weight_decay * w: weight decay as He et al. and SGD implementations define it.
    return keras.regularizers.L2(weight_decay / 2) if weight_decay else None


def basic_block(x, filters: int, strides: int, *, activation: Any, weight_decay: float,
                name: str):
    """Apply one basic block: conv-BN-act-conv-BN, add the shortcut, then act.

    Calls `swish_tf.get_activation(activation)` twice, once per nonlinearity.
    """
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = PaddedShortcut(filters, strides, name=f"{name}_shortcut")(x)
    x = _conv(filters, strides, weight_decay, f"{name}_conv1")(x)
    x = _batch_norm(f"{name}_bn1")(x)
    x = swish_tf.get_activation(activation)(x)
    x = _conv(filters, 1, weight_decay, f"{name}_conv2")(x)
    x = _batch_norm(f"{name}_bn2")(x)
    x = keras.layers.Add(name=f"{name}_add")([x, shortcut])
    return swish_tf.get_activation(activation)(x)


@gin.configurable(denylist=["input_shape", "num_classes", "name"])
def resnet_cifar(depth: int = 20, *, activation: Any = "relu", num_classes: int = 10,
                 base_filters: int = 16, weight_decay: float = 0.0,
                 input_shape: tuple[int, int, int] = (32, 32, 3),
                 name: str | None = None) -> keras.Model:
    """Build a CIFAR ResNet of depth 6n + 2 (He et al. 2016, section 4.2).

    Args:
      depth: number of weighted layers, 6n + 2 for n basic blocks per stage (20, 32, 44, 56,
        110 in He et al.).
      activation: any spec that `swish_tf.get_activation` takes (a registry name, an expression
        string, a Keras layer or a callable). Each of the 6n + 1 nonlinearities gets its own
        layer from `get_activation`.
      num_classes: size of the softmax output.
      base_filters: filters of the first stage; stages 2 and 3 have 2x and 4x as many.
      weight_decay: L2 weight decay on the convolution and dense kernels, as the coefficient
        of the gradient term (the SGD convention): 1e-4 in He et al. 0 adds no regularizer.
      input_shape: (height, width, channels) of the NHWC input images.
      name: model name; defaults to "resnet{depth}".

    Returns:
      An uncompiled Keras model mapping float images (B, H, W, C) to float32 logits
      (B, `num_classes`).

    Raises:
      ValueError: `depth` is not of the form 6n + 2 with n >= 1.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"ResNet depth for CIFAR must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...); received "
            f"{depth}.")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0; received {weight_decay}.")
    blocks_per_stage = (depth - 2) // 6

    inputs = keras.Input(shape=input_shape, name="images")
    x = _conv(base_filters, 1, weight_decay, "stem_conv")(inputs)
    x = _batch_norm("stem_bn")(x)
    x = swish_tf.get_activation(activation)(x)
    for stage, multiplier in enumerate(_STAGE_FILTER_MULTIPLIERS, start=1):
        for block in range(1, blocks_per_stage + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = basic_block(x, base_filters * multiplier, strides, activation=activation,
                            weight_decay=weight_decay, name=f"stage{stage}_block{block}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    # The classifier stays float32 under a mixed-precision policy, so the logits are float32.
    logits = keras.layers.Dense(num_classes, kernel_initializer="he_normal",
                                kernel_regularizer=_l2(weight_decay), dtype="float32",
                                name="logits")(x)
    return keras.Model(inputs, logits, name=name or f"resnet{depth}")


def resnet20(**kwargs) -> keras.Model:
    return resnet_cifar(20, **kwargs)


def resnet32(**kwargs) -> keras.Model:
    return resnet_cifar(32, **kwargs)


def resnet44(**kwargs) -> keras.Model:
    return resnet_cifar(44, **kwargs)


def resnet56(**kwargs) -> keras.Model:
    return resnet_cifar(56, **kwargs)


def resnet110(**kwargs) -> keras.Model:
    return resnet_cifar(110, **kwargs)


def resnet_tiny(**kwargs) -> keras.Model:
    """For tests only: depth 8 (one block per stage) with 4, 8 and 16 filters."""
    kwargs.setdefault("base_filters", 4)
    return resnet_cifar(8, name="resnet_tiny", **kwargs)


VARIANTS: dict[str, Callable[..., keras.Model]] = {
    "resnet20": resnet20,
    "resnet32": resnet32,
    "resnet44": resnet44,
    "resnet56": resnet56,
    "resnet110": resnet110,
    "resnet_tiny": resnet_tiny,
}


def build_variant(variant: str, **kwargs) -> keras.Model:
    """Build a named variant ("resnet20", ..., "resnet110", or "resnet_tiny" for tests).

    Raises:
      ValueError: unknown variant name.
    """
    builder = VARIANTS.get(variant)
    if builder is None:
        raise ValueError(f"Unknown CIFAR ResNet variant {variant!r}; expected one of "
                         f"{sorted(VARIANTS)}.")
    return builder(**kwargs)
