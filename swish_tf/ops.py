"""TensorFlow kernels of the search-space functions, and the evaluator of expression trees.

Semantics where the plain math is undefined or overflows. They are the same in eager mode, in
`tf.function` graphs and under XLA (`jit_compile=True`): they are built from `tf.where` selections
over safe operands (and, for Swish, one `tf.custom_gradient`), and tests check all three modes.

- `sqrt(x)` is `sqrt(max(x, 0))`: 0 for x <= 0, with gradient 0 there; for tiny positive x the
  gradient 1 / (2 sqrt(x)) is large but finite.
- `sinc(x) = sin(x) / x` with `sinc(0) = 1` (the unnormalized sinc); for |x| < 1e-4 it uses the
  Taylor form 1 - x^2 / 6, so the derivative at 0 is 0 and never NaN.
- `log(|x| + eps)` and `x1 / (x2 + eps)` use `eps` = `functions.EPS` exactly as printed. The
  division is not guarded further: where x2 is near -eps its value and gradient explode, which is
  why division tends to fail in the searches of "Searching for Activation Functions". Training
  reports such a child as diverged.
- `exp`, `sinh`, `cosh`, `x^2`, `x^3` overflow to inf as IEEE arithmetic does (float32 exp above
  about 88.7). They are not clipped: a function whose values overflow on typical inputs cannot
  train, and `swish_tf.validity` or the trainer's divergence check reports it.
- `log(1 + exp(x))` is computed stably (`tf.math.softplus`): 1000 at x = 1000, derivative 1.
- `max(a, b)` and `min(a, b)` pass the whole gradient to one operand on ties, so `max(x, x)`
  has derivative 1.
- `x * sigmoid(beta * x)` (Swish, however written) uses a fused kernel that is finite at
  x = +-inf: 0 with derivative 0 at -inf, +inf with derivative 1 at +inf.
"""

from typing import Callable, Iterator

import tensorflow as tf

from swish_tf import functions
from swish_tf.expressions import BETA, INPUT, Node

_SINC_TAYLOR_BELOW = 1e-4


def safe_sqrt(x: tf.Tensor) -> tf.Tensor:
    positive = x > 0
    safe_x = tf.where(positive, x, tf.ones_like(x))
    return tf.where(positive, tf.sqrt(safe_x), tf.zeros_like(x))


def sinc(x: tf.Tensor) -> tf.Tensor:
    small = tf.abs(x) < _SINC_TAYLOR_BELOW
    safe_x = tf.where(small, tf.ones_like(x), x)
    return tf.where(small, 1.0 - x * x / 6.0, tf.sin(safe_x) / safe_x)


def swish(x: tf.Tensor, beta: tf.Tensor | float = 1.0) -> tf.Tensor:
    """Compute x * sigmoid(beta * x), finite for infinite x, with per-element gradients.

    `beta` broadcasts against `x` (a per-channel `(C,)` tensor against `(..., C)` inputs); its
    gradient keeps beta's own shape, unlike `tf.nn.silu` in TF 2.21, which sums a tensor beta's
    gradient into a scalar. A Python number as `beta` is a constant and gets no gradient.
    """
    if isinstance(beta, (int, float)):
        return _swish_constant_beta(x, float(beta))
    return _swish(x, tf.convert_to_tensor(beta, dtype=x.dtype))


# Products below use multiply_no_nan, which returns 0 wherever its second factor is 0: x * s
# is then 0 at x = -inf (where s = 0), and the terms with s (1 - s) vanish at x = +-inf instead
# of becoming inf * 0 = NaN.


@tf.custom_gradient
def _swish(x: tf.Tensor, beta: tf.Tensor):
    z = beta * x
    s = tf.sigmoid(z)

    def gradient(dy):
        # dy/dx = s + z s (1 - s) and dy/dbeta = x^2 s (1 - s).
        slope = s * (1.0 - s)
        dx = dy * (s + tf.math.multiply_no_nan(z, slope))
        dbeta = dy * tf.math.multiply_no_nan(x * x, slope)
        _, beta_axes = tf.raw_ops.BroadcastGradientArgs(s0=tf.shape(dbeta), s1=tf.shape(beta))
        dbeta = tf.reshape(tf.reduce_sum(dbeta, axis=beta_axes), tf.shape(beta))
        return dx, dbeta

    return tf.math.multiply_no_nan(x, s), gradient


def _swish_constant_beta(x: tf.Tensor, beta: float) -> tf.Tensor:
    @tf.custom_gradient
    def forward(inputs):
        z = beta * inputs
        s = tf.sigmoid(z)

        def gradient(dy):
            return dy * (s + tf.math.multiply_no_nan(z, s * (1.0 - s)))

        return tf.math.multiply_no_nan(inputs, s), gradient

    return forward(x)


