"""Inception-v3 with a configurable activation at every nonlinearity.

Architecture of "Rethinking the Inception Architecture for Computer Vision" (Szegedy et al.,
2016), laid out like `keras.applications.InceptionV3` so that the parameter counts match when
the activation has no parameters. "Searching for Activation Functions" reports Inception-v3
top-1 on ImageNet as ReLU 78.4 and Swish 78.7.

NOTE: like `keras.applications.InceptionV3`, the model has no auxiliary classifier, which the
Inception-v3 paper attaches to the 17x17 grid during training.

The convolution-plus-batch-norm unit `conv_bn` and `ConvOptions` are shared with
`models.inception_resnet_v2`.
"""

import dataclasses
from typing import Any, Sequence

import gin
import keras

import swish_tf

IMAGE_SIZE = 299


@dataclasses.dataclass(frozen=True)
class ConvOptions:
    """Settings shared by every convolution unit of one model.

    Attributes:
        activation: activation spec passed to `swish_tf.get_activation` once per nonlinearity.
        kernel_initializer: Keras initializer name for convolution and dense kernels.
        weight_decay: L2 coefficient `wd` of the penalty `wd * sum(w**2) / 2` on each kernel,
            the convention of TF-Slim's `weight_decay`; 0 adds no penalty.
        batchnorm_scale: whether batch norm learns a scale (gamma).
        filter_scale: multiplier on every filter count; 1.0 is the published model.
    """

    activation: Any
    kernel_initializer: str = "he_normal"
    weight_decay: float = 0.0
    batchnorm_scale: bool = False
    filter_scale: float = 1.0

    def filters(self, count: int) -> int:
        # Truncation, as keras.applications.MobileNet applies its width multiplier.
        return max(1, int(count * self.filter_scale))

    def kernel_regularizer(self) -> keras.regularizers.Regularizer | None:
        if self.weight_decay == 0.0:
            return None
        return keras.regularizers.L2(self.weight_decay / 2.0)


def check_options(weight_decay: float, filter_scale: float) -> None:
    """Raise ValueError for options that would build a broken model.

    An unknown activation name needs no check here: `swish_tf.get_activation` raises
    ValueError at the first nonlinearity.
    """
    if weight_decay < 0.0:
        raise ValueError(f"weight_decay must be >= 0, received {weight_decay!r}.")
    if filter_scale <= 0.0:
        raise ValueError(f"filter_scale must be > 0, received {filter_scale!r}.")


def conv_bn(x, filters: int, kernel_size: int | Sequence[int], options: ConvOptions, *,
            strides: int = 1, padding: str = "same", activate: bool = True):
    """Apply Conv2D (no bias), batch norm and, when `activate`, a new activation layer.

    `filters` is the published filter count; `options.filter_scale` scales it.
    """
    x = keras.layers.Conv2D(
        options.filters(filters),
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=options.kernel_initializer,
        kernel_regularizer=options.kernel_regularizer(),
    )(x)
    x = keras.layers.BatchNormalization(scale=options.batchnorm_scale)(x)
    if activate:
        x = swish_tf.get_activation(options.activation)(x)
    return x


def classifier_head(x, num_classes: int, dropout_rate: float, options: ConvOptions):
    """Global average pooling, dropout and a dense layer that returns logits."""
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout_rate > 0.0:
        x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
    return keras.layers.Dense(
        num_classes,
        kernel_initializer=options.kernel_initializer,
        kernel_regularizer=options.kernel_regularizer(),
        name="logits",
    )(x)


def _inception_a(x, pool_filters: int, options: ConvOptions, name: str):
    """35x35 module: 1x1, 5x5, double 3x3 and pooled branches."""
    branch_1x1 = conv_bn(x, 64, 1, options)
    branch_5x5 = conv_bn(x, 48, 1, options)
    branch_5x5 = conv_bn(branch_5x5, 64, 5, options)
    branch_3x3 = conv_bn(x, 64, 1, options)
    branch_3x3 = conv_bn(branch_3x3, 96, 3, options)
    branch_3x3 = conv_bn(branch_3x3, 96, 3, options)
    branch_pool = keras.layers.AveragePooling2D(3, strides=1, padding="same")(x)
    branch_pool = conv_bn(branch_pool, pool_filters, 1, options)
    return keras.layers.Concatenate(name=name)([branch_1x1, branch_5x5, branch_3x3, branch_pool])


def _reduction_a(x, options: ConvOptions):
    """35x35 -> 17x17 grid reduction."""
    branch_3x3 = conv_bn(x, 384, 3, options, strides=2, padding="valid")
    branch_double = conv_bn(x, 64, 1, options)
    branch_double = conv_bn(branch_double, 96, 3, options)
    branch_double = conv_bn(branch_double, 96, 3, options, strides=2, padding="valid")
    branch_pool = keras.layers.MaxPooling2D(3, strides=2)(x)
    return keras.layers.Concatenate(name="mixed3")([branch_3x3, branch_double, branch_pool])


def _inception_b(x, width: int, options: ConvOptions, name: str):
    """17x17 module with factorized 7x7 convolutions of `width` inner filters."""
    branch_1x1 = conv_bn(x, 192, 1, options)
    branch_7x7 = conv_bn(x, width, 1, options)
    branch_7x7 = conv_bn(branch_7x7, width, (1, 7), options)
    branch_7x7 = conv_bn(branch_7x7, 192, (7, 1), options)
    branch_double = conv_bn(x, width, 1, options)
    branch_double = conv_bn(branch_double, width, (7, 1), options)
    branch_double = conv_bn(branch_double, width, (1, 7), options)
    branch_double = conv_bn(branch_double, width, (7, 1), options)
    branch_double = conv_bn(branch_double, 192, (1, 7), options)
    branch_pool = keras.layers.AveragePooling2D(3, strides=1, padding="same")(x)
    branch_pool = conv_bn(branch_pool, 192, 1, options)
    return keras.layers.Concatenate(name=name)(
        [branch_1x1, branch_7x7, branch_double, branch_pool])


