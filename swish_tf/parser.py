"""Parser for the readable expression syntax, such as `x * sigmoid(beta * x)`.

Grammar, loosest binding first (`^` binds tighter than unary minus, so `-x^2` is `-(x^2)`):

    sum      := product (("+" | "-") product)*
    product  := negation (("*" | "/") negation)*
    negation := "-" negation | power
    power    := atom (("^" | "**") ("2" | "3"))?
    atom     := "x" | "beta" | "eps" | NUMBER | NAME "(" sum ("," sum)* ")" | "(" sum ")"
              | "|" sum "|"

Parsing runs in two passes. The first builds a syntax tree of plain arithmetic; the second maps it
onto the search space's functions, recognizing the printed forms that span several operators:
`beta * a` (scale), `a + beta` (shift), `log(|a| + eps)`, `log(1 + exp(a))`, `max(a, 0)`,
`min(a, 0)`, `exp(-a^2)`, `exp(-beta * (a - b)^2)`, `exp(-beta * |a - b|)`,
`beta * a + (1 - beta) * b` (one shared beta) and `a / (b + eps)` (also written `a / b`).
Numbers and `eps` are valid only inside those forms. Every error is an `ExpressionError` that names
the offending token and its position; no partial result is returned.
"""

import dataclasses
import re

from swish_tf import expressions
from swish_tf.expressions import Node


class ExpressionError(ValueError):
    """A text is not a valid expression of the search space."""

    def __init__(self, message: str, text: str, position: int | None = None):
        where = f" at position {position}" if position is not None else ""
        super().__init__(f"Invalid expression {text!r}{where}: {message}.")
        self.text = text
        self.position = position


@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str  # "number", "name", "op" or "end"
    value: str
    position: int


_TOKEN_PATTERN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*)|(?P<op>\*\*|[-+*/^(),|]))")

# Functions written with call syntax, with the number of arguments each takes.
_CALLS = {
    "sqrt": 1, "exp": 1, "sin": 1, "cos": 1, "sinh": 1, "cosh": 1, "tanh": 1, "asinh": 1,
    "atan": 1, "sinc": 1, "sigmoid": 1, "erf": 1, "log": 1, "abs": 1, "max": 2, "min": 2,
}


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            tokens.append(_Token("end", "end of text", position))
            return tokens
        match = _TOKEN_PATTERN.match(text, position)
        if not match or match.end() == position:
            raise ExpressionError(f"unexpected character {text[position]!r}", text, position)
        kind = match.lastgroup
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()


# Syntax-tree nodes of the first pass are tuples: (kind, position, *operands).


class _SyntaxParser:
    """Recursive-descent parser producing the plain arithmetic syntax tree."""

    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def fail(self, message: str, token: _Token):
        raise ExpressionError(message, self.text, token.position)

    def expect(self, value: str, context: str) -> _Token:
        token = self.take()
        if token.value != value or token.kind != "op":
            self.fail(f"expected {value!r} {context}, found {token.value!r}", token)
        return token

    def parse(self):
        if self.peek().kind == "end":
            raise ExpressionError("the text is empty", self.text)
        tree = self.sum()
        token = self.peek()
        if token.kind != "end":
            self.fail(f"unexpected {token.value!r} after a complete expression", token)
        return tree

    def sum(self):
        tree = self.product()
        while self.peek().value in ("+", "-") and self.peek().kind == "op":
            token = self.take()
            tree = ("add" if token.value == "+" else "sub", token.position, tree, self.product())
        return tree

    def product(self):
        tree = self.negation()
        while self.peek().value in ("*", "/") and self.peek().kind == "op":
            token = self.take()
            tree = ("mul" if token.value == "*" else "div", token.position, tree, self.negation())
        return tree

    def negation(self):
        if self.peek().value == "-" and self.peek().kind == "op":
            token = self.take()
            return ("neg", token.position, self.negation())
        return self.power()

    def power(self):
        tree = self.atom()
        if self.peek().value in ("^", "**"):
            operator = self.take()
            exponent = self.take()
            if exponent.kind != "number" or exponent.value not in ("2", "3"):
                self.fail(f"only the exponents 2 and 3 are in the search space, found "
                          f"{exponent.value!r}", exponent)
            tree = ("pow", operator.position, tree, int(exponent.value))
            if self.peek().value in ("^", "**"):
                self.fail("chained powers are ambiguous; add parentheses", self.peek())
        return tree

    def atom(self):
        token = self.take()
        if token.kind == "number":
            return ("number", token.position, float(token.value))
        if token.kind == "name":
            if token.value in ("x", "beta", "eps"):
                return (token.value, token.position)
            if token.value not in _CALLS:
                known = ", ".join(sorted(_CALLS))
                self.fail(f"unknown name {token.value!r}; the variables are x, beta and eps and "
                          f"the functions {known}", token)
            return self.call(token)
        if token.value == "(":
            tree = self.sum()
            self.expect(")", f"to close the '(' at position {token.position}")
            return tree
        if token.value == "|":
            tree = self.sum()
            self.expect("|", f"to close the '|' at position {token.position}")
            return ("call", token.position, "abs", (tree,))
        if token.kind == "end":
            self.fail("the expression ends where an operand is expected", token)
        self.fail(f"unexpected {token.value!r} where an operand is expected", token)

    def call(self, name: _Token):
        self.expect("(", f"after the function name {name.value!r}")
        arguments = [self.sum()]
        while self.peek().value == "," and self.peek().kind == "op":
            self.take()
            arguments.append(self.sum())
        closing = self.peek()
        if closing.value != ")":
            self.fail(f"expected ')' to close the call of {name.value!r} at position "
                      f"{name.position}, found {closing.value!r}", closing)
        self.take()
        wanted = _CALLS[name.value]
        if len(arguments) != wanted:
            self.fail(f"{name.value} takes {wanted} argument{'s' if wanted > 1 else ''}, "
                      f"got {len(arguments)}", name)
        return ("call", name.position, name.value, tuple(arguments))


