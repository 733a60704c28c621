"""Activation-function expressions: trees over the input `x`, printed forms and canonical forms.

An expression is a tree of `Node`s. A leaf is the input `x` or a free-standing `beta`; an inner
node applies one of the search space's unary or binary functions (`swish_tf.functions`) to its
children. Functions nest freely, so every printed form of "Searching for Activation Functions"
is an expression, including those that need two core units such as `atan(x)^2 - x`. The unary
`identity` never appears in a tree: applying it is the same as using its operand.

Every node whose function uses `beta` owns one trainable parameter; two such nodes own two.

The canonical form rewrites an expression into a normal form under which equivalent
candidates coincide: `x - y` becomes `x + -y`, the operands of commutative functions are sorted,
nested sums, products, maxima and minima are flattened, and identities such as `--x = x`,
`max(a, a) = a` and `|(-a)| = |a|` are applied. The numerical fingerprint, the values on fixed
inputs, is a second key that catches equivalences the rewrite rules miss.

This module imports no TensorFlow.
"""

import dataclasses
import hashlib
from typing import Iterator

import numpy as np

from swish_tf import functions

INPUT = "x"
BETA = "beta"

# Operators whose operands may be reordered and regrouped in the canonical form.
_ASSOCIATIVE = frozenset({"add", "mul", "max", "min"})
# Functions with f(-a) == f(a) and therefore f(|a|) == f(a).
_EVEN = frozenset({"abs", "square", "cos", "cosh", "sinc", "gaussian"})


@dataclasses.dataclass(frozen=True)
class Node:
    """One node of an expression tree.

    Attributes:
        op: `"x"`, `"beta"`, or the name of a unary or binary function.
        children: operands; empty for leaves, one for unary and two for binary functions.
            Canonical forms may give `add`, `mul`, `max` and `min` more than two.
    """

    op: str
    children: tuple["Node", ...] = ()

    def __str__(self) -> str:
        return to_text(self)

    @property
    def uses_beta(self) -> bool:
        """Whether this node itself owns a `beta` parameter."""
        if self.op == BETA:
            return True
        if self.op in functions.UNARY:
            return functions.UNARY[self.op].uses_beta
        if self.op in functions.BINARY:
            return functions.BINARY[self.op].uses_beta
        return False

    def walk(self) -> Iterator["Node"]:
        """Yield the nodes of the tree in pre-order, the order that numbers `beta` parameters."""
        yield self
        for child in self.children:
            yield from child.walk()


X = Node(INPUT)


def make_unary(name: str, operand: Node) -> Node:
    """Apply the unary function `name`, simplifying `identity` and the constant `beta`."""
    functions.unary(name)
    if name == "identity":
        return operand
    if name == BETA:
        return Node(BETA)
    return Node(name, (operand,))


def make_binary(name: str, left: Node, right: Node) -> Node:
    """Apply the binary function `name`, simplifying `max(a, a)` and `min(a, a)` to `a`.

    The simplification applies only where `a` owns no `beta`, so it never changes the number of
    trainable parameters.
    """
    functions.binary(name)
    if name in ("max", "min") and left == right and count_betas(left) == 0:
        return left
    return Node(name, (left, right))


def count_betas(node: Node) -> int:
    """Return the number of trainable `beta` parameters the expression has."""
    return sum(1 for n in node.walk() if n.uses_beta)


def depth(node: Node) -> int:
    return 1 + max((depth(child) for child in node.children), default=0)


# --- Printing -----------------------------------------------------------------------------------

# Precedence levels of printed forms, loosest first.
_SUM, _PRODUCT, _NEGATION, _POWER, _ATOM = 1, 2, 3, 4, 5

_CALL_SYNTAX = frozenset({
    "sqrt", "exp", "sin", "cos", "sinh", "cosh", "tanh", "asinh", "atan", "sinc", "sigmoid", "erf",
})


