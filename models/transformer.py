"""Transformer for translation with a configurable feed-forward activation.

"Searching for Activation Functions" (Ramachandran, Zoph and Le, 2017) evaluates Swish on
WMT'14 English-German by replacing ReLU in every feed-forward layer of the base Transformer of
"Attention Is All You Need" (Vaswani et al., 2017). This module builds that model from Keras
parts, with the activation taken from `swish_tf.get_activation`:

* an encoder and a decoder of `num_layers` layers each, model width `d_model`, feed-forward
  width `ff_dim`, `num_heads` attention heads, dropout on every sublayer output, the attention
  weights and the feed-forward hidden layer;
* one embedding matrix shared by source, target and the output softmax (a joint vocabulary),
  scaled by sqrt(d_model), plus sinusoidal position encodings;
* layer normalization on the input of each sublayer (pre-norm) and on each stack's output.
  Vaswani et al. normalize after the residual addition (post-norm); pre-norm trains stably at
  the warm-up schedule's peak learning rate without further tuning.

It also provides the training loss (cross-entropy with label smoothing), the learning-rate
schedule and optimizer, and greedy and beam-search decoding.
"""

import math
from typing import Any

import gin
import keras
import numpy as np
import tensorflow as tf

import swish_tf
from models import translation_data

PAD_ID = translation_data.PAD_ID
BOS_ID = translation_data.BOS_ID
EOS_ID = translation_data.EOS_ID

# Named sizes. "base" is the base model of Vaswani et al. (65M parameters with a 37k
# vocabulary), the one "Searching for Activation Functions" trains on WMT'14. "small" trains
# on Multi30k on a CPU. "tiny" exists for tests only.
VARIANTS: dict[str, dict[str, Any]] = {
    "base": dict(num_layers=6, d_model=512, ff_dim=2048, num_heads=8, dropout=0.1),
    "small": dict(num_layers=3, d_model=256, ff_dim=1024, num_heads=4, dropout=0.1),
    "tiny": dict(num_layers=2, d_model=32, ff_dim=64, num_heads=2, dropout=0.0),
}


def positional_encoding(length: int | tf.Tensor, d_model: int,
                        start: int | tf.Tensor = 0) -> tf.Tensor:
    """Return sinusoidal position encodings of shape [length, d_model] for positions from `start`.

    PE[pos, 2i] = sin(pos / 10000^(2i / d_model)) and PE[pos, 2i + 1] = cos(same angle), as in
    "Attention Is All You Need", section 3.5.
    """
    positions = tf.cast(tf.range(start, start + length), tf.float32)[:, tf.newaxis]
    rates = tf.pow(10000.0, -tf.range(0, d_model, 2, dtype=tf.float32) / d_model)
    angles = positions * rates[tf.newaxis, :]  # [length, d_model / 2]
    encoding = tf.stack([tf.sin(angles), tf.cos(angles)], axis=-1)  # [length, d_model / 2, 2]
    return tf.reshape(encoding, [-1, d_model])


class SharedEmbedding(keras.layers.Layer):
    """One [vocab_size, d_model] matrix used for source and target lookup and output logits."""

    def __init__(self, vocab_size: int, d_model: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.d_model = d_model

    def build(self, input_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.vocab_size, self.d_model),
            initializer=keras.initializers.RandomNormal(stddev=self.d_model ** -0.5))

    def call(self, ids):
        """Look up ids [batch, length] and scale by sqrt(d_model): returns [batch, length, d]."""
        return tf.gather(self.embeddings, ids) * math.sqrt(self.d_model)

    def logits(self, x):
        """Project decoder states [batch, length, d] to logits [batch, length, vocab_size]."""
        return tf.einsum("bld,vd->blv", x, self.embeddings)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "d_model": self.d_model}


class FeedForward(keras.layers.Layer):
    """Position-wise feed-forward block: Dense(ff_dim), activation, dropout, Dense(d_model).

    The activation is a layer attribute, so its weights (Swish's per-channel beta, PReLU's
    alpha) are tracked, trained and checkpointed with the rest of the model.
    """

    def __init__(self, d_model: int, ff_dim: int, activation: Any, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(ff_dim, name="hidden")
        self.activation = swish_tf.get_activation(activation)
        self.dropout = keras.layers.Dropout(dropout)
        self.output_projection = keras.layers.Dense(d_model, name="output")

    def call(self, x, training=None):
        x = self.activation(self.hidden(x))
        return self.output_projection(self.dropout(x, training=training))


class EncoderLayer(keras.layers.Layer):
    """Pre-norm self-attention and feed-forward sublayers with residual connections."""

    def __init__(self, d_model: int, ff_dim: int, num_heads: int, dropout: float,
                 activation: Any, **kwargs):
        super().__init__(**kwargs)
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-6)
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=num_heads, key_dim=d_model // num_heads, dropout=dropout)
        self.feed_forward_norm = keras.layers.LayerNormalization(epsilon=1e-6)
        self.feed_forward = FeedForward(d_model, ff_dim, activation, dropout)
        self.dropout = keras.layers.Dropout(dropout)

    def call(self, x, attention_mask, training=None):
        """x: [batch, source_length, d]; attention_mask: [batch, source_length, source_length]."""
        y = self.attention_norm(x)
        y = self.attention(y, y, attention_mask=attention_mask, training=training)
        x = x + self.dropout(y, training=training)
        y = self.feed_forward(self.feed_forward_norm(x), training=training)
        return x + self.dropout(y, training=training)