def _unary_kernels() -> dict[str, Callable]:
    eps = functions.EPS
    return {
        "neg": lambda a, b: -a,
        "abs": lambda a, b: tf.abs(a),
        "square": lambda a, b: a * a,
        "cube": lambda a, b: a * a * a,
        "sqrt": lambda a, b: safe_sqrt(a),
        "scale": lambda a, b: b * a,
        "shift": lambda a, b: a + b,
        "log_abs": lambda a, b: tf.math.log(tf.abs(a) + eps),
        "exp": lambda a, b: tf.exp(a),
        "sin": lambda a, b: tf.sin(a),
        "cos": lambda a, b: tf.cos(a),
        "sinh": lambda a, b: tf.sinh(a),
        "cosh": lambda a, b: tf.cosh(a),
        "tanh": lambda a, b: tf.tanh(a),
        "asinh": lambda a, b: tf.asinh(a),
        "atan": lambda a, b: tf.atan(a),
        "sinc": lambda a, b: sinc(a),
        "relu": lambda a, b: tf.nn.relu(a),
        "min_zero": lambda a, b: tf.minimum(a, 0.0),
        "sigmoid": lambda a, b: tf.sigmoid(a),
        "softplus": lambda a, b: tf.math.softplus(a),
        "gaussian": lambda a, b: tf.exp(-a * a),
        "erf": lambda a, b: tf.math.erf(a),
    }


def _binary_kernels() -> dict[str, Callable]:
    eps = functions.EPS
    return {
        "add": lambda a, c, b: a + c,
        "mul": lambda a, c, b: a * c,
        "sub": lambda a, c, b: a - c,
        "div": lambda a, c, b: a / (c + eps),
        "max": lambda a, c, b: tf.maximum(a, c),
        "min": lambda a, c, b: tf.minimum(a, c),
        "sigmoid_mul": lambda a, c, b: tf.sigmoid(a) * c,
        "gaussian_kernel": lambda a, c, b: tf.exp(-b * tf.square(a - c)),
        "laplacian_kernel": lambda a, c, b: tf.exp(-b * tf.abs(a - c)),
        "interpolate": lambda a, c, b: b * a + (1.0 - b) * c,
    }


UNARY_KERNELS = _unary_kernels()
BINARY_KERNELS = _binary_kernels()

_REDUCERS = {"add": tf.add, "mul": tf.multiply, "max": tf.maximum, "min": tf.minimum}


def _swish_operand(node: Node) -> tuple[Node, Node | None] | None:
    """Match the Swish forms; return (operand, scale node or None when beta is 1) or None.

    Matches `a * sigmoid(beta * a)`, `sigmoid(beta * a) * a`, `sigmoid_mul(beta * a, a)` and the
    same forms without beta, where `a` owns no beta of its own (so fusing both occurrences of `a`
    into one changes no parameter).
    """
    pairs = []
    if node.op == "mul" and len(node.children) == 2:
        left, right = node.children
        if right.op == "sigmoid":
            pairs.append((left, right.children[0]))
        if left.op == "sigmoid":
            pairs.append((right, left.children[0]))
    if node.op == "sigmoid_mul":
        pairs.append((node.children[1], node.children[0]))
    for operand, inner in pairs:
        if any(n.uses_beta for n in operand.walk()):
            continue
        if inner == operand:
            return operand, None
        if inner.op == "scale" and inner.children[0] == operand:
            return operand, inner
    return None


def evaluate(node: Node, x: tf.Tensor, betas: list[tf.Tensor] | None = None) -> tf.Tensor:
    """Evaluate an expression on `x`.

    Args:
        node: the expression tree.
        x: input tensor; betas broadcast along its last axis.
        betas: one tensor per `beta` parameter, in the pre-order of `Node.walk()`; broadcastable
            against `x`, typically of shape `(C,)`. Defaults to 1.0 for every beta.

    Returns:
        A tensor with the shape and dtype of `x`.
    """
    if betas is None:
        betas = [tf.constant(1.0, dtype=x.dtype)] * sum(n.uses_beta for n in node.walk())
    remaining = iter(betas)
    result = _evaluate(node, x, remaining)
    leftover = sum(1 for _ in remaining)
    if leftover:
        raise ValueError(f"{leftover} more beta tensors were passed than the expression uses.")
    return result


def _next_beta(betas: Iterator[tf.Tensor], node: Node) -> tf.Tensor:
    try:
        return next(betas)
    except StopIteration:
        raise ValueError(f"Too few beta tensors for the expression at {node.op!r}.") from None


def _evaluate(node: Node, x: tf.Tensor, betas: Iterator[tf.Tensor]) -> tf.Tensor:
    if node.op == INPUT:
        return x
    if node.op == BETA:
        return tf.broadcast_to(tf.cast(_next_beta(betas, node), x.dtype), tf.shape(x))

    swish_match = _swish_operand(node)
    if swish_match is not None:
        operand, scale_node = swish_match
        value = _evaluate(operand, x, betas)
        if scale_node is None:
            return swish(value, 1.0)  # A constant beta of 1: Swish-1.
        return swish(value, tf.cast(_next_beta(betas, scale_node), x.dtype))

    beta = _next_beta(betas, node) if node.uses_beta else None
    values = [_evaluate(child, x, betas) for child in node.children]
    if node.op in _REDUCERS and len(values) > 2:
        result = values[0]
        for value in values[1:]:
            result = _REDUCERS[node.op](result, value)
        return result
    if node.op in UNARY_KERNELS:
        return UNARY_KERNELS[node.op](values[0], beta)
    if node.op in BINARY_KERNELS:
        return BINARY_KERNELS[node.op](values[0], values[1], beta)
    raise ValueError(f"Cannot evaluate node with unknown op {node.op!r}.")