def _reduction_b(x, options: ConvOptions):
    """17x17 -> 8x8 grid reduction."""
    branch_3x3 = conv_bn(x, 192, 1, options)
    branch_3x3 = conv_bn(branch_3x3, 320, 3, options, strides=2, padding="valid")
    branch_7x7 = conv_bn(x, 192, 1, options)
    branch_7x7 = conv_bn(branch_7x7, 192, (1, 7), options)
    branch_7x7 = conv_bn(branch_7x7, 192, (7, 1), options)
    branch_7x7 = conv_bn(branch_7x7, 192, 3, options, strides=2, padding="valid")
    branch_pool = keras.layers.MaxPooling2D(3, strides=2)(x)
    return keras.layers.Concatenate(name="mixed8")([branch_3x3, branch_7x7, branch_pool])


def _inception_c(x, options: ConvOptions, name: str):
    """8x8 module with split 1x3/3x1 outputs."""
    branch_1x1 = conv_bn(x, 320, 1, options)
    branch_3x3 = conv_bn(x, 384, 1, options)
    branch_3x3 = keras.layers.Concatenate()([
        conv_bn(branch_3x3, 384, (1, 3), options),
        conv_bn(branch_3x3, 384, (3, 1), options),
    ])
    branch_double = conv_bn(x, 448, 1, options)
    branch_double = conv_bn(branch_double, 384, 3, options)
    branch_double = keras.layers.Concatenate()([
        conv_bn(branch_double, 384, (1, 3), options),
        conv_bn(branch_double, 384, (3, 1), options),
    ])
    branch_pool = keras.layers.AveragePooling2D(3, strides=1, padding="same")(x)
    branch_pool = conv_bn(branch_pool, 192, 1, options)
    return keras.layers.Concatenate(name=name)(
        [branch_1x1, branch_3x3, branch_double, branch_pool])


@gin.configurable
def inception_v3(
    activation: Any = "relu",
    num_classes: int = 1000,
    image_size: int = IMAGE_SIZE,
    filter_scale: float = 1.0,
    dropout_rate: float = 0.0,
    kernel_initializer: str = "he_normal",
    weight_decay: float = 0.0,
    batchnorm_scale: bool = False,
) -> keras.Model:
    """Build Inception-v3 for `image_size` x `image_size` RGB input, returning logits.

    Args:
        activation: spec for `swish_tf.get_activation`, resolved anew at each of the 94
            nonlinearities, so trainable parameters (Swish beta, PReLU alpha) are per layer.
        num_classes: width of the logits.
        image_size: input height and width; at least 75 because of the valid-padded stem.
        filter_scale: multiplier on every filter count; 1.0 is the published model.
        dropout_rate: dropout before the classifier; `keras.applications` uses none.
        kernel_initializer: initializer of all kernels; "Searching for Activation Functions"
            uses He initialization on ImageNet.
        weight_decay: TF-Slim-style L2 coefficient on every kernel (see `ConvOptions`).
        batchnorm_scale: learn a batch-norm scale. The Inception papers and
            `keras.applications` leave it off, which is harmless before ReLU. "Searching for
            Activation Functions" advises keeping it on for Swish.

    Raises:
        ValueError: for an image size below 75 or an invalid option.
    """
    if image_size < 75:
        raise ValueError(f"Inception-v3 needs image_size >= 75, received {image_size}.")
    check_options(weight_decay, filter_scale)
    options = ConvOptions(activation, kernel_initializer, weight_decay, batchnorm_scale,
                          filter_scale)

    inputs = keras.Input((image_size, image_size, 3))
    x = conv_bn(inputs, 32, 3, options, strides=2, padding="valid")
    x = conv_bn(x, 32, 3, options, padding="valid")
    x = conv_bn(x, 64, 3, options)
    x = keras.layers.MaxPooling2D(3, strides=2)(x)
    x = conv_bn(x, 80, 1, options, padding="valid")
    x = conv_bn(x, 192, 3, options, padding="valid")
    x = keras.layers.MaxPooling2D(3, strides=2)(x)

    x = _inception_a(x, 32, options, name="mixed0")
    x = _inception_a(x, 64, options, name="mixed1")
    x = _inception_a(x, 64, options, name="mixed2")
    x = _reduction_a(x, options)
    x = _inception_b(x, 128, options, name="mixed4")
    x = _inception_b(x, 160, options, name="mixed5")
    x = _inception_b(x, 160, options, name="mixed6")
    x = _inception_b(x, 192, options, name="mixed7")
    x = _reduction_b(x, options)
    x = _inception_c(x, options, name="mixed9")
    x = _inception_c(x, options, name="mixed10")

    logits = classifier_head(x, num_classes, dropout_rate, options)
    return keras.Model(inputs, logits, name="inception_v3")


def inception_v3_tiny(activation: Any = "relu", num_classes: int = 10) -> keras.Model:
    """Build a test-only Inception-v3 with 1/16 of the filters on 75x75 input."""
    return inception_v3(activation, num_classes, image_size=75, filter_scale=1 / 16)
