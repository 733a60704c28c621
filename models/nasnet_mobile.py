"""NASNet-A with a configurable activation at every nonlinearity; Mobile NASNet-A (4 @ 1056).

Architecture of "Learning Transferable Architectures for Scalable Image Recognition" (Zoph et
al., 2018), laid out like `keras.applications.NASNetMobile` so that the parameter counts match
when the activation has no parameters. That model hard-codes ReLU in every cell. Here each
nonlinearity comes from `swish_tf.get_activation`. "Searching for Activation Functions" reports
Mobile NASNet-A ImageNet top-1 of ReLU 73.5 / 73.6 / 73.8 and Swish 74.9 / 74.9 / 75.2 (3 runs).

"N @ F" names a NASNet-A with N normal cells per stack and F filters in the penultimate layer.

NOTE: like `keras.applications.NASNetMobile`, the model has neither the auxiliary classifier
nor the drop-path regularization of the NASNet paper.
"""

from typing import Any

import gin
import keras

import swish_tf
from models.inception_v3 import ConvOptions, check_options, classifier_head

# Batch-norm settings of the NASNet paper's TF-Slim code, also used by keras.applications.
BATCHNORM_MOMENTUM = 0.9997
BATCHNORM_EPSILON = 1e-3


def _batch_norm(options: ConvOptions):
    return keras.layers.BatchNormalization(
        momentum=BATCHNORM_MOMENTUM, epsilon=BATCHNORM_EPSILON, scale=options.batchnorm_scale)


def _conv_1x1(filters: int, options: ConvOptions, strides: int = 1):
    return keras.layers.Conv2D(
        filters,
        1,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=options.kernel_initializer,
        kernel_regularizer=options.kernel_regularizer(),
    )


def _pad_for_stride_2(x, kernel_size: int):
    """Zero-pad so that a valid stride-2 window matches TensorFlow's "SAME" output size.

    An even side gets one row or column less on the top or left than on the bottom or right.
    """
    half = kernel_size // 2
    top = half - (1 - x.shape[1] % 2)
    left = half - (1 - x.shape[2] % 2)
    return keras.layers.ZeroPadding2D(((top, half), (left, half)))(x)


def _separable_block(x, filters: int, kernel_size: int, options: ConvOptions, strides: int = 1):
    """Apply (activation, separable conv, batch norm) twice; the first conv has the stride."""
    for repeat in range(2):
        x = swish_tf.get_activation(options.activation)(x)
        padding = "same"
        if repeat == 0 and strides == 2:
            x = _pad_for_stride_2(x, kernel_size)
            padding = "valid"
        x = keras.layers.SeparableConv2D(
            filters,
            kernel_size,
            strides=strides if repeat == 0 else 1,
            padding=padding,
            use_bias=False,
            depthwise_initializer=options.kernel_initializer,
            pointwise_initializer=options.kernel_initializer,
            depthwise_regularizer=options.kernel_regularizer(),
            pointwise_regularizer=options.kernel_regularizer(),
        )(x)
        x = _batch_norm(options)(x)
    return x


