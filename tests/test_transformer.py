"""Tests for models/transformer.py: activation wiring, masks, loss, schedule and decoding."""

import pathlib

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from model_testing import CountingActivation
from models import train_translation  # noqa: F401  (registers the training configurables)
from models import transformer
from models import translation_data

VOCAB_SIZE = 50
TINY_LAYERS = transformer.VARIANTS["tiny"]["num_layers"]
GIN_DIR = pathlib.Path(__file__).resolve().parents[1] / "gin_configs" / "transformer"


def _ids(rows):
    return tf.constant(rows, tf.int32)


def _feed_forward_activations(model):
    layers = list(model.encoder_layers) + list(model.decoder_layers)
    return [layer.feed_forward.activation for layer in layers]


def test_counting_activation_reaches_every_feed_forward():
    CountingActivation.instances = 0
    original = CountingActivation()
    model = transformer.build_transformer(VOCAB_SIZE, variant="tiny", activation=original)
    # One activation per feed-forward layer (encoder and decoder), plus the original.
    assert CountingActivation.instances == 2 * TINY_LAYERS + 1
    activations = _feed_forward_activations(model)
    assert all(isinstance(a, CountingActivation) for a in activations)
    assert len({id(a) for a in activations}) == 2 * TINY_LAYERS


def test_unknown_variant_raises():
    with pytest.raises(ValueError, match="'huge'"):
        transformer.build_transformer(VOCAB_SIZE, variant="huge")


def test_unknown_activation_raises():
    with pytest.raises(ValueError, match="not_an_activation"):
        transformer.build_transformer(VOCAB_SIZE, variant="tiny", activation="not_an_activation")


def test_swish_betas_train_and_checkpoint(tmp_path):
    model = transformer.build_transformer(VOCAB_SIZE, variant="tiny", activation="swish")
    betas = [weight for activation in _feed_forward_activations(model)
             for weight in activation.trainable_weights]
    assert len(betas) == 2 * TINY_LAYERS
    trainable_ids = {id(weight) for weight in model.trainable_weights}
    assert all(id(beta) in trainable_ids for beta in betas)
    # Per-channel: one beta per feed-forward hidden unit.
    assert all(beta.shape[-1] == transformer.VARIANTS["tiny"]["ff_dim"] for beta in betas)

    before = [beta.numpy().copy() for beta in betas]
    optimizer = transformer.build_optimizer(model.d_model, warmup_steps=1,
                                            learning_rate_scale=10.0)
    train_step = transformer.make_train_step(model, optimizer, run_eagerly=True)
    source = _ids([[5, 6, 7, 3], [8, 9, 3, 0]])
    target_input = _ids([[2, 10, 11], [2, 12, 0]])
    labels = _ids([[10, 11, 3], [12, 3, 0]])
    train_step((source, target_input), labels)
    after = [beta.numpy().copy() for beta in betas]
    for old, new in zip(before, after):
        assert not np.allclose(old, new)

    checkpoint_path = transformer.make_checkpoint(model).save(str(tmp_path / "ckpt"))
    restored = transformer.build_transformer(VOCAB_SIZE, variant="tiny", activation="swish")
    transformer.make_checkpoint(restored).restore(checkpoint_path).assert_consumed()
    restored_betas = [weight.numpy() for activation in _feed_forward_activations(restored)
                      for weight in activation.trainable_weights]
    for saved, loaded in zip(after, restored_betas):
        np.testing.assert_array_equal(saved, loaded)


def test_checkpoint_saves_extra_objects(tmp_path):
    model = transformer.build_transformer(VOCAB_SIZE, variant="tiny")
    counters = {"tokens": tf.Variable(1234.0, dtype=tf.float64)}
    path = transformer.make_checkpoint(model, progress=counters).save(str(tmp_path / "ckpt"))
    restored_counters = {"tokens": tf.Variable(0.0, dtype=tf.float64)}
    transformer.make_checkpoint(model, progress=restored_counters).restore(
        path).assert_consumed()
    assert float(restored_counters["tokens"]) == 1234.0
    with pytest.raises(ValueError, match="model_weights"):
        transformer.make_checkpoint(model, model_weights=counters)

def test_source_padding_does_not_change_outputs():
    model = transformer.build_transformer(VOCAB_SIZE, variant="tiny")
    source = _ids([[5, 6, 7, 3]])
    padded_source = _ids([[5, 6, 7, 3, 0, 0, 0]])
    target_input = _ids([[2, 10, 11]])
    encoded = model.encode(source).numpy()
    encoded_padded = model.encode(padded_source).numpy()
    np.testing.assert_allclose(encoded_padded[:, :4], encoded, atol=1e-5)
    logits = model((source, target_input)).numpy()
    logits_padded = model((padded_source, target_input)).numpy()
    np.testing.assert_allclose(logits_padded, logits, atol=1e-5)


