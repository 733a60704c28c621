"""NumPy reference implementations of the search-space functions.

They follow the same semantics as the TensorFlow kernels in `swish_tf.ops` (see its docstring for
the cases where the plain math is undefined) and serve as the reference that tests check those
kernels against, and as the evaluator behind `expressions.fingerprint`.
"""

import math

import numpy as np

from swish_tf import functions
from swish_tf.expressions import BETA, INPUT, Node

_SINC_TAYLOR_BELOW = 1e-4


def _sqrt(a):
    return np.sqrt(np.maximum(a, 0.0))


def _sinc(a):
    small = np.abs(a) < _SINC_TAYLOR_BELOW
    safe = np.where(small, 1.0, a)
    return np.where(small, 1.0 - a * a / 6.0, np.sin(safe) / safe)


def _sigmoid(a):
    return np.where(a >= 0, 1.0 / (1.0 + np.exp(-np.abs(a))),
                    np.exp(-np.abs(a)) / (1.0 + np.exp(-np.abs(a))))


_ERF = np.vectorize(math.erf, otypes=[float])

UNARY = {
    "neg": lambda a, b: -a,
    "abs": lambda a, b: np.abs(a),
    "square": lambda a, b: a * a,
    "cube": lambda a, b: a * a * a,
    "sqrt": lambda a, b: _sqrt(a),
    "scale": lambda a, b: b * a,
    "shift": lambda a, b: a + b,
    "log_abs": lambda a, b: np.log(np.abs(a) + functions.EPS),
    "exp": lambda a, b: np.exp(a),
    "sin": lambda a, b: np.sin(a),
    "cos": lambda a, b: np.cos(a),
    "sinh": lambda a, b: np.sinh(a),
    "cosh": lambda a, b: np.cosh(a),
    "tanh": lambda a, b: np.tanh(a),
    "asinh": lambda a, b: np.arcsinh(a),
    "atan": lambda a, b: np.arctan(a),
    "sinc": lambda a, b: _sinc(a),
    "relu": lambda a, b: np.maximum(a, 0.0),
    "min_zero": lambda a, b: np.minimum(a, 0.0),
    "sigmoid": lambda a, b: _sigmoid(a),
    "softplus": lambda a, b: np.logaddexp(0.0, a),
    "gaussian": lambda a, b: np.exp(-a * a),
    "erf": lambda a, b: _ERF(a),
}

BINARY = {
    "add": lambda a, c, b: a + c,
    "mul": lambda a, c, b: a * c,
    "sub": lambda a, c, b: a - c,
    "div": lambda a, c, b: a / (c + functions.EPS),
    "max": lambda a, c, b: np.maximum(a, c),
    "min": lambda a, c, b: np.minimum(a, c),
    "sigmoid_mul": lambda a, c, b: _sigmoid(a) * c,
    "gaussian_kernel": lambda a, c, b: np.exp(-b * (a - c) ** 2),
    "laplacian_kernel": lambda a, c, b: np.exp(-b * np.abs(a - c)),
    "interpolate": lambda a, c, b: b * a + (1.0 - b) * c,
}

_REDUCERS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def evaluate(node: Node, x, beta=1.0) -> np.ndarray:
    """Evaluate an expression on `x`, with every `beta` set to `beta`.

    Accepts the n-ary `add`, `mul`, `max` and `min` nodes of canonical forms as well.
    Overflow gives inf and undefined operations give NaN, as in IEEE arithmetic; no warnings.
    """
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        return np.asarray(_evaluate(node, x, beta), dtype=np.float64)


def _evaluate(node: Node, x, beta):
    if node.op == INPUT:
        return x
    if node.op == BETA:
        return np.full_like(x, beta)
    values = [_evaluate(child, x, beta) for child in node.children]
    if node.op in _REDUCERS and len(values) > 2:
        return _REDUCERS[node.op].reduce(np.stack(np.broadcast_arrays(*values)), axis=0)
    if node.op in UNARY:
        return UNARY[node.op](values[0], beta)
    if node.op in BINARY:
        return BINARY[node.op](values[0], values[1], beta)
    raise ValueError(f"Cannot evaluate node with unknown op {node.op!r}.")