def to_text(node: Node) -> str:
    """Print an expression in the readable syntax that `parse_expression` reads back.

    Printing uses the forms of "Searching for Activation Functions" (`x * sigmoid(beta * x)`,
    `log(|x| + eps)`) with the fewest parentheses that keep the meaning, except that a negated
    operand on the right of an infix operator is always parenthesized (`x - (-x)`).
    """
    return _format(node)[0]


def _left(node: Node, level: int) -> str:
    text, precedence = _format(node)
    return text if precedence >= level else f"({text})"


def _right(node: Node, level: int) -> str:
    text, precedence = _format(node)
    return text if precedence > level and precedence != _NEGATION else f"({text})"


def _format(node: Node) -> tuple[str, int]:
    op, kids = node.op, node.children
    if op in (INPUT, BETA):
        return op, _ATOM
    if op in _CALL_SYNTAX:
        return f"{op}({to_text(kids[0])})", _ATOM
    if op == "neg":
        return "-" + _left(kids[0], _POWER), _NEGATION
    if op == "abs":
        return f"|{to_text(kids[0])}|", _ATOM
    if op in ("square", "cube"):
        exponent = 2 if op == "square" else 3
        return f"{_left(kids[0], _ATOM)}^{exponent}", _POWER
    if op == "scale":
        return "beta * " + _right(kids[0], _PRODUCT), _PRODUCT
    if op == "shift":
        return _left(kids[0], _SUM) + " + beta", _SUM
    if op == "log_abs":
        return f"log(|{to_text(kids[0])}| + eps)", _ATOM
    if op == "relu":
        return f"max({to_text(kids[0])}, 0)", _ATOM
    if op == "min_zero":
        return f"min({to_text(kids[0])}, 0)", _ATOM
    if op == "softplus":
        return f"log(1 + exp({to_text(kids[0])}))", _ATOM
    if op == "gaussian":
        return f"exp(-{_left(kids[0], _ATOM)}^2)", _ATOM
    if op in ("add", "sub", "mul"):
        symbol, level = {"add": ("+", _SUM), "sub": ("-", _SUM), "mul": ("*", _PRODUCT)}[op]
        text = _left(kids[0], level)
        for kid in kids[1:]:
            text += f" {symbol} " + _right(kid, level)
        return text, level
    if op == "div":
        return f"{_left(kids[0], _PRODUCT)} / ({to_text(kids[1])} + eps)", _PRODUCT
    if op in ("max", "min"):
        return f"{op}({', '.join(to_text(kid) for kid in kids)})", _ATOM
    if op == "sigmoid_mul":
        return f"sigmoid({to_text(kids[0])}) * {_right(kids[1], _PRODUCT)}", _PRODUCT
    if op in ("gaussian_kernel", "laplacian_kernel"):
        difference = f"{_left(kids[0], _SUM)} - {_right(kids[1], _SUM)}"
        if op == "gaussian_kernel":
            return f"exp(-beta * ({difference})^2)", _ATOM
        return f"exp(-beta * |{difference}|)", _ATOM
    if op == "interpolate":
        return (f"beta * {_right(kids[0], _PRODUCT)} + (1 - beta) * {_right(kids[1], _PRODUCT)}",
                _SUM)
    raise ValueError(f"Cannot print node with unknown op {op!r}.")


# --- Canonical form -----------------------------------------------------------------------------