class DecoderLayer(keras.layers.Layer):
    """Pre-norm masked self-attention, encoder-decoder attention and feed-forward sublayers."""

    def __init__(self, d_model: int, ff_dim: int, num_heads: int, dropout: float,
                 activation: Any, **kwargs):
        super().__init__(**kwargs)
        key_dim = d_model // num_heads
        self.self_attention_norm = keras.layers.LayerNormalization(epsilon=1e-6)
        self.self_attention = keras.layers.MultiHeadAttention(
            num_heads=num_heads, key_dim=key_dim, dropout=dropout)
        self.cross_attention_norm = keras.layers.LayerNormalization(epsilon=1e-6)
        self.cross_attention = keras.layers.MultiHeadAttention(
            num_heads=num_heads, key_dim=key_dim, dropout=dropout)
        self.feed_forward_norm = keras.layers.LayerNormalization(epsilon=1e-6)
        self.feed_forward = FeedForward(d_model, ff_dim, activation, dropout)
        self.dropout = keras.layers.Dropout(dropout)

    def call(self, x, encoder_output, self_attention_mask, cross_attention_mask, training=None,
             cache=None):
        """Run the layer on target states x: [batch, target_length, d].

        Args:
            encoder_output: [batch, source_length, d].
            self_attention_mask: [batch, target_length, keys], True where a query may attend;
                None when decoding with `cache`.
            cross_attention_mask: [batch, target_length, source_length].
            cache: for step-by-step decoding, the normalized self-attention inputs of all
                earlier positions, [batch, steps_so_far, d]; the new positions attend to those
                and to themselves.

        Returns:
            The output states, and the updated cache (the normalized self-attention inputs
            including the new positions).
        """
        y = self.self_attention_norm(x)
        keys = y if cache is None else tf.concat([cache, y], axis=1)
        attended = self.self_attention(y, keys, attention_mask=self_attention_mask,
                                       training=training)
        x = x + self.dropout(attended, training=training)
        y = self.cross_attention(self.cross_attention_norm(x), encoder_output,
                                 attention_mask=cross_attention_mask, training=training)
        x = x + self.dropout(y, training=training)
        y = self.feed_forward(self.feed_forward_norm(x), training=training)
        return x + self.dropout(y, training=training), keys