def _is_number(tree, value: float) -> bool:
    return tree[0] == "number" and tree[2] == value


def _is_call(tree, name: str) -> bool:
    return tree[0] == "call" and tree[2] == name


class _Lowering:
    """Second pass: map the arithmetic syntax tree onto search-space functions."""

    def __init__(self, text: str):
        self.text = text

    def fail(self, message: str, tree):
        raise ExpressionError(message, self.text, tree[1])

    def lower(self, tree) -> Node:
        kind = tree[0]
        if kind == "x":
            return expressions.X
        if kind == "beta":
            return Node(expressions.BETA)
        if kind == "eps":
            self.fail("'eps' is valid only in the forms log(|a| + eps) and a / (b + eps)", tree)
        if kind == "number":
            self.fail(f"the constant {tree[2]:g} is not in the search space; numbers are valid "
                      "only in max(a, 0), min(a, 0), log(1 + exp(a)) and (1 - beta)", tree)
        if kind == "neg":
            return Node("neg", (self.lower(tree[2]),))
        if kind == "pow":
            return Node("square" if tree[3] == 2 else "cube", (self.lower(tree[2]),))
        if kind == "add":
            return self.lower_add(tree)
        if kind == "sub":
            return Node("sub", (self.lower(tree[2]), self.lower(tree[3])))
        if kind == "mul":
            left, right = tree[2], tree[3]
            if left[0] == "beta":
                return Node("scale", (self.lower(right),))
            return Node("mul", (self.lower(left), self.lower(right)))
        if kind == "div":
            denominator = tree[3]
            if denominator[0] == "add" and denominator[3][0] == "eps":
                denominator = denominator[2]
            return Node("div", (self.lower(tree[2]), self.lower(denominator)))
        if kind == "call":
            return self.lower_call(tree)
        raise AssertionError(f"unhandled syntax node {kind!r}")

    def lower_add(self, tree) -> Node:
        left, right = tree[2], tree[3]
        # beta * a + (1 - beta) * b: one shared beta.
        if (left[0] == "mul" and left[2][0] == "beta" and right[0] == "mul"
                and right[2][0] == "sub" and _is_number(right[2][2], 1.0)
                and right[2][3][0] == "beta"):
            return Node("interpolate", (self.lower(left[3]), self.lower(right[3])))
        if right[0] == "beta":
            return Node("shift", (self.lower(left),))
        return Node("add", (self.lower(left), self.lower(right)))

    def lower_call(self, tree) -> Node:
        name, arguments = tree[2], tree[3]
        if name in ("max", "min"):
            first, second = arguments
            unary = "relu" if name == "max" else "min_zero"
            if _is_number(second, 0.0):
                return Node(unary, (self.lower(first),))
            if _is_number(first, 0.0):
                return Node(unary, (self.lower(second),))
            return Node(name, (self.lower(first), self.lower(second)))

        (argument,) = arguments
        if name == "log":
            # log(|a| + eps)
            if argument[0] == "add" and argument[3][0] == "eps" and _is_call(argument[2], "abs"):
                return Node("log_abs", (self.lower(argument[2][3][0]),))
            # log(1 + exp(a))
            if (argument[0] == "add" and _is_number(argument[2], 1.0)
                    and _is_call(argument[3], "exp")):
                return Node("softplus", (self.lower(argument[3][3][0]),))
            self.fail("log is in the search space only as log(|a| + eps) and log(1 + exp(a))",
                      tree)
        if name == "exp":
            return self.lower_exp(argument)
        return Node(name, (self.lower(argument),))

    def lower_exp(self, argument) -> Node:
        # exp(-a^2)
        if argument[0] == "neg" and argument[2][0] == "pow" and argument[2][3] == 2:
            return Node("gaussian", (self.lower(argument[2][2]),))
        # exp(-beta * (a - b)^2) and exp(-beta * |a - b|)
        if (argument[0] == "mul" and argument[2][0] == "neg" and argument[2][2][0] == "beta"):
            distance = argument[3]
            if distance[0] == "pow" and distance[3] == 2 and distance[2][0] == "sub":
                difference = distance[2]
                return Node("gaussian_kernel",
                            (self.lower(difference[2]), self.lower(difference[3])))
            if _is_call(distance, "abs") and distance[3][0][0] == "sub":
                difference = distance[3][0]
                return Node("laplacian_kernel",
                            (self.lower(difference[2]), self.lower(difference[3])))
        return Node("exp", (self.lower(argument),))


def parse_expression(text: str) -> Node:
    """Parse text such as `max(x, sigmoid(x))` into an expression tree.

    Raises:
        ExpressionError: a `ValueError` naming the offending token and its position.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_expression expects a string, received {type(text).__name__}: "
                        f"{text!r}")
    syntax = _SyntaxParser(text).parse()
    return _Lowering(text).lower(syntax)
