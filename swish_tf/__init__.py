"""swish_tf: "Searching for Activation Functions" (Ramachandran, Zoph and Le, 2017) in TF/Keras.

Public API:
    parse_expression(text): parse an expression such as "x * sigmoid(beta * x)" into a tree.
    ExpressionActivation(expression=...): Keras layer computing an expression, per-channel beta.
    get_activation(name_or_expression): a new activation layer for a name or an expression.
    SearchSpace: a space of core units b(u1(x1), u2(x2)) and its token sequences.
"""

from swish_tf.activations import BENCHMARK_ACTIVATIONS, NAMED_EXPRESSIONS, get_activation
from swish_tf.expressions import (Node, canonical_hash, canonical_key, canonicalize, fingerprint,
                                  to_text)
from swish_tf.layers import ExpressionActivation, PerChannelPReLU
from swish_tf.parser import ExpressionError, parse_expression
from swish_tf.search_space import SearchSpace
from swish_tf.validity import Validity, check_expression

__all__ = [
    "BENCHMARK_ACTIVATIONS", "NAMED_EXPRESSIONS", "ExpressionActivation", "ExpressionError",
    "Node", "PerChannelPReLU", "SearchSpace", "Validity", "canonical_hash", "canonical_key",
    "canonicalize", "check_expression", "fingerprint", "get_activation", "parse_expression",
    "to_text",
]
