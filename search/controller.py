"""The RNN controller of "Searching for Activation Functions", trained with PPO.

The controller is an LSTM that emits a candidate one component per time step (input 1,
input 2, unary 1, unary 2, binary, core unit by core unit), feeding each choice back as the next
step's input. Components of the same kind share one softmax head; choices that a position does
not offer (a unit that does not exist yet, a unary outside a restricted list) are masked out.

Training follows the paper: the reward is the child's validation accuracy, the baseline is an
exponential moving average of rewards, and the policy is updated with PPO (Schulman et al.,
2017, "Proximal Policy Optimization Algorithms"): clipped surrogate objective, several epochs
per batch, and an entropy bonus. The paper gives neither the controller's size nor the PPO
settings; the defaults here are common published choices (one LSTM layer of 64 units, clip
0.2, 4 epochs, Adam at 1e-3, entropy bonus 0.01, baseline decay 0.95).
"""

from typing import Any

import gin
import keras
import numpy as np
import tensorflow as tf

from search.algorithms import Candidate, SearchAlgorithm
from swish_tf.search_space import POSITION_KINDS, TOKENS_PER_UNIT, SearchSpace

_KINDS = ("input", "unary", "binary")
_MASKED_LOGIT = -1e9


def ppo_losses(log_probs: tf.Tensor, old_log_probs: tf.Tensor, advantages: tf.Tensor,
               clip_ratio: float) -> dict[str, tf.Tensor]:
    """Compute PPO's clipped surrogate loss and its diagnostics.

    loss = -mean(min(r * A, clip(r, 1 - c, 1 + c) * A)) with r = exp(log_probs - old_log_probs).

    Args:
        log_probs: log-probability of each sampled sequence under the current policy, (B,).
        old_log_probs: the same under the policy that sampled them, (B,).
        advantages: reward minus baseline, (B,).
        clip_ratio: c, the clip range of the probability ratio.

    Returns:
        `policy_loss`, `approx_kl` (mean of old minus new log-probability) and `clipfrac`
        (fraction of samples whose ratio left [1 - c, 1 + c]).
    """
    ratio = tf.exp(log_probs - old_log_probs)
    unclipped = ratio * advantages
    clipped = tf.clip_by_value(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio) * advantages
    return {
        "policy_loss": -tf.reduce_mean(tf.minimum(unclipped, clipped)),
        "approx_kl": tf.reduce_mean(old_log_probs - log_probs),
        "clipfrac": tf.reduce_mean(tf.cast(tf.abs(ratio - 1.0) > clip_ratio, tf.float32)),
    }


