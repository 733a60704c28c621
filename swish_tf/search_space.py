"""Search spaces of core units and the token sequences a search controller emits.

A candidate of a space with `num_units` core units is a sequence of core units
b(u1(x1), u2(x2)). Unit k chooses, in this order, five tokens:

    input 1, input 2, unary 1, unary 2, binary

An input is `x` or the output of an earlier unit (`unit0`, `unit1`, ...); the first unit's inputs
can only be `x`. The candidate's function is the output of the last unit. This is the scheme of
"Searching for Activation Functions", where the RNN controller predicts one such component per
time step.
"""

import dataclasses
import itertools
from typing import Iterator, Sequence

from swish_tf import expressions, functions
from swish_tf.expressions import Node

TOKENS_PER_UNIT = 5
# Kinds of the five positions of a core unit.
POSITION_KINDS = ("input", "input", "unary", "unary", "binary")


def input_name(index: int) -> str:
    """Name of input choice `index`: 0 is `x`, k > 0 is the output of unit k - 1."""
    return expressions.INPUT if index == 0 else f"unit{index - 1}"


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """A space of activation functions built from `num_units` core units.

    Attributes:
        num_units: number of core units b(u1(x1), u2(x2)), at least 1.
        unary: names of the unary functions offered (see `swish_tf.functions`).
        binary: names of the binary functions offered.
        left_unary: unary functions offered for u1, when they differ from `unary`; for example
            `("identity",)` restricts the space to the form b(x, u(x)).
        right_unary: unary functions offered for u2, when they differ from `unary`.
    """

    num_units: int = 1
    unary: tuple[str, ...] = functions.UNARY_NAMES
    binary: tuple[str, ...] = functions.BINARY_NAMES
    left_unary: tuple[str, ...] | None = None
    right_unary: tuple[str, ...] | None = None

    def __post_init__(self):
        if not isinstance(self.num_units, int) or self.num_units < 1:
            raise ValueError(f"num_units must be a positive integer, received {self.num_units!r}.")
        for field in ("unary", "binary", "left_unary", "right_unary"):
            value = getattr(self, field)
            if value is None:
                continue
            value = tuple(value)
            object.__setattr__(self, field, value)
            if not value:
                raise ValueError(f"SearchSpace.{field} is empty; offer at least one function.")
            if len(set(value)) != len(value):
                raise ValueError(f"SearchSpace.{field} lists a function twice: {value!r}.")
            lookup = functions.binary if field == "binary" else functions.unary
            for name in value:
                lookup(name)

    @property
    def left_choices(self) -> tuple[str, ...]:
        return self.left_unary or self.unary

    @property
    def right_choices(self) -> tuple[str, ...]:
        return self.right_unary or self.unary

    @property
    def num_tokens(self) -> int:
        return TOKENS_PER_UNIT * self.num_units

    def vocabulary(self, position: int) -> tuple[str, ...]:
        """Return the token names offered at `position` of the sequence."""
        unit, slot = divmod(position, TOKENS_PER_UNIT)
        if slot < 2:
            return tuple(input_name(i) for i in range(unit + 1))
        if slot == 2:
            return self.left_choices
        if slot == 3:
            return self.right_choices
        return self.binary

    def max_vocabulary_size(self, kind: str) -> int:
        """Return the largest number of choices a position of `kind` offers."""
        return {"input": self.num_units, "unary": max(len(self.left_choices),
                                                      len(self.right_choices)),
                "binary": len(self.binary)}[kind]

    def size(self) -> int:
        """Return the number of ordered token sequences, before removing equivalent ones."""
        total = 1
        for position in range(self.num_tokens):
            total *= len(self.vocabulary(position))
        return total

    def enumerate(self) -> Iterator[tuple[int, ...]]:
        """Yield every token sequence (as choice indices) in a fixed lexicographic order."""
        ranges = [range(len(self.vocabulary(p))) for p in range(self.num_tokens)]
        return itertools.product(*ranges)

    def validate(self, tokens: Sequence[int]) -> tuple[int, ...]:
        """Check a token sequence against the space; raise ValueError naming the bad position."""
        tokens = tuple(int(t) for t in tokens)
        if len(tokens) != self.num_tokens:
            raise ValueError(f"A token sequence of this space has {self.num_tokens} tokens, "
                             f"received {len(tokens)}: {tokens!r}.")
        for position, token in enumerate(tokens):
            choices = self.vocabulary(position)
            if not 0 <= token < len(choices):
                raise ValueError(f"Token {token} at position {position} is out of range: that "
                                 f"position offers {len(choices)} choices {choices!r}.")
        return tokens

    def token_names(self, tokens: Sequence[int]) -> tuple[str, ...]:
        tokens = self.validate(tokens)
        return tuple(self.vocabulary(p)[t] for p, t in enumerate(tokens))

    def decode(self, tokens: Sequence[int]) -> Node:
        """Build the expression that a token sequence describes."""
        names = self.token_names(tokens)
        outputs = [expressions.X]
        for unit in range(self.num_units):
            in1, in2, u1, u2, b = names[unit * TOKENS_PER_UNIT:(unit + 1) * TOKENS_PER_UNIT]
            x1 = outputs[self.vocabulary(unit * TOKENS_PER_UNIT).index(in1)]
            x2 = outputs[self.vocabulary(unit * TOKENS_PER_UNIT).index(in2)]
            outputs.append(expressions.make_binary(
                b, expressions.make_unary(u1, x1), expressions.make_unary(u2, x2)))
        return outputs[-1]

    def encode(self, expression: Node) -> tuple[int, ...]:
        """Find a token sequence whose function is `expression`.

        The match is structural: the tree must be a binary function of unary functions of `x`
        or of earlier units, possibly after padding with `max(a, a)` units (how `atan(x)^2 - x`
        takes two units). Equivalent but differently written trees are matched through their
        canonical form.

        Raises:
            ValueError: the expression does not fit this space.
        """
        target = expressions.canonical_key(expression)
        for units in _decompositions(expression, self.num_units):
            try:
                tokens = self._tokens_for_units(units)
            except ValueError:
                continue
            if expressions.canonical_key(self.decode(tokens)) == target:
                return tokens
        raise ValueError(f"The expression {expressions.to_text(expression)!r} cannot be written "
                         f"with {self.num_units} core unit(s) over this space's functions.")

    def _tokens_for_units(self, units: list[tuple[int, int, str, str, str]]) -> tuple[int, ...]:
        """Convert (input1, input2, unary1, unary2, binary) name tuples into a token sequence."""
        if len(units) > self.num_units:
            raise ValueError(f"{len(units)} units do not fit in {self.num_units}.")
        # Fewer units than the space has: unused leading units compute max(x, x), and the
        # inputs that refer to units shift by their number.
        padding = self.num_units - len(units)
        units = [(0, 0, "identity", "identity", "max")] * padding + [
            (in1 + padding if in1 else 0, in2 + padding if in2 else 0, u1, u2, b)
            for in1, in2, u1, u2, b in units]
        tokens = []
        for unit, (in1, in2, u1, u2, b) in enumerate(units):
            base = unit * TOKENS_PER_UNIT
            for position, name in zip(range(base, base + TOKENS_PER_UNIT),
                                      (input_name(in1), input_name(in2), u1, u2, b)):
                choices = self.vocabulary(position)
                if name not in choices:
                    raise ValueError(f"{name!r} is not offered at position {position}.")
                tokens.append(choices.index(name))
        return tuple(tokens)


