"""The unary and binary functions of the activation search space.

"Searching for Activation Functions" (Ramachandran, Zoph and Le, 2017) builds every candidate from
core units b(u1(x1), u2(x2)) over 25 unary and 10 binary functions. This module lists them as plain
data: a name used in token sequences and configs, the printed form, and whether the function uses a
trainable `beta`. It imports no TensorFlow; `swish_tf.ops` maps the same names to TF kernels and
`swish_tf.numpy_ops` to NumPy references.

Each function that uses `beta` owns one trainable parameter per channel. In
`beta * x1 + (1 - beta) * x2` both occurrences are that one parameter.
"""

import dataclasses


# Small constant of the search space, written `eps` in printed forms: `log(|x| + eps)` and
# `x1 / (x2 + eps)`. The paper does not give its value.
EPS = 1e-6


@dataclasses.dataclass(frozen=True)
class UnaryFunction:
    """One unary function u(x) of the search space.

    Attributes:
        name: identifier used in token sequences, configs and canonical forms.
        template: printed form, with `{0}` standing for the operand.
        uses_beta: whether the function has its own trainable `beta`.
    """

    name: str
    template: str
    uses_beta: bool = False


@dataclasses.dataclass(frozen=True)
class BinaryFunction:
    """One binary function b(x1, x2) of the search space.

    Attributes:
        name: identifier used in token sequences, configs and canonical forms.
        template: printed form, with `{0}` and `{1}` standing for the operands.
        uses_beta: whether the function has its own trainable `beta`.
        commutative: whether b(x1, x2) == b(x2, x1) for all inputs.
    """

    name: str
    template: str
    uses_beta: bool = False
    commutative: bool = False


# The 25 unary functions, in the order the paper lists them.
UNARY_FUNCTIONS = (
    UnaryFunction("identity", "{0}"),
    UnaryFunction("neg", "-{0}"),
    UnaryFunction("abs", "|{0}|"),
    UnaryFunction("square", "{0}^2"),
    UnaryFunction("cube", "{0}^3"),
    UnaryFunction("sqrt", "sqrt({0})"),
    UnaryFunction("scale", "beta * {0}", uses_beta=True),
    UnaryFunction("shift", "{0} + beta", uses_beta=True),
    UnaryFunction("log_abs", "log(|{0}| + eps)"),
    UnaryFunction("exp", "exp({0})"),
    UnaryFunction("sin", "sin({0})"),
    UnaryFunction("cos", "cos({0})"),
    UnaryFunction("sinh", "sinh({0})"),
    UnaryFunction("cosh", "cosh({0})"),
    UnaryFunction("tanh", "tanh({0})"),
    UnaryFunction("asinh", "asinh({0})"),
    UnaryFunction("atan", "atan({0})"),
    UnaryFunction("sinc", "sinc({0})"),
    UnaryFunction("relu", "max({0}, 0)"),
    UnaryFunction("min_zero", "min({0}, 0)"),
    UnaryFunction("sigmoid", "sigmoid({0})"),
    UnaryFunction("softplus", "log(1 + exp({0}))"),
    UnaryFunction("gaussian", "exp(-{0}^2)"),
    UnaryFunction("erf", "erf({0})"),
    # The constant function u(x) = beta: its operand is ignored.
    UnaryFunction("beta", "beta", uses_beta=True),
)

# The 10 binary functions, in the order the paper lists them.
BINARY_FUNCTIONS = (
    BinaryFunction("add", "{0} + {1}", commutative=True),
    BinaryFunction("mul", "{0} * {1}", commutative=True),
    BinaryFunction("sub", "{0} - {1}"),
    BinaryFunction("div", "{0} / ({1} + eps)"),
    BinaryFunction("max", "max({0}, {1})", commutative=True),
    BinaryFunction("min", "min({0}, {1})", commutative=True),
    BinaryFunction("sigmoid_mul", "sigmoid({0}) * {1}"),
    BinaryFunction("gaussian_kernel", "exp(-beta * ({0} - {1})^2)", uses_beta=True,
                   commutative=True),
    BinaryFunction("laplacian_kernel", "exp(-beta * |{0} - {1}|)", uses_beta=True,
                   commutative=True),
    BinaryFunction("interpolate", "beta * {0} + (1 - beta) * {1}", uses_beta=True),
)

UNARY = {function.name: function for function in UNARY_FUNCTIONS}
BINARY = {function.name: function for function in BINARY_FUNCTIONS}
UNARY_NAMES = tuple(UNARY)
BINARY_NAMES = tuple(BINARY)


def unary(name: str) -> UnaryFunction:
    """Look up a unary function by name; raise ValueError naming the known ones."""
    try:
        return UNARY[name]
    except KeyError:
        raise ValueError(
            f"Unknown unary function {name!r}. Known: {', '.join(UNARY_NAMES)}.") from None


def binary(name: str) -> BinaryFunction:
    """Look up a binary function by name; raise ValueError naming the known ones."""
    try:
        return BINARY[name]
    except KeyError:
        raise ValueError(
            f"Unknown binary function {name!r}. Known: {', '.join(BINARY_NAMES)}.") from None