class ControllerPolicy(keras.Model):
    """LSTM policy over the token sequences of a search space."""

    def __init__(self, space: SearchSpace, units: int = 64, embedding_dim: int = 32,
                 seed: int = 0):
        super().__init__()
        self.space = space
        self.num_steps = space.num_tokens
        sizes = [len(space.vocabulary(p)) for p in range(self.num_steps)]
        # Each position has its own embedding rows; row 0 is the start token.
        self.offsets = np.concatenate([[1], 1 + np.cumsum(sizes)[:-1]]).astype(np.int32)
        self.kinds = [POSITION_KINDS[p % TOKENS_PER_UNIT] for p in range(self.num_steps)]
        head_sizes = {kind: space.max_vocabulary_size(kind) for kind in _KINDS}
        masks = []
        for position, size in enumerate(sizes):
            width = head_sizes[self.kinds[position]]
            masks.append(np.where(np.arange(width) < size, 0.0, _MASKED_LOGIT).astype(np.float32))
        self.masks = masks
        self.embedding = keras.layers.Embedding(
            1 + sum(sizes), embedding_dim,
            embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1, seed=seed))
        self.cell = keras.layers.LSTMCell(
            units, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 1),
            recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 2))
        self.heads = {kind: keras.layers.Dense(
            head_sizes[kind], kernel_initializer=keras.initializers.GlorotUniform(
                seed=seed + 3 + i), name=f"{kind}_head") for i, kind in enumerate(_KINDS)}
        self.units = units
        # Build every weight now, so that checkpoints can be restored before the first step.
        self.log_probs_and_entropy(tf.zeros((1, self.num_steps), tf.int32))

    def _initial_state(self, batch_size):
        zeros = tf.zeros((batch_size, self.units))
        return [zeros, zeros]

    def _step(self, previous_ids, state, position):
        output, state = self.cell(self.embedding(previous_ids), state)
        logits = self.heads[self.kinds[position]](output) + self.masks[position]
        return logits, state

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Sample sequences with NumPy's generator; return tokens (B, T) and log-probs (B,)."""
        previous = tf.zeros((batch_size,), tf.int32)
        state = self._initial_state(batch_size)
        tokens = np.zeros((batch_size, self.num_steps), np.int64)
        log_probs = np.zeros(batch_size, np.float64)
        for position in range(self.num_steps):
            logits, state = self._step(previous, state, position)
            log_p = tf.nn.log_softmax(logits).numpy().astype(np.float64)
            probabilities = np.exp(log_p)
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            for row in range(batch_size):
                choice = rng.choice(probabilities.shape[1], p=probabilities[row])
                tokens[row, position] = choice
                log_probs[row] += log_p[row, choice]
            previous = tf.constant(tokens[:, position] + self.offsets[position], tf.int32)
        return tokens, log_probs

    @tf.function
    def log_probs_and_entropy(self, tokens: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Return log-probability (B,) and mean per-step entropy (B,) of given sequences."""
        tokens = tf.cast(tokens, tf.int32)
        batch_size = tf.shape(tokens)[0]
        previous = tf.zeros((batch_size,), tf.int32)
        state = self._initial_state(batch_size)
        total_log_prob = tf.zeros((batch_size,))
        total_entropy = tf.zeros((batch_size,))
        for position in range(self.num_steps):
            logits, state = self._step(previous, state, position)
            log_p = tf.nn.log_softmax(logits)
            chosen = tokens[:, position]
            total_log_prob += tf.gather(log_p, chosen, axis=1, batch_dims=1)
            total_entropy += -tf.reduce_sum(tf.exp(log_p) * log_p, axis=1)
            previous = chosen + int(self.offsets[position])
        return total_log_prob, total_entropy / self.num_steps


@gin.configurable(denylist=["space"])
class ControllerSearch(SearchAlgorithm):
    """Search with the RNN controller, updated by PPO after every batch of rewards.

    Args:
        space: the search space.
        max_samples: number of proposals.
        batch_size: candidates sampled per policy update.
        units: LSTM units.
        learning_rate: Adam learning rate.
        ppo_epochs: optimization passes over each batch.
        clip_ratio: PPO clip range.
        entropy_weight: weight of the entropy bonus.
        baseline_decay: decay of the moving-average reward baseline.
        seed: seed of initialization and sampling.
    """

    def __init__(self, space: SearchSpace, max_samples: int = 100, batch_size: int = 10,
                 units: int = 64, learning_rate: float = 1e-3, ppo_epochs: int = 4,
                 clip_ratio: float = 0.2, entropy_weight: float = 0.01,
                 baseline_decay: float = 0.95, seed: int = 0):
        super().__init__(space)
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, received {batch_size}.")
        self.max_samples = max_samples
        self.batch_size = batch_size
        self.ppo_epochs = ppo_epochs
        self.clip_ratio = clip_ratio
        self.entropy_weight = entropy_weight
        self.baseline_decay = baseline_decay
        self.rng = np.random.default_rng(seed)
        self.policy = ControllerPolicy(space, units=units, seed=seed)
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(self.policy.trainable_variables)
        self.baseline: float | None = None
        self.batch_tokens = np.zeros((0, space.num_tokens), np.int64)
        self.batch_log_probs = np.zeros(0)
        self.batch_rewards: dict[int, float] = {}
        self.batch_start = 0  # Sample number of the batch's first candidate.
        self.num_updates = 0
        self.last_metrics: dict[str, float] = {}

    def propose(self) -> Candidate | None:
        if self.num_proposed >= self.max_samples:
            return None
        index = self.num_proposed - self.batch_start
        if index >= len(self.batch_tokens):
            if len(self.batch_tokens) and len(self.batch_rewards) < len(self.batch_tokens):
                return None  # Waiting for the rest of the batch's rewards.
            size = min(self.batch_size, self.max_samples - self.num_proposed)
            self.batch_tokens, self.batch_log_probs = self.policy.sample(size, self.rng)
            self.batch_rewards = {}
            self.batch_start = self.num_proposed
            index = 0
        return self._make_candidate(self.batch_tokens[index])

    def observe(self, candidate, reward):
        super().observe(candidate, reward)
        self.batch_rewards[candidate.sample - self.batch_start] = float(reward)
        if len(self.batch_rewards) == len(self.batch_tokens):
            self.update()

    def update(self) -> dict[str, float]:
        """Run PPO on the finished batch and move the baseline; return the metrics."""
        rewards = np.array([self.batch_rewards[i] for i in range(len(self.batch_tokens))])
        if self.baseline is None:
            self.baseline = float(rewards.mean())
        advantages = tf.constant(rewards - self.baseline, tf.float32)
        tokens = tf.constant(self.batch_tokens, tf.int32)
        old_log_probs = tf.constant(self.batch_log_probs, tf.float32)
        for _ in range(self.ppo_epochs):
            with tf.GradientTape() as tape:
                log_probs, entropy = self.policy.log_probs_and_entropy(tokens)
                losses = ppo_losses(log_probs, old_log_probs, advantages, self.clip_ratio)
                mean_entropy = tf.reduce_mean(entropy)
                loss = losses["policy_loss"] - self.entropy_weight * mean_entropy
            variables = self.policy.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        self.last_metrics = {
            "reward/mean": float(rewards.mean()),
            "reward/baseline": float(self.baseline),
            "losses/policy": float(losses["policy_loss"]),
            "losses/approx_kl": float(losses["approx_kl"]),
            "losses/clipfrac": float(losses["clipfrac"]),
            "entropy": float(mean_entropy),
        }
        self.baseline = (self.baseline_decay * self.baseline
                         + (1.0 - self.baseline_decay) * float(rewards.mean()))
        self.num_updates += 1
        # The batch is spent: clear it so that propose() samples the next one.
        self.batch_tokens = np.zeros((0, self.space.num_tokens), np.int64)
        self.batch_log_probs = np.zeros(0)
        self.batch_rewards = {}
        self.batch_start = self.num_proposed
        return self.last_metrics

    @property
    def finished(self) -> bool:
        return self.num_proposed >= self.max_samples and not len(self.batch_tokens)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "rng": self.rng.bit_generator.state,
            "weights": [w.numpy() for w in self.policy.weights],
            "optimizer": [v.numpy() for v in self.optimizer.variables],
            "baseline": self.baseline,
            "batch_tokens": self.batch_tokens.copy(),
            "batch_log_probs": self.batch_log_probs.copy(),
            "batch_rewards": dict(self.batch_rewards),
            "batch_start": self.batch_start,
            "num_updates": self.num_updates,
            "last_metrics": dict(self.last_metrics),
        }

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.rng.bit_generator.state = state["rng"]
        for variable, value in zip(self.policy.weights, state["weights"]):
            variable.assign(value)
        for variable, value in zip(self.optimizer.variables, state["optimizer"]):
            variable.assign(value)
        self.baseline = state["baseline"]
        self.batch_tokens = state["batch_tokens"]
        self.batch_log_probs = state["batch_log_probs"]
        self.batch_rewards = dict(state["batch_rewards"])
        self.batch_start = state["batch_start"]
        self.num_updates = state["num_updates"]
        self.last_metrics = dict(state["last_metrics"])