def _adjust_previous(previous, current, filters: int, options: ConvOptions):
    """Bring the previous cell's output `previous` to the grid size and width of `current`.

    After a reduction the previous output has twice the spatial size. It is then halved by two
    stride-2 1x1 paths, the second shifted by one pixel, whose outputs are concatenated.
    """
    if previous is None:
        return current
    if previous.shape[1] != current.shape[1]:
        previous = swish_tf.get_activation(options.activation)(previous)
        path_1 = keras.layers.AveragePooling2D(1, strides=2)(previous)
        path_1 = _conv_1x1(filters // 2, options)(path_1)
        path_2 = keras.layers.ZeroPadding2D(((0, 1), (0, 1)))(previous)
        path_2 = keras.layers.Cropping2D(((1, 0), (1, 0)))(path_2)
        path_2 = keras.layers.AveragePooling2D(1, strides=2)(path_2)
        path_2 = _conv_1x1(filters // 2, options)(path_2)
        previous = keras.layers.Concatenate()([path_1, path_2])
        return _batch_norm(options)(previous)
    if previous.shape[-1] != filters:
        previous = swish_tf.get_activation(options.activation)(previous)
        previous = _conv_1x1(filters, options)(previous)
        return _batch_norm(options)(previous)
    return previous


def _squeeze_input(x, filters: int, options: ConvOptions):
    """Apply activation, 1x1 conv to `filters` and batch norm to a cell's current input."""
    x = swish_tf.get_activation(options.activation)(x)
    x = _conv_1x1(filters, options)(x)
    return _batch_norm(options)(x)


def _normal_cell(current, previous, filters: int, options: ConvOptions, name: str):
    """NASNet-A normal cell; returns (output, current) so the caller can pass both on."""
    previous = _adjust_previous(previous, current, filters, options)
    hidden = _squeeze_input(current, filters, options)

    def average_pool(x):
        return keras.layers.AveragePooling2D(3, strides=1, padding="same")(x)

    add_1 = keras.layers.Add()([
        _separable_block(hidden, filters, 5, options),
        _separable_block(previous, filters, 3, options),
    ])
    add_2 = keras.layers.Add()([
        _separable_block(previous, filters, 5, options),
        _separable_block(previous, filters, 3, options),
    ])
    add_3 = keras.layers.Add()([average_pool(hidden), previous])
    add_4 = keras.layers.Add()([average_pool(previous), average_pool(previous)])
    add_5 = keras.layers.Add()([_separable_block(hidden, filters, 3, options), hidden])
    output = keras.layers.Concatenate(name=f"normal_concat_{name}")(
        [previous, add_1, add_2, add_3, add_4, add_5])
    return output, current


def _reduction_cell(current, previous, filters: int, options: ConvOptions, name: str):
    """NASNet-A reduction cell (halves the grid); returns (output, current)."""
    previous = _adjust_previous(previous, current, filters, options)
    hidden = _squeeze_input(current, filters, options)
    hidden_padded = _pad_for_stride_2(hidden, 3)

    def max_pool(x):
        return keras.layers.MaxPooling2D(3, strides=2)(x)

    add_1 = keras.layers.Add()([
        _separable_block(hidden, filters, 5, options, strides=2),
        _separable_block(previous, filters, 7, options, strides=2),
    ])
    add_2 = keras.layers.Add()([
        max_pool(hidden_padded),
        _separable_block(previous, filters, 7, options, strides=2),
    ])
    add_3 = keras.layers.Add()([
        keras.layers.AveragePooling2D(3, strides=2)(hidden_padded),
        _separable_block(previous, filters, 5, options, strides=2),
    ])
    add_4 = keras.layers.Add()([
        keras.layers.AveragePooling2D(3, strides=1, padding="same")(add_1),
        add_2,
    ])
    add_5 = keras.layers.Add()([
        _separable_block(add_1, filters, 3, options),
        max_pool(hidden_padded),
    ])
    output = keras.layers.Concatenate(name=f"reduction_concat_{name}")(
        [add_2, add_3, add_4, add_5])
    return output, current


@gin.configurable
def nasnet_a(
    activation: Any = "relu",
    num_classes: int = 1000,
    image_size: int = 224,
    num_normal_cells: int = 4,
    penultimate_filters: int = 1056,
    stem_filters: int = 32,
    filter_multiplier: int = 2,
    skip_reduction: bool = False,
    dropout_rate: float = 0.0,
    kernel_initializer: str = "he_normal",
    weight_decay: float = 0.0,
    batchnorm_scale: bool = True,
) -> keras.Model:
    """Build a NASNet-A ImageNet model, returning logits; the defaults give Mobile NASNet-A.

    The network is a stem convolution, two reduction cells on the stem, then three stacks of
    `num_normal_cells` normal cells separated by two reduction cells, each reduction
    multiplying the width by `filter_multiplier`.

    Args:
        activation: spec for `swish_tf.get_activation`, resolved anew at each nonlinearity, so
            trainable parameters (Swish beta, PReLU alpha) are per layer.
        num_classes: width of the logits.
        image_size: input height and width; at least 32.
        num_normal_cells: normal cells per stack ("N" in "N @ F").
        penultimate_filters: width of the last stack's cell inputs ("F"); a multiple of
            24 * filter_multiplier**2.
        stem_filters: filters of the 3x3 stem convolution.
        filter_multiplier: width growth at each reduction.
        skip_reduction: when True (NASNet-A Large), the first normal cell after a reduction
            takes as its second input the same tensor that the reduction cell took, not the
            reduction cell's input.
        dropout_rate: dropout before the classifier. TF-Slim's NASNet-A Mobile configuration
            keeps 0.5 of the units (rate 0.5); `keras.applications` uses none.
        kernel_initializer: initializer of all kernels; "Searching for Activation Functions"
            uses He initialization on ImageNet.
        weight_decay: TF-Slim-style L2 coefficient on every kernel (see `ConvOptions`).
        batchnorm_scale: learn a batch-norm scale, on in the NASNet paper.

    Raises:
        ValueError: for an invalid width, cell count, image size or option.
    """
    if image_size < 32:
        raise ValueError(f"NASNet-A needs image_size >= 32, received {image_size}.")
    if num_normal_cells < 1:
        raise ValueError(f"num_normal_cells must be >= 1, received {num_normal_cells}.")
    if penultimate_filters % (24 * filter_multiplier**2) != 0:
        raise ValueError(
            f"penultimate_filters must be a multiple of 24 * filter_multiplier**2 = "
            f"{24 * filter_multiplier**2}, received {penultimate_filters}.")
    check_options(weight_decay, 1.0)
    options = ConvOptions(activation, kernel_initializer, weight_decay, batchnorm_scale)
    # Each normal cell concatenates 6 branches and the last stack runs at 4x the first width.
    filters = penultimate_filters // 24

    inputs = keras.Input((image_size, image_size, 3))
    x = keras.layers.Conv2D(
        stem_filters,
        3,
        strides=2,
        padding="valid",
        use_bias=False,
        kernel_initializer=kernel_initializer,
        kernel_regularizer=options.kernel_regularizer(),
        name="stem_conv",
    )(inputs)
    x = _batch_norm(options)(x)

    previous = None
    x, previous = _reduction_cell(x, previous, filters // filter_multiplier**2, options, "stem_1")
    x, previous = _reduction_cell(x, previous, filters // filter_multiplier, options, "stem_2")

    cell_index = 0
    for stack in range(3):
        if stack > 0:
            before_reduction = previous
            x, previous = _reduction_cell(x, previous, filters, options, f"reduce_{stack}")
            if skip_reduction:
                previous = before_reduction
        for _ in range(num_normal_cells):
            x, previous = _normal_cell(x, previous, filters, options, str(cell_index))
            cell_index += 1
        filters *= filter_multiplier

    x = swish_tf.get_activation(activation)(x)
    logits = classifier_head(x, num_classes, dropout_rate, options)
    return keras.Model(inputs, logits, name="nasnet_a")


def nasnet_mobile(activation: Any = "relu", num_classes: int = 1000,
                  **kwargs: Any) -> keras.Model:
    """Build Mobile NASNet-A (4 @ 1056) for 224x224 input."""
    return nasnet_a(activation, num_classes, image_size=224, num_normal_cells=4,
                    penultimate_filters=1056, stem_filters=32, skip_reduction=False, **kwargs)


def nasnet_large(activation: Any = "relu", num_classes: int = 1000,
                 **kwargs: Any) -> keras.Model:
    """Build NASNet-A Large (6 @ 4032) for 331x331 input."""
    return nasnet_a(activation, num_classes, image_size=331, num_normal_cells=6,
                    penultimate_filters=4032, stem_filters=96, skip_reduction=True, **kwargs)


def nasnet_tiny(activation: Any = "relu", num_classes: int = 10) -> keras.Model:
    """Build a test-only NASNet-A (1 @ 192) for 32x32 input."""
    return nasnet_a(activation, num_classes, image_size=32, num_normal_cells=1,
                    penultimate_filters=192, stem_filters=8)