def canonicalize(node: Node) -> Node:
    """Rewrite an expression into its canonical form (see the module docstring).

    The canonical form computes the same function, but it may use n-ary `add`, `mul`, `max` and
    `min` nodes, so it is a key for deduplication, not a tree to print for users. Functions that
    differ only in how many separate `beta` parameters they own can share a canonical form.
    """
    kids = tuple(canonicalize(child) for child in node.children)
    op = node.op

    # Lower derived functions into the primitive ones they are made of.
    if op == "sigmoid_mul":
        return canonicalize(Node("mul", (Node("sigmoid", (kids[0],)), kids[1])))
    if op == "scale":
        return _flatten("mul", (Node(BETA), kids[0]))
    if op == "shift":
        return _flatten("add", (kids[0], Node(BETA)))
    if op == "sub":
        return _flatten("add", (kids[0], _negate(kids[1])))

    if op == "neg":
        return _negate(kids[0])
    if op in _EVEN and kids[0].op in ("neg", "abs"):
        return canonicalize(Node(op, kids[0].children))
    if op == "abs" and kids[0].op in ("square", "exp", "sigmoid", "softplus", "gaussian",
                                      "cosh", "gaussian_kernel", "laplacian_kernel"):
        return kids[0]  # These are never negative.
    if op == "relu" and kids[0].op in ("relu", "abs", "square", "exp", "sigmoid"):
        return kids[0]
    if op in _ASSOCIATIVE:
        return _flatten(op, kids)
    if op in ("gaussian_kernel", "laplacian_kernel"):
        return Node(op, tuple(sorted(kids, key=canonical_text)))
    if op == "interpolate" and kids[0] == kids[1]:
        return kids[0]
    return Node(op, kids)


def _negate(node: Node) -> Node:
    return node.children[0] if node.op == "neg" else Node("neg", (node,))


def _flatten(op: str, kids: tuple[Node, ...]) -> Node:
    """Merge nested `op` nodes, sort the operands and drop repeats where `op` is idempotent."""
    operands = []
    for kid in kids:
        operands.extend(kid.children if kid.op == op else (kid,))
    operands.sort(key=canonical_text)
    if op in ("max", "min"):
        unique = []
        for operand in operands:
            if not unique or unique[-1] != operand:
                unique.append(operand)
        operands = unique
        if len(operands) == 1:
            return operands[0]
    return Node(op, tuple(operands))


def canonical_text(node: Node) -> str:
    """Return the prefix notation of a tree, such as `add(x,neg(sin(x)))`.

    Applied to `canonicalize(node)` this is the canonical key of a function.
    """
    if not node.children:
        return node.op
    return f"{node.op}({','.join(canonical_text(child) for child in node.children)})"


def canonical_key(node: Node) -> str:
    """Return the canonical text of an expression: equal for equivalent candidates."""
    return canonical_text(canonicalize(node))


def canonical_hash(node: Node) -> str:
    """Return a short stable hash of the canonical key."""
    return hashlib.sha256(canonical_key(node).encode()).hexdigest()[:16]


# --- Numerical fingerprint ----------------------------------------------------------------------

# Fixed inputs of the fingerprint: typical preactivations, both signs, and zero.
FINGERPRINT_INPUTS = np.array(
    [-6.0, -4.0, -3.0, -2.0, -1.5, -1.0, -0.7, -0.5, -0.3, -0.1, 0.0,
     0.1, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
# Every `beta` takes this value in the fingerprint. It is not 1, the initial value, so that a
# trainable `beta * x` does not collide with the plain `x`.
FINGERPRINT_BETA = 0.7


def fingerprint(node: Node) -> str:
    """Hash the values of an expression on fixed inputs to 6 significant digits.

    Two expressions with the same fingerprint compute the same function on every fixed input with
    all betas equal, which is the second deduplication key after the canonical form.
    """
    from swish_tf import numpy_ops  # Deferred: numpy_ops imports this module.

    values = numpy_ops.evaluate(node, FINGERPRINT_INPUTS, beta=FINGERPRINT_BETA)
    values = np.broadcast_to(values, FINGERPRINT_INPUTS.shape)
    words = []
    for value in values:
        if np.isnan(value):
            words.append("nan")
        elif abs(value) < 1e-9:
            words.append("0")
        else:
            words.append(f"{value:.6g}")
    return hashlib.sha256(" ".join(words).encode()).hexdigest()[:16]