def _unary_of(node: Node) -> list[tuple[str, Node]]:
    """Return the ways to read `node` as u(operand): (unary name, operand) pairs."""
    readings = [("identity", node)]
    if node.op == expressions.BETA:
        readings.append(("beta", expressions.X))
    elif node.op in functions.UNARY:
        readings.append((node.op, node.children[0]))
    return readings


def _binary_of(node: Node) -> list[tuple[str, Node, Node]]:
    """Return the ways to read `node` as b(a1, a2), where a1 and a2 are unary applications."""
    readings = []
    if node.op in functions.BINARY:
        readings.append((node.op, node.children[0], node.children[1]))
    if node.op == "mul" and node.children[0].op == "sigmoid":
        readings.append(("sigmoid_mul", node.children[0].children[0], node.children[1]))
    if node.op == "mul" and node.children[1].op == "sigmoid":
        readings.append(("sigmoid_mul", node.children[1].children[0], node.children[0]))
    # Any node can pad a unit as max(u(a), u(a)), for example sin(x) == max(sin(x), sin(x)).
    readings.append(("max", node, node))
    readings.append(("min", node, node))
    return readings


def _decompositions(node: Node, num_units: int):
    """Yield lists of units (input1, input2, unary1, unary2, binary) whose last unit is `node`."""
    yield from _decompose(node, num_units, [])


def _decompose(node: Node, budget: int, units: list):
    if budget < 1:
        return
    for binary_name, left, right in _binary_of(node):
        for u1, operand1 in _unary_of(left):
            for u2, operand2 in _unary_of(right):
                yield from _place_operands(operand1, operand2, u1, u2, binary_name, budget, units)


def _place_operands(operand1, operand2, u1, u2, binary_name, budget, units):
    """Resolve both operands to inputs (x or earlier units), then append the unit."""
    for units1, in1 in _as_input(operand1, budget - 1, units):
        used = len(units1) - len(units)
        for units2, in2 in _as_input(operand2, budget - 1 - used, units1):
            final = units2 + [(in1, in2, u1, u2, binary_name)]
            yield final


def _as_input(node: Node, budget: int, units: list):
    """Yield (units, input index) pairs that make `node` available as a unit input."""
    if node == expressions.X:
        yield units, 0
        return
    for sub_units in _decompose(node, budget, units):
        yield sub_units, len(sub_units)