class Transformer(keras.Model):
    """Encoder-decoder Transformer over a joint source/target vocabulary.

    `call((source, target_input))` takes int32 ids [batch, source_length] and
    [batch, target_length], PAD_ID-padded, and returns logits [batch, target_length, vocab].
    """

    def __init__(self, vocab_size: int, activation: Any, num_layers: int, d_model: int,
                 ff_dim: int, num_heads: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} must be divisible by num_heads={num_heads}.")
        if d_model % 2:
            raise ValueError(f"d_model={d_model} must be even for sinusoidal positions.")
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.num_layers = num_layers
        self.embedding = SharedEmbedding(vocab_size, d_model, name="shared_embedding")
        self.input_dropout = keras.layers.Dropout(dropout)
        self.encoder_layers = [
            EncoderLayer(d_model, ff_dim, num_heads, dropout, activation, name=f"encoder_{i}")
            for i in range(num_layers)]
        self.encoder_norm = keras.layers.LayerNormalization(epsilon=1e-6)
        self.decoder_layers = [
            DecoderLayer(d_model, ff_dim, num_heads, dropout, activation, name=f"decoder_{i}")
            for i in range(num_layers)]
        self.decoder_norm = keras.layers.LayerNormalization(epsilon=1e-6)

    def _embed(self, ids, start=0, training=None):
        x = self.embedding(ids)
        x = x + positional_encoding(tf.shape(ids)[1], self.d_model, start)[tf.newaxis]
        return self.input_dropout(x, training=training)

    def encode(self, source, training=None):
        """Encode source ids [batch, source_length] into states [batch, source_length, d]."""
        source_mask = tf.not_equal(source, PAD_ID)  # [batch, source_length]
        # Every query may attend to every non-padding source key.
        attention_mask = tf.logical_and(source_mask[:, tf.newaxis, :],
                                        tf.ones_like(source_mask)[:, :, tf.newaxis])
        x = self._embed(source, training=training)
        for layer in self.encoder_layers:
            x = layer(x, attention_mask, training=training)
        return self.encoder_norm(x)

    def decode(self, target_input, encoder_output, source, training=None):
        """Return logits [batch, target_length, vocab] for decoder input ids (BOS + target)."""
        target_length = tf.shape(target_input)[1]
        # Query i may attend to key j when j <= i and key j is not padding.
        causal = tf.linalg.band_part(tf.ones([target_length, target_length], tf.bool), -1, 0)
        target_keys = tf.not_equal(target_input, PAD_ID)[:, tf.newaxis, :]
        self_attention_mask = tf.logical_and(causal[tf.newaxis], target_keys)
        cross_attention_mask = self._cross_attention_mask(source, target_length)
        x = self._embed(target_input, training=training)
        for layer in self.decoder_layers:
            x, _ = layer(x, encoder_output, self_attention_mask, cross_attention_mask,
                         training=training)
        return self.embedding.logits(self.decoder_norm(x))

    def decode_step(self, target_ids, step, encoder_output, source, caches):
        """Return logits [batch, vocab] for the next token after feeding one token per row.

        Args:
            target_ids: [batch, 1], the token at position `step` (BOS at step 0).
            step: the position of `target_ids` in the target sequence.
            encoder_output, source: the encoder states and source ids of each row.
            caches: per decoder layer, [batch, step, d] (empty at step 0).

        Returns:
            The logits and the updated per-layer caches, each [batch, step + 1, d].
        """
        x = self._embed(target_ids, start=step)
        cross_attention_mask = self._cross_attention_mask(source, 1)
        new_caches = []
        for layer, cache in zip(self.decoder_layers, caches):
            x, cache = layer(x, encoder_output, None, cross_attention_mask, cache=cache)
            new_caches.append(cache)
        return self.embedding.logits(self.decoder_norm(x))[:, 0, :], new_caches

    def empty_caches(self, batch_size):
        return [tf.zeros([batch_size, 0, self.d_model]) for _ in self.decoder_layers]

    @staticmethod
    def _cross_attention_mask(source, target_length):
        source_keys = tf.not_equal(source, PAD_ID)[:, tf.newaxis, :]
        return tf.tile(source_keys, [1, target_length, 1])

    def call(self, inputs, training=None):
        source, target_input = inputs
        encoder_output = self.encode(source, training=training)
        return self.decode(target_input, encoder_output, source, training=training)


@gin.configurable(denylist=["vocab_size"])
def build_transformer(vocab_size: int, variant: str = "base", activation: Any = "relu",
                      dropout: float | None = None) -> Transformer:
    """Build and initialize a Transformer of a named size.

    Args:
        vocab_size: size of the joint source/target vocabulary.
        variant: a key of `VARIANTS` ("base", "small", "tiny").
        activation: the feed-forward activation, anything `swish_tf.get_activation` accepts;
            every feed-forward layer gets its own instance.
        dropout: overrides the variant's dropout rate when given.

    Raises:
        ValueError: if `variant` is unknown.
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"Unknown Transformer variant {variant!r}; expected one of {sorted(VARIANTS)}.")
    sizes = dict(VARIANTS[variant])
    if dropout is not None:
        sizes["dropout"] = dropout
    model = Transformer(vocab_size, activation, name=f"transformer_{variant}", **sizes)
    # Create all weights now, so that optimizers and checkpoints see them before training.
    dummy = tf.constant([[BOS_ID, EOS_ID]], tf.int32)
    model((dummy, dummy), training=False)
    return model


class InverseSquareRootSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = scale * d_model^-0.5 * min(step^-0.5, step * warmup_steps^-1.5).

    The schedule of "Attention Is All You Need", section 5.3: linear warm-up for
    `warmup_steps`, then decay with the inverse square root of the step (counted from 1).
    """

    def __init__(self, d_model: int, warmup_steps: int, scale: float = 1.0):
        self.d_model = d_model
        self.warmup_steps = warmup_steps
        self.scale = scale

    def __call__(self, step):
        step = tf.cast(step, tf.float32) + 1.0
        return (self.scale * self.d_model ** -0.5
                * tf.minimum(tf.math.rsqrt(step), step * self.warmup_steps ** -1.5))

    def get_config(self):
        return {"d_model": self.d_model, "warmup_steps": self.warmup_steps, "scale": self.scale}