def test_target_padding_does_not_change_outputs():
    model = transformer.build_transformer(VOCAB_SIZE, variant="tiny")
    source = _ids([[5, 6, 7, 3]])
    logits = model((source, _ids([[2, 10, 11]]))).numpy()
    logits_padded = model((source, _ids([[2, 10, 11, 0, 0]]))).numpy()
    np.testing.assert_allclose(logits_padded[:, :3], logits, atol=1e-5)


def test_decoder_cannot_see_future_tokens():
    model = transformer.build_transformer(VOCAB_SIZE, variant="tiny")
    source = _ids([[5, 6, 7, 3]])
    logits = model((source, _ids([[2, 10, 11, 12, 13]]))).numpy()
    changed = model((source, _ids([[2, 10, 11, 40, 41]]))).numpy()
    # Positions 0-2 attend only to tokens 0-2, which are equal. Position 3 attends to the
    # changed token.
    np.testing.assert_allclose(changed[:, :3], logits[:, :3], atol=1e-5)
    assert not np.allclose(changed[:, 3], logits[:, 3], atol=1e-3)


def test_decode_step_matches_full_decoder():
    model = transformer.build_transformer(VOCAB_SIZE, variant="tiny")
    source = _ids([[5, 6, 7, 3], [8, 9, 3, 0]])
    target_input = _ids([[2, 10, 11, 12], [2, 13, 14, 15]])
    full_logits = model((source, target_input)).numpy()
    encoder_output = model.encode(source)
    caches = model.empty_caches(2)
    for step in range(4):
        step_logits, caches = model.decode_step(target_input[:, step:step + 1], step,
                                                encoder_output, source, caches)
        np.testing.assert_allclose(step_logits.numpy(), full_logits[:, step], atol=1e-4)


def test_positional_encoding_values():
    encoding = transformer.positional_encoding(3, 4, start=2).numpy()
    positions = np.arange(2, 5)[:, None]
    rates = 10000.0 ** (-np.array([0, 2]) / 4)
    expected = np.zeros([3, 4])
    expected[:, 0::2] = np.sin(positions * rates)
    expected[:, 1::2] = np.cos(positions * rates)
    np.testing.assert_allclose(encoding, expected, atol=1e-5)


def test_smoothed_cross_entropy_matches_numpy():
    logits = np.array([[[1.0, 2.0, 0.5], [0.1, 0.2, 3.0]]], np.float32)
    labels = np.array([[1, 0]], np.int32)  # The second position is padding.
    loss, nll, tokens = transformer.smoothed_cross_entropy(labels, logits, 0.1)
    log_probs = logits[0, 0] - np.log(np.exp(logits[0, 0]).sum())
    expected_nll = -log_probs[1]
    expected_loss = 0.9 * expected_nll + 0.1 * -log_probs.mean()
    assert float(tokens) == 1.0
    assert float(nll) == pytest.approx(expected_nll, rel=1e-5)
    assert float(loss) == pytest.approx(expected_loss, rel=1e-5)


def test_schedule_warms_up_then_decays():
    schedule = transformer.InverseSquareRootSchedule(d_model=256, warmup_steps=100)
    # Keras passes the number of completed updates; the schedule counts from 1.
    assert float(schedule(99)) == pytest.approx(256 ** -0.5 * 100 ** -0.5, rel=1e-5)
    assert float(schedule(9)) == pytest.approx(256 ** -0.5 * 10 * 100 ** -1.5, rel=1e-5)
    assert float(schedule(399)) == pytest.approx(256 ** -0.5 * 400 ** -0.5, rel=1e-5)


def test_optimizer_uses_transformer_adam_settings():
    optimizer = transformer.build_optimizer(512)
    assert optimizer.beta_2 == pytest.approx(0.98)
    assert optimizer.epsilon == pytest.approx(1e-9)


def test_length_penalty_values():
    assert transformer.length_penalty(1, 0.6) == pytest.approx(1.0)
    assert transformer.length_penalty(7, 0.6) == pytest.approx(2.0 ** 0.6)


