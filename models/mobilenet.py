"""MobileNet (v1) with a configurable activation at every nonlinearity.

Architecture of "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
Applications" (Howard et al., 2017), laid out like `keras.applications.MobileNet` so that the
parameter counts match when the activation has no parameters. "Searching for Activation
Functions" reports MobileNet ImageNet top-1 of ReLU 72.0 and Swish 74.2.

NOTE: `keras.applications.MobileNet` uses ReLU6. The "relu" default here is plain ReLU, the
baseline of "Searching for Activation Functions"; pass `keras.layers.ReLU(6.0)` as the
activation for ReLU6.
"""

from typing import Any

import gin
import keras

import swish_tf
from models.inception_v3 import ConvOptions, check_options

# (pointwise filters, stride) of the 13 depthwise-separable blocks.
BLOCKS = (
    (64, 1),
    (128, 2), (128, 1),
    (256, 2), (256, 1),
    (512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1),
    (1024, 2), (1024, 1),
)


def _conv_bn_act(x, layer: keras.layers.Layer, options: ConvOptions, name: str):
    x = layer(x)
    x = keras.layers.BatchNormalization(scale=options.batchnorm_scale, name=f"{name}_bn")(x)
    return swish_tf.get_activation(options.activation)(x)


def _depthwise_separable_block(x, filters: int, strides: int, depth_multiplier: int,
                               options: ConvOptions, index: int):
    """Depthwise 3x3 conv and pointwise 1x1 conv, each followed by batch norm and activation."""
    padding = "same"
    if strides == 2:
        # Pad bottom and right only, as TensorFlow's "SAME" does for even input sizes.
        x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"conv_pad_{index}")(x)
        padding = "valid"
    depthwise = keras.layers.DepthwiseConv2D(
        3,
        strides=strides,
        padding=padding,
        depth_multiplier=depth_multiplier,
        use_bias=False,
        depthwise_initializer=options.kernel_initializer,
        depthwise_regularizer=options.kernel_regularizer(),
        name=f"conv_dw_{index}",
    )
    x = _conv_bn_act(x, depthwise, options, name=f"conv_dw_{index}")
    pointwise = keras.layers.Conv2D(
        options.filters(filters),
        1,
        use_bias=False,
        kernel_initializer=options.kernel_initializer,
        kernel_regularizer=options.kernel_regularizer(),
        name=f"conv_pw_{index}",
    )
    return _conv_bn_act(x, pointwise, options, name=f"conv_pw_{index}")


@gin.configurable
def mobilenet(
    activation: Any = "relu",
    num_classes: int = 1000,
    image_size: int = 224,
    alpha: float = 1.0,
    depth_multiplier: int = 1,
    dropout_rate: float = 1e-3,
    kernel_initializer: str = "he_normal",
    weight_decay: float = 0.0,
    batchnorm_scale: bool = True,
) -> keras.Model:
    """Build MobileNet v1 for `image_size` x `image_size` RGB input, returning logits.

    Args:
        activation: spec for `swish_tf.get_activation`, resolved anew at each of the 27
            nonlinearities, so trainable parameters (Swish beta, PReLU alpha) are per layer.
        num_classes: width of the logits.
        image_size: input height and width; at least 32.
        alpha: width multiplier on every filter count; 1.0 is the published model.
        depth_multiplier: depthwise channel multiplier (the MobileNet paper's resolution
            multiplier is `image_size` here).
        dropout_rate: dropout before the classifier; 1e-3 as in `keras.applications`.
        kernel_initializer: initializer of all kernels; "Searching for Activation Functions"
            uses He initialization on ImageNet.
        weight_decay: TF-Slim-style L2 coefficient on every kernel (see `ConvOptions`).
        batchnorm_scale: learn a batch-norm scale, on in `keras.applications`.

    Raises:
        ValueError: for an image size below 32, a non-positive multiplier or an invalid
            option.
    """
    if image_size < 32:
        raise ValueError(f"MobileNet needs image_size >= 32, received {image_size}.")
    if depth_multiplier < 1:
        raise ValueError(f"depth_multiplier must be >= 1, received {depth_multiplier}.")
    check_options(weight_decay, alpha)
    options = ConvOptions(activation, kernel_initializer, weight_decay, batchnorm_scale, alpha)

    inputs = keras.Input((image_size, image_size, 3))
    stem = keras.layers.Conv2D(
        options.filters(32),
        3,
        strides=2,
        padding="same",
        use_bias=False,
        kernel_initializer=kernel_initializer,
        kernel_regularizer=options.kernel_regularizer(),
        name="conv1",
    )
    x = _conv_bn_act(inputs, stem, options, name="conv1")
    for index, (filters, strides) in enumerate(BLOCKS, start=1):
        x = _depthwise_separable_block(x, filters, strides, depth_multiplier, options, index)

    # Same classifier as keras.applications: a 1x1 convolution on the pooled features.
    x = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
    x = keras.layers.Conv2D(
        num_classes,
        1,
        kernel_initializer=kernel_initializer,
        kernel_regularizer=options.kernel_regularizer(),
        name="conv_preds",
    )(x)
    logits = keras.layers.Flatten(name="logits")(x)
    return keras.Model(inputs, logits, name="mobilenet")


def mobilenet_tiny(activation: Any = "relu", num_classes: int = 10) -> keras.Model:
    """Build a test-only MobileNet with width multiplier 0.25 for 32x32 input."""
    return mobilenet(activation, num_classes, image_size=32, alpha=0.25)