@gin.configurable(denylist=["d_model"])
def build_optimizer(d_model: int, warmup_steps: int = 4000,
                    learning_rate_scale: float = 1.0) -> keras.optimizers.Adam:
    """Adam with beta1 0.9, beta2 0.98, epsilon 1e-9 and the inverse-square-root schedule."""
    schedule = InverseSquareRootSchedule(d_model, warmup_steps, learning_rate_scale)
    return keras.optimizers.Adam(learning_rate=schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9)


def smoothed_cross_entropy(labels, logits, label_smoothing: float):
    """Sum of label-smoothed cross-entropy over non-padding positions.

    The target distribution puts 1 - label_smoothing on the reference token and spreads
    label_smoothing uniformly over the whole vocabulary.

    Args:
        labels: int ids [batch, length]; PAD_ID positions are ignored.
        logits: [batch, length, vocab].

    Returns:
        (summed smoothed loss, summed negative log-likelihood, number of non-padding tokens).
    """
    log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32), axis=-1)
    nll = -tf.gather(log_probs, labels, batch_dims=2)  # [batch, length]
    uniform = -tf.reduce_mean(log_probs, axis=-1)
    loss = (1.0 - label_smoothing) * nll + label_smoothing * uniform
    weights = tf.cast(tf.not_equal(labels, PAD_ID), tf.float32)
    return (tf.reduce_sum(loss * weights), tf.reduce_sum(nll * weights),
            tf.reduce_sum(weights))


def make_train_step(model: Transformer, optimizer: keras.optimizers.Optimizer,
                    label_smoothing: float = 0.1, run_eagerly: bool = False):
    """Return a function that takes one batch, applies one update and returns metrics.

    The loss is averaged over the batch's non-padding target tokens. The returned dict holds
    `loss` (smoothed), `nll` (per token) and `target_tokens`. Unless `run_eagerly`, the
    function is a tf.function traced once for all batch shapes.
    """
    def train_step(inputs, labels):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)
            loss_sum, nll_sum, tokens = smoothed_cross_entropy(labels, logits, label_smoothing)
            loss = loss_sum / tf.maximum(tokens, 1.0)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return {"loss": loss, "nll": nll_sum / tf.maximum(tokens, 1.0), "target_tokens": tokens}

    if run_eagerly:
        return train_step
    signature = ((tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32)),
                 tf.TensorSpec([None, None], tf.int32))
    return tf.function(train_step, input_signature=signature)


def make_checkpoint(model: Transformer,
                    optimizer: keras.optimizers.Optimizer | None = None,
                    **extra: Any) -> tf.train.Checkpoint:
    """Return a tf.train.Checkpoint of the model's weights and, if given, the optimizer state.

    Keyword arguments add other trackable objects (variables, or dicts of them) under their
    names, such as a training loop's counters.

    NOTE: tf.train.Checkpoint(model=model) does not reach layers that a Keras 3 model stores in
    Python lists (the encoder and decoder stacks), so it would silently save only a few
    weights. The variables are listed explicitly instead, in creation order, which is the
    same for every model built with the same sizes and activation.
    """
    items = {"model_weights": list(model.weights)}
    if optimizer is not None:
        items["optimizer_variables"] = list(optimizer.variables)
    clashes = sorted(set(items) & set(extra))
    if clashes:
        raise ValueError(f"Invalid checkpoint names {clashes}: they are reserved for the model "
                         "and optimizer. Pass the extra objects under other names.")
    return tf.train.Checkpoint(**items, **extra)


def greedy_decode(model: Transformer, source, max_extra_length: int = 50) -> np.ndarray:
    """Decode source ids [batch, source_length] by taking the most likely token at each step.

    Returns:
        int32 ids [batch, length] without BOS; each row ends at its first EOS or after
        source_length + max_extra_length tokens, and is PAD_ID-padded after EOS.
    """
    source = tf.convert_to_tensor(source, tf.int32)
    batch_size = int(source.shape[0])
    max_length = int(source.shape[1]) + max_extra_length
    encoder_output = model.encode(source, training=False)
    caches = model.empty_caches(batch_size)
    tokens = np.full([batch_size, 1], BOS_ID, np.int32)
    finished = np.zeros([batch_size], bool)
    outputs = []
    for step in range(max_length):
        logits, caches = model.decode_step(tokens, step, encoder_output, source, caches)
        tokens = np.argmax(logits.numpy(), axis=-1).astype(np.int32)
        tokens = np.where(finished, PAD_ID, tokens)
        outputs.append(tokens)
        finished |= tokens == EOS_ID
        tokens = tokens[:, np.newaxis]
        if finished.all():
            break
    return np.stack(outputs, axis=1)


