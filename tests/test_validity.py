"""The cheap trainability check."""

import pytest

from swish_tf import check_expression, parse_expression


@pytest.mark.parametrize("text", ["max(x, 0)", "x * sigmoid(beta * x)", "cos(x) - x",
                                  "x / (x + eps)", "log(|x| + eps)", "sqrt(x)"])
def test_trainable_candidates_pass(text):
    result = check_expression(parse_expression(text))
    assert result.valid, result.reason
    assert result.reason == ""


@pytest.mark.parametrize("text, fragment", [
    ("exp(exp(exp(x^2)))", "non-finite value"),
    ("sqrt(-|x|)", "constant output"),
    ("x - x", "constant output"),
    ("beta", "constant output"),
    ("exp(-beta * (x - x)^2)", "constant output"),
    ("max(min(x, 0), 0)", "constant output"),
])
def test_untrainable_candidates_have_reason(text, fragment):
    result = check_expression(parse_expression(text))
    assert not result.valid
    assert fragment in result.reason
