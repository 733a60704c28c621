"""TensorFlow kernels against closed forms and the NumPy reference, eager and under XLA."""

import numpy as np
import pytest
import tensorflow as tf

from swish_tf import functions, numpy_ops, ops
from swish_tf.expressions import Node, X
from swish_tf.parser import parse_expression


def value_and_gradient(text, x, dtype=tf.float32, jit_compile=None, betas=None):
    """Evaluate an expression and d(sum)/dx; jit_compile=None runs eagerly."""
    tree = parse_expression(text)

    def compute(inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            outputs = ops.evaluate(tree, inputs, betas)
        return outputs, tape.gradient(outputs, inputs)

    inputs = tf.constant(x, dtype=dtype)
    if jit_compile is not None:
        compute = tf.function(compute, jit_compile=jit_compile)
    values, gradient = compute(inputs)
    return values.numpy(), gradient.numpy()


SWISH_POINTS = [-np.inf, -1e4, -100.0, -20.0, -5.0, -1.0, 0.0, 1.0, 5.0, 20.0, 1e4, np.inf]


@pytest.mark.parametrize("text", ["x * sigmoid(beta * x)", "x * sigmoid(x)"])
@pytest.mark.parametrize("jit_compile", [None, False, True])
def test_swish_is_finite_on_extreme_inputs(text, jit_compile):
    values, gradient = value_and_gradient(text, SWISH_POINTS, jit_compile=jit_compile)
    assert not np.isnan(values).any()
    assert not np.isnan(gradient).any()
    assert values[-1] == np.inf
    assert values[0] == 0.0
    assert gradient[0] == 0.0
    assert gradient[-1] == 1.0
    index = SWISH_POINTS.index(-1.0)
    assert values[index] == pytest.approx(-0.26894143, abs=1e-7)
    assert gradient[index] == pytest.approx(0.07232949, abs=1e-7)
    index = SWISH_POINTS.index(5.0)
    assert values[index] == pytest.approx(4.9665356, abs=1e-6)
    assert gradient[index] == pytest.approx(1.0265474, abs=1e-6)


def test_swish_per_channel_beta_values_and_gradient():
    beta = tf.Variable([1.0, 2.0])
    x = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    with tf.GradientTape() as tape:
        y = ops.evaluate(parse_expression("x * sigmoid(beta * x)"), x, [beta])
        total = tf.reduce_sum(y)
    np.testing.assert_allclose(y.numpy(), [[0.7310586, 1.9640276], [2.8577224, 3.9986586]],
                               rtol=1e-6)
    gradient = tape.gradient(total, beta)
    assert gradient.shape == (2,)
    np.testing.assert_allclose(gradient.numpy(), [0.6032019, 0.0760146], rtol=2e-6)


@pytest.mark.parametrize("jit_compile", [None, True])
def test_sinc_at_zero(jit_compile):
    values, gradient = value_and_gradient("sinc(x)", [0.0, 1.0], jit_compile=jit_compile)
    assert values[0] == 1.0
    assert gradient[0] == 0.0
    assert values[1] == pytest.approx(0.8414709848, abs=1e-7)


def test_max_of_equal_operands_has_slope_one():
    values, gradient = value_and_gradient("max(x, x)", [3.0])
    assert values[0] == 3.0
    assert gradient[0] == 1.0


def test_softplus_does_not_overflow():
    values, gradient = value_and_gradient("log(1 + exp(x))", [1000.0])
    assert values[0] == 1000.0
    assert gradient[0] == 1.0


@pytest.mark.parametrize("jit_compile", [None, True])
def test_sqrt_of_negative_is_zero_with_zero_gradient(jit_compile):
    values, gradient = value_and_gradient("sqrt(x)", [-4.0, 0.0, 4.0], jit_compile=jit_compile)
    np.testing.assert_array_equal(values, [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(gradient, [0.0, 0.0, 0.25])


@pytest.mark.parametrize("text, x, expected", [
    ("x^3", -2.0, -8.0),
    ("-x^2", 3.0, -9.0),
    ("x - (sin(x) - cos(x))", 1.0, 0.6988313211),
])
def test_closed_form_values(text, x, expected):
    values, _ = value_and_gradient(text, [x], dtype=tf.float64)
    assert values[0] == pytest.approx(expected, abs=1e-10)


def _single_function_trees():
    for name in functions.UNARY_NAMES:
        if name != "identity":
            yield name, (Node(name) if name == "beta" else Node(name, (X,)))
    for name in functions.BINARY_NAMES:
        yield name, Node(name, (X, Node("sin", (X,))))


@pytest.mark.parametrize("jit_compile", [None, True])
def test_kernels_match_numpy_reference(jit_compile):
    trees = dict(_single_function_trees())
    points = np.linspace(-3.0, 3.0, 25)
    beta = tf.constant([0.7], tf.float64)

    def compute(x):
        return [ops.evaluate(tree, x, [beta] * sum(node.uses_beta for node in tree.walk()))
                for tree in trees.values()]

    if jit_compile:
        compute = tf.function(compute, jit_compile=True)
    outputs = compute(tf.constant(points[:, None], tf.float64))
    for (name, tree), actual in zip(trees.items(), outputs):
        expected = numpy_ops.evaluate(tree, points, 0.7)
        np.testing.assert_allclose(actual.numpy()[:, 0], expected, rtol=1e-12, atol=1e-12,
                                   err_msg=name)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# The nine functions of the table of "Searching for Activation Functions", with closed forms
# written directly in NumPy (beta = 1).
PAPER_TABLE = {
    "max(x, 0)": lambda x: np.maximum(x, 0.0),
    "x * sigmoid(beta * x)": lambda x: x * _sigmoid(x),
    "max(x, sigmoid(x))": lambda x: np.maximum(x, _sigmoid(x)),
    "cos(x) - x": lambda x: np.cos(x) - x,
    "min(x, sin(x))": lambda x: np.minimum(x, np.sin(x)),
    "atan(x)^2 - x": lambda x: np.arctan(x) ** 2 - x,
    "max(x, tanh(x))": lambda x: np.maximum(x, np.tanh(x)),
    "sinc(x) + x": lambda x: np.where(x == 0, 1.0, np.sin(x) / np.where(x == 0, 1.0, x)) + x,
    "x * asinh(x)^2": lambda x: x * np.arcsinh(x) ** 2,
}


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
@pytest.mark.parametrize("jit_compile", [None, True])
def test_paper_table_functions_match_closed_form(dtype, jit_compile):
    points = np.array([-3.0, -1.0, -0.25, 0.0, 0.5, 2.0, 4.0])
    trees = [parse_expression(text) for text in PAPER_TABLE]

    def compute(x):
        return [ops.evaluate(tree, x) for tree in trees]

    if jit_compile:
        compute = tf.function(compute, jit_compile=True)
    outputs = compute(tf.constant(points, dtype))
    tolerance = 1e-6 if dtype == tf.float32 else 1e-12
    for text, values in zip(PAPER_TABLE, outputs):
        np.testing.assert_allclose(values.numpy(), PAPER_TABLE[text](points), rtol=tolerance,
                                   atol=tolerance, err_msg=text)
