"""Parser and printer: the printed forms of "Searching for Activation Functions", precedence,
round trips and errors."""

import numpy as np
import pytest

from swish_tf import expressions, numpy_ops
from swish_tf.parser import ExpressionError, parse_expression
from swish_tf.search_space import SearchSpace

PAPER_FORMS = [
    "x * sigmoid(beta * x)",
    "max(x, sigmoid(x))",
    "cos(x) - x",
    "min(x, sin(x))",
    "atan(x)^2 - x",
    "max(x, tanh(x))",
    "sinc(x) + x",
    "x * asinh(x)^2",
    "-x^2",
    "(-x)^2",
    "x - (sin(x) - cos(x))",
    "beta * x + (1 - beta) * sin(x)",
    "exp(-beta * (x - tanh(x))^2)",
    "exp(-beta * |x - sin(x)|)",
    "log(|x| + eps)",
    "log(1 + exp(x))",
    "x / (sin(x) + eps)",
    "exp(-x^2)",
    "max(x, 0)",
    "min(x, 0)",
    "x + beta",
    "beta",
    "||x| - |sin(x)||",
    "sqrt(x)",
    "erf(x) * x^3",
]


@pytest.mark.parametrize("text", PAPER_FORMS)
def test_printed_form_parses_back_unchanged(text):
    tree = parse_expression(text)
    assert expressions.to_text(tree) == text
    assert parse_expression(expressions.to_text(tree)) == tree


def test_whitespace_and_nesting_are_free():
    assert parse_expression("  x*sigmoid( beta*x )") == parse_expression("x * sigmoid(beta * x)")
    assert parse_expression("((x)) - ((sin((x))))") == parse_expression("x - sin(x)")


def test_power_binds_tighter_than_negation():
    assert parse_expression("-x^2").op == "neg"
    assert parse_expression("(-x)^2").op == "square"
    assert numpy_ops.evaluate(parse_expression("-x^2"), 3.0) == -9.0
    assert numpy_ops.evaluate(parse_expression("(-x)^2"), 3.0) == 9.0


def test_shared_beta_forms_map_to_one_function():
    interpolate = parse_expression("beta * x + (1 - beta) * sin(x)")
    assert interpolate.op == "interpolate"
    assert expressions.count_betas(interpolate) == 1
    kernel = parse_expression("exp(-beta * (x - tanh(x))^2)")
    assert kernel.op == "gaussian_kernel"
    assert expressions.count_betas(kernel) == 1
    assert expressions.count_betas(parse_expression("beta * x + beta")) == 2


def test_division_without_eps_means_the_same_function():
    assert parse_expression("x / sin(x)") == parse_expression("x / (sin(x) + eps)")


@pytest.mark.parametrize("text, position, fragment", [
    ("max(x)", 0, "max takes 2 arguments, got 1"),
    ("sigmoid(x", 9, "expected ')'"),
    ("sigmoid(x))", 10, "unexpected ')'"),
    ("foo(x)", 0, "unknown name 'foo'"),
    ("x + 2", 4, "the constant 2 is not in the search space"),
    ("x^4", 2, "only the exponents 2 and 3"),
    ("log(x)", 0, "log is in the search space only as"),
    ("x + eps", 4, "'eps' is valid only"),
    ("x +", 3, "ends where an operand is expected"),
    ("x $ x", 2, "unexpected character '$'"),
    ("sin x", 4, "expected '('"),
])
def test_bad_text_names_token_and_position(text, position, fragment):
    with pytest.raises(ExpressionError) as raised:
        parse_expression(text)
    assert raised.value.position == position
    assert fragment in str(raised.value)
    assert f"at position {position}" in str(raised.value)


def test_empty_text_is_an_error():
    for text in ("", "   "):
        with pytest.raises(ExpressionError, match="the text is empty"):
            parse_expression(text)


def test_expression_error_is_value_error():
    with pytest.raises(ValueError):
        parse_expression("max(x)")


def test_non_string_is_type_error():
    with pytest.raises(TypeError, match="expects a string"):
        parse_expression(3)


def _same_values(a, b):
    both_nan = np.isnan(a) & np.isnan(b)
    close = np.isclose(a, b, rtol=1e-12, atol=0.0, equal_nan=True) | (a == b)
    return bool(np.all(both_nan | close))


@pytest.mark.parametrize("num_units", [1, 2])
def test_random_expressions_round_trip(num_units):
    space = SearchSpace(num_units=num_units)
    rng = np.random.default_rng(num_units)
    points = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    for _ in range(200):
        tokens = [rng.integers(len(space.vocabulary(p))) for p in range(space.num_tokens)]
        tree = space.decode(tokens)
        text = expressions.to_text(tree)
        reparsed = parse_expression(text)
        assert expressions.to_text(reparsed) == text, tokens
        assert _same_values(numpy_ops.evaluate(tree, points, 0.7),
                            numpy_ops.evaluate(reparsed, points, 0.7)), text