@pytest.fixture(scope="module")
def real_pairs(multi30k_dir, tmp_path_factory):
    """A small SentencePiece vocabulary and the four shortest of the first 200 training pairs."""
    sources, targets = translation_data.read_parallel_split(multi30k_dir, "train")
    tokenizer = translation_data.load_or_train_tokenizer(
        tmp_path_factory.mktemp("run"), sources[:3000] + targets[:3000], vocab_size=600)
    pairs = sorted(zip(sources[:200], targets[:200]), key=lambda pair: len(pair[1]))[:4]
    source_ids = translation_data.encode(tokenizer, [source for source, _ in pairs])
    target_ids = translation_data.encode(tokenizer, [target for _, target in pairs])
    # The pairs differ in length, so the bucketing pipeline may put them in separate batches.
    batches = list(translation_data.make_dataset(source_ids, target_ids, max_tokens=400,
                                                 max_length=100, shuffle=False))
    source = translation_data.pad_batch([row + [translation_data.EOS_ID] for row in source_ids])
    references = translation_data.decode(tokenizer, [row + [translation_data.EOS_ID]
                                                     for row in target_ids])
    return tokenizer, batches, source, references


def test_train_step_and_decoding_on_real_pairs(real_pairs):
    tokenizer, batches, source, _ = real_pairs
    model = transformer.build_transformer(tokenizer.get_piece_size(), variant="tiny")
    optimizer = transformer.build_optimizer(model.d_model, warmup_steps=10)
    train_step = transformer.make_train_step(model, optimizer)
    before = model.embedding.embeddings.numpy().copy()
    for inputs, labels in batches:
        metrics = train_step(inputs, labels)
        assert np.isfinite(float(metrics["loss"]))
        assert float(metrics["target_tokens"]) == np.count_nonzero(labels.numpy())
    assert int(optimizer.iterations) == len(batches)
    assert not np.allclose(model.embedding.embeddings.numpy(), before)

    max_extra_length = 5
    for output in (transformer.greedy_decode(model, source, max_extra_length),
                   transformer.beam_search(model, source, 4, 0.6, max_extra_length)):
        assert output.dtype == np.int32
        assert output.shape[0] == source.shape[0]
        assert 1 <= output.shape[1] <= source.shape[1] + max_extra_length
        assert ((output >= 0) & (output < tokenizer.get_piece_size())).all()


@pytest.fixture(scope="module")
def memorized_model(real_pairs):
    """A tiny model trained until it reproduces the four real pairs."""
    tokenizer, batches, _, _ = real_pairs
    keras.utils.set_random_seed(0)
    model = transformer.build_transformer(tokenizer.get_piece_size(), variant="tiny")
    optimizer = transformer.build_optimizer(model.d_model, warmup_steps=100,
                                            learning_rate_scale=0.5)
    train_step = transformer.make_train_step(model, optimizer, label_smoothing=0.0)
    losses = []
    for step in range(800):
        inputs, labels = batches[step % len(batches)]
        losses.append(float(train_step(inputs, labels)["loss"]))
    return model, losses


@pytest.mark.slow
def test_training_fits_real_pairs(memorized_model):
    _, losses = memorized_model
    assert np.isfinite(losses).all()
    assert np.mean(losses[-4:]) < 0.05 * np.mean(losses[:4])


@pytest.mark.slow
def test_greedy_and_beam_reproduce_memorized_pairs(real_pairs, memorized_model):
    tokenizer, _, source, references = real_pairs
    model, _ = memorized_model
    greedy = translation_data.decode(tokenizer, transformer.greedy_decode(model, source))
    beam = translation_data.decode(tokenizer, transformer.beam_search(model, source,
                                                                      beam_size=4, alpha=0.6))
    assert greedy == references
    assert beam == references


@pytest.mark.slow
def test_beam_search_output_ends_with_eos(real_pairs, memorized_model):
    _, _, source, _ = real_pairs
    model, _ = memorized_model
    output = transformer.beam_search(model, source, beam_size=3, alpha=0.6)
    assert output.shape[0] == source.shape[0]
    for row in output:
        assert translation_data.EOS_ID in row
        after_eos = row[list(row).index(translation_data.EOS_ID) + 1:]
        assert (after_eos == translation_data.PAD_ID).all()


@pytest.mark.parametrize("name", ["multi30k_cpu.gin", "wmt14_base.gin"])
def test_gin_config_parses(name):
    gin.parse_config_file(str(GIN_DIR / name))
    assert gin.query_parameter("build_transformer.activation") == "relu"


def test_gin_activation_binding_reaches_model():
    gin.parse_config_files_and_bindings(
        [str(GIN_DIR / "multi30k_cpu.gin")],
        ['build_transformer.activation = "swish_1"', 'build_transformer.variant = "tiny"'])
    model = transformer.build_transformer(VOCAB_SIZE)
    activation = _feed_forward_activations(model)[0]
    x = np.array([[-2.0, 0.0, 1.5]], np.float32)
    np.testing.assert_allclose(activation(x).numpy(), x / (1 + np.exp(-x)), rtol=1e-5)