def length_penalty(length, alpha: float):
    """GNMT length penalty ((5 + length) / 6)^alpha (Wu et al., 2016, "Google's Neural Machine
    Translation System")."""
    return ((5.0 + length) / 6.0) ** alpha


def beam_search(model: Transformer, source, beam_size: int = 4, alpha: float = 0.6,
                max_extra_length: int = 50) -> np.ndarray:
    """Decode source ids [batch, source_length] with beam search.

    A hypothesis is scored by log P(y | x) / length_penalty(|y|, alpha), with |y| counting EOS,
    as in "Attention Is All You Need" (beam 4, alpha 0.6). A row stops when it has
    `beam_size` finished hypotheses and no live one can still beat the worst of them, or after
    source_length + max_extra_length tokens.

    Returns:
        int32 ids [batch, length] of each row's best hypothesis without BOS, ending with EOS
        unless the length limit cut it, PAD_ID-padded.
    """
    source = tf.convert_to_tensor(source, tf.int32)
    batch_size = int(source.shape[0])
    max_length = int(source.shape[1]) + max_extra_length
    vocab_size = model.vocab_size

    # Every row is repeated beam_size times: flat index = row * beam_size + beam.
    flat_source = tf.repeat(source, beam_size, axis=0)
    encoder_output = model.encode(flat_source, training=False)
    caches = model.empty_caches(batch_size * beam_size)

    alive = np.full([batch_size, beam_size, 1], BOS_ID, np.int32)  # Includes BOS.
    # Only beam 0 is live at step 0, so that the first expansion is not repeated.
    alive_log_probs = np.tile(np.array([0.0] + [-np.inf] * (beam_size - 1)), [batch_size, 1])
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch_size)]
    done = np.zeros([batch_size], bool)

    for step in range(max_length):
        tokens = alive[:, :, -1].reshape([-1, 1])
        logits, caches = model.decode_step(tokens, step, encoder_output, flat_source, caches)
        log_probs = tf.nn.log_softmax(logits, axis=-1).numpy().reshape(
            [batch_size, beam_size, vocab_size])
        scores = (alive_log_probs[:, :, np.newaxis] + log_probs).reshape([batch_size, -1])
        # 2 * beam_size candidates leave beam_size live ones even if beam_size of them end.
        candidates = np.argsort(-scores, axis=1)[:, :2 * beam_size]
        new_alive = np.zeros([batch_size, beam_size, step + 2], np.int32)
        new_log_probs = np.full([batch_size, beam_size], -np.inf)
        parents = np.zeros([batch_size, beam_size], np.int64)
        length = step + 1  # Generated tokens, including this step's.
        for row in range(batch_size):
            if done[row]:
                continue
            kept = 0
            for candidate in candidates[row]:
                beam, token = divmod(int(candidate), vocab_size)
                log_prob = scores[row, candidate]
                if not np.isfinite(log_prob):
                    continue
                sequence = alive[row, beam]
                if token == EOS_ID:
                    normalized = log_prob / length_penalty(length, alpha)
                    finished[row].append((normalized, list(sequence[1:]) + [EOS_ID]))
                    continue
                if kept < beam_size:
                    new_alive[row, kept, :-1] = sequence
                    new_alive[row, kept, -1] = token
                    new_log_probs[row, kept] = log_prob
                    parents[row, kept] = beam
                    kept += 1
            finished[row].sort(key=lambda item: -item[0])
            del finished[row][beam_size:]
            # Log-probabilities only fall as a hypothesis grows, so the best live one can at
            # most reach its current log-probability divided by the largest length penalty.
            best_possible = new_log_probs[row, 0] / length_penalty(max_length, alpha)
            if len(finished[row]) == beam_size and finished[row][-1][0] >= best_possible:
                done[row] = True
        if done.all():
            break
        alive, alive_log_probs = new_alive, new_log_probs
        flat_parents = (np.arange(batch_size)[:, np.newaxis] * beam_size + parents).reshape(-1)
        caches = [tf.gather(cache, flat_parents) for cache in caches]

    results = []
    for row in range(batch_size):
        if finished[row]:
            results.append(finished[row][0][1])
        else:  # The length limit cut every hypothesis: take the best live one.
            results.append(list(alive[row, 0, 1:]))
    width = max(len(result) for result in results)
    output = np.full([batch_size, width], PAD_ID, np.int32)
    for row, result in enumerate(results):
        output[row, :len(result)] = result
    return output
