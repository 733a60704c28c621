"""Cheap check that flags candidates that cannot train, before any child network is trained.

A candidate fails when, on typical preactivations (x in [-6, 6] with every beta at its initial
value 1), its value or its gradient is non-finite somewhere, its output is constant, or its
gradient is zero everywhere. The check evaluates the same TensorFlow kernels that training uses.
A failing candidate is a legal member of the search space, so a search records it with reward 0
and the reason instead of raising.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from swish_tf import expressions, ops
from swish_tf.expressions import Node

# Typical preactivations after batch normalization, plus zero exactly.
CHECK_INPUTS = np.concatenate([np.linspace(-6.0, 6.0, 241), [0.0]]).astype(np.float32)
_CONSTANT_TOLERANCE = 1e-6
_ZERO_GRADIENT_TOLERANCE = 1e-7


@dataclasses.dataclass(frozen=True)
class Validity:
    """Outcome of `check_expression`; `reason` is empty when `valid`."""

    valid: bool
    reason: str = ""


def check_expression(expression: Node) -> Validity:
    """Flag an expression whose values or gradients make training impossible."""
    x = tf.constant(CHECK_INPUTS)
    betas = [tf.ones((1,), tf.float32) for _ in range(expressions.count_betas(expression))]
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = ops.evaluate(expression, x, betas)
    gradient = tape.gradient(y, x)
    values = np.broadcast_to(y.numpy(), CHECK_INPUTS.shape)
    slopes = (np.zeros_like(CHECK_INPUTS) if gradient is None
              else np.broadcast_to(gradient.numpy(), CHECK_INPUTS.shape))

    bad = ~np.isfinite(values)
    if bad.any():
        return Validity(False, f"non-finite value {values[bad][0]} at x = {CHECK_INPUTS[bad][0]:g}")
    bad = ~np.isfinite(slopes)
    if bad.any():
        return Validity(False,
                        f"non-finite gradient {slopes[bad][0]} at x = {CHECK_INPUTS[bad][0]:g}")
    spread = float(values.max() - values.min())
    if spread <= _CONSTANT_TOLERANCE * (1.0 + float(np.abs(values).max())):
        return Validity(False, f"constant output {float(values[0]):g} on x in [-6, 6]")
    if float(np.abs(slopes).max()) <= _ZERO_GRADIENT_TOLERANCE:
        return Validity(False, "zero gradient everywhere on x in [-6, 6]")
    return Validity(True)
