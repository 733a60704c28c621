"""The RNN controller: PPO math by hand, masking, learning on a cheap reward, restore."""

import numpy as np
import pytest
import tensorflow as tf

from search.algorithms import RandomSearch
from search.controller import ControllerSearch, ppo_losses
from swish_tf import SearchSpace, numpy_ops, parse_expression


def test_ppo_losses_match_hand_computation():
    # Ratios r = 0.6/0.5 = 1.2 and 0.2/0.25 = 0.8, advantages +1 and -1, clip 0.1:
    # min(1.2 * 1, 1.1 * 1) = 1.1 and min(0.8 * -1, 0.9 * -1) = -0.9, so the loss is
    # -(1.1 - 0.9) / 2 = -0.1. Both ratios leave [0.9, 1.1]: clipfrac 1.
    # approx_kl = mean(log(0.5/0.6), log(0.25/0.2)) = mean(-0.1823216, 0.2231436).
    losses = ppo_losses(tf.math.log([0.6, 0.2]), tf.math.log([0.5, 0.25]),
                        tf.constant([1.0, -1.0]), clip_ratio=0.1)
    assert float(losses["policy_loss"]) == pytest.approx(-0.1, abs=1e-6)
    assert float(losses["clipfrac"]) == 1.0
    assert float(losses["approx_kl"]) == pytest.approx(0.0204110, abs=1e-6)


def test_ppo_losses_without_clipping():
    losses = ppo_losses(tf.math.log([0.5]), tf.math.log([0.5]), tf.constant([2.0]), 0.2)
    assert float(losses["policy_loss"]) == pytest.approx(-2.0)
    assert float(losses["clipfrac"]) == 0.0
    assert float(losses["approx_kl"]) == 0.0


def test_samples_respect_masks():
    space = SearchSpace(num_units=2, left_unary=("identity",), right_unary=("sin", "cos"))
    controller = ControllerSearch(space, max_samples=40, batch_size=40, seed=0)
    tokens, log_probs = controller.policy.sample(40, np.random.default_rng(0))
    for row in tokens:
        space.validate(row)
    # Unit 0 reads only x.
    assert (tokens[:, 0] == 0).all()
    assert (tokens[:, 1] == 0).all()
    assert (tokens[:, 2] == 0).all()  # The left unary offers only identity.
    assert (log_probs <= 0).all()
    recomputed, _ = controller.policy.log_probs_and_entropy(tf.constant(tokens, tf.int32))
    np.testing.assert_allclose(recomputed.numpy(), log_probs, rtol=1e-5, atol=1e-5)


def closeness_reward(target_text):
    """Reward in [0, 1]: how close a function is to the target on fixed points; no training."""
    points = np.linspace(-4.0, 4.0, 33)
    target = numpy_ops.evaluate(parse_expression(target_text), points)

    def reward(candidate):
        values = numpy_ops.evaluate(parse_expression(candidate.expression), points)
        if not np.all(np.isfinite(values)):
            return 0.0
        return float(np.exp(-np.mean((values - target) ** 2)))

    return reward


def run(algorithm, reward, count):
    rewards = []
    while len(rewards) < count:
        candidate = algorithm.propose()
        value = reward(candidate)
        rewards.append(value)
        algorithm.observe(candidate, value)
    return np.array(rewards)


def test_controller_learns_cheap_reward_beyond_random():
    reward = closeness_reward("max(x, sigmoid(x))")
    controller_rewards = run(ControllerSearch(SearchSpace(), max_samples=300, batch_size=10,
                                              seed=0), reward, 300)
    random_rewards = run(RandomSearch(SearchSpace(), max_samples=300, seed=0), reward, 300)
    assert controller_rewards[-100:].mean() > 2 * random_rewards.mean()
    assert controller_rewards[-100:].mean() > random_rewards.mean() + 0.2


def test_controller_waits_for_batch_then_updates():
    controller = ControllerSearch(SearchSpace(), max_samples=8, batch_size=4, seed=1)
    batch = [controller.propose() for _ in range(4)]
    assert controller.propose() is None
    for candidate in batch[:3]:
        controller.observe(candidate, 0.5)
    assert controller.num_updates == 0
    controller.observe(batch[3], 0.9)
    assert controller.num_updates == 1
    assert set(controller.last_metrics) == {"reward/mean", "reward/baseline", "losses/policy",
                                            "losses/approx_kl", "losses/clipfrac", "entropy"}
    assert controller.last_metrics["reward/mean"] == pytest.approx(0.6)
    assert controller.propose() is not None


def test_restored_controller_continues_identically():
    reward = closeness_reward("x * sigmoid(x)")

    def expressions(controller, count):
        texts = []
        for _ in range(count):
            candidate = controller.propose()
            texts.append(candidate.expression)
            controller.observe(candidate, reward(candidate))
        return texts

    uninterrupted = expressions(ControllerSearch(SearchSpace(), max_samples=30, batch_size=5,
                                                 seed=2), 30)
    first = ControllerSearch(SearchSpace(), max_samples=30, batch_size=5, seed=2)
    before = expressions(first, 12)
    second = ControllerSearch(SearchSpace(), max_samples=30, batch_size=5, seed=2)
    second.load_state_dict(first.state_dict())
    assert before + expressions(second, 18) == uninterrupted
