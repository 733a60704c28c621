"""Tests for models/translation_data.py and the scoring and result store of the entry point."""

import gzip
import json
import shutil
import sqlite3

import gin
import numpy as np
import pytest
import tensorflow as tf

from models import train_translation
from models import translation_data
from models import transformer


@pytest.fixture(scope="module")
def multi30k(multi30k_dir):
    return translation_data.load_multi30k(multi30k_dir)


@pytest.fixture(scope="module")
def tokenizer(multi30k, tmp_path_factory):
    sources, targets = multi30k["train"]
    run_dir = tmp_path_factory.mktemp("run")
    return translation_data.load_or_train_tokenizer(
        run_dir, sources[:2000] + targets[:2000], vocab_size=1000)


def _write_gzip(path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("".join(line + "\n" for line in lines))


def test_multi30k_split_sizes(multi30k):
    assert {split: len(pair[0]) for split, pair in multi30k.items()} == {
        "train": 29000, "val": 1014, "test_2016_flickr": 1000}
    for sources, targets in multi30k.values():
        assert len(sources) == len(targets)
        assert all(sources)
        assert all(targets)


def test_multi30k_first_pair_is_aligned(multi30k):
    sources, targets = multi30k["train"]
    assert sources[0] == "Two young, White males are outside near many bushes."
    assert targets[0] == "Zwei junge weiße Männer sind im Freien in der Nähe vieler Büsche."


def test_missing_file_names_path(multi30k_dir, tmp_path):
    shutil.copy(multi30k_dir / "val.en.gz", tmp_path / "val.en.gz")
    with pytest.raises(FileNotFoundError, match="val.de.gz"):
        translation_data.read_parallel_split(tmp_path, "val")


def test_corrupt_gzip_names_file(tmp_path):
    _write_gzip(tmp_path / "val.en.gz", ["A dog runs."])
    (tmp_path / "val.de.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="val.de.gz"):
        translation_data.read_parallel_split(tmp_path, "val")


def test_truncated_gzip_names_file(multi30k_dir, tmp_path):
    shutil.copy(multi30k_dir / "val.en.gz", tmp_path / "val.en.gz")
    data = (multi30k_dir / "val.de.gz").read_bytes()
    (tmp_path / "val.de.gz").write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match="val.de.gz"):
        translation_data.read_parallel_split(tmp_path, "val")


def test_misaligned_files_name_both(tmp_path):
    _write_gzip(tmp_path / "val.en.gz", ["A dog runs.", "A cat sleeps."])
    _write_gzip(tmp_path / "val.de.gz", ["Ein Hund rennt."])
    with pytest.raises(ValueError, match="val.en.gz has 2 lines but .*val.de.gz has 1"):
        translation_data.read_parallel_split(tmp_path, "val")


def test_unknown_dataset_raises(multi30k_dir):
    with pytest.raises(ValueError, match="'wmt15'"):
        translation_data.load_corpus(str(multi30k_dir), dataset="wmt15")


def test_unprepared_wmt14_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="tfds build wmt14_translate/de-en"):
        translation_data.load_wmt14(str(tmp_path))


def test_tokenizer_round_trips_real_text(multi30k, tokenizer):
    sources, targets = multi30k["test_2016_flickr"]
    sentences = sources[:200] + targets[:200]
    ids = translation_data.encode(tokenizer, sentences)
    eos_terminated = [row + [translation_data.EOS_ID, 17] for row in ids]
    assert translation_data.decode(tokenizer, eos_terminated) == sentences


def test_tokenizer_special_ids(tokenizer):
    assert tokenizer.pad_id() == translation_data.PAD_ID == 0
    assert tokenizer.unk_id() == translation_data.UNK_ID
    assert tokenizer.bos_id() == translation_data.BOS_ID
    assert tokenizer.eos_id() == translation_data.EOS_ID


def test_tokenizer_reused_from_run_dir(multi30k, tmp_path):
    sources, targets = multi30k["val"]
    text = sources + targets
    first = translation_data.load_or_train_tokenizer(tmp_path, text, vocab_size=600)
    model_path = tmp_path / f"{translation_data.TOKENIZER_FILENAME}.model"
    stamp = model_path.stat().st_mtime_ns
    # An empty text list would fail to train, so reuse must not retrain.
    second = translation_data.load_or_train_tokenizer(tmp_path, [], vocab_size=600)
    assert model_path.stat().st_mtime_ns == stamp
    assert second.encode(sources[0]) == first.encode(sources[0])
    with pytest.raises(ValueError, match="600 pieces but vocab_size is 700"):
        translation_data.load_or_train_tokenizer(tmp_path, [], vocab_size=700)


def test_dataset_batches_by_tokens(multi30k, tokenizer):
    sources, targets = multi30k["val"]
    source_ids = translation_data.encode(tokenizer, sources)
    target_ids = translation_data.encode(tokenizer, targets)
    max_tokens, max_length = 600, 60
    dataset = translation_data.make_dataset(source_ids, target_ids, max_tokens, max_length,
                                            shuffle=False)
    seen = []
    for (source, target_input), target_output in dataset:
        source, target_input, target_output = (source.numpy(), target_input.numpy(),
                                               target_output.numpy())
        assert source.shape[0] * max(source.shape[1], target_input.shape[1]) <= max_tokens
        assert (target_input[:, 0] == translation_data.BOS_ID).all()
        # The decoder input is the output shifted right by one position.
        np.testing.assert_array_equal(target_input[:, 1:], np.where(
            target_output[:, :-1] == translation_data.EOS_ID, translation_data.PAD_ID,
            target_output[:, :-1]))
        for row_source, row_output in zip(source, target_output):
            source_tokens = [int(i) for i in row_source if i != translation_data.PAD_ID]
            output_tokens = [int(i) for i in row_output if i != translation_data.PAD_ID]
            assert source_tokens[-1] == translation_data.EOS_ID
            assert output_tokens[-1] == translation_data.EOS_ID
            seen.append((tuple(source_tokens[:-1]), tuple(output_tokens[:-1])))
    expected = [(tuple(s), tuple(t)) for s, t in zip(source_ids, target_ids)
                if max(len(s), len(t)) + 1 <= max_length]
    assert sorted(seen) == sorted(expected)


def test_dataset_rejects_max_tokens_below_max_length():
    with pytest.raises(ValueError, match="max_tokens=10"):
        translation_data.make_dataset([[5]], [[6]], max_tokens=10, max_length=20, shuffle=False)


def test_bleu_of_references_is_100(multi30k):
    _, references = multi30k["test_2016_flickr"]
    assert train_translation.compute_bleu(references, references) == pytest.approx(100.0)


def test_bleu_of_shifted_references_is_low(multi30k):
    _, references = multi30k["test_2016_flickr"]
    assert train_translation.compute_bleu(references[1:] + references[:1], references) < 10.0


def test_record_run_appends_rows(tmp_path):
    database = tmp_path / "results.sqlite"
    row = {"model": "transformer_tiny", "activation": "swish", "seed": 3, "bleu": 12.5,
           "steps": 7, "tokens_per_s": 1000.0, "wall_time_s": 2.0, "gin_config_hash": "abc"}
    train_translation.record_run(database, row)
    train_translation.record_run(database, {**row, "seed": 4})
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT model, activation, seed, bleu, steps, gin_config_hash FROM runs "
            "ORDER BY id").fetchall()
    assert rows == [("transformer_tiny", "swish", 3, 12.5, 7, "abc"),
                    ("transformer_tiny", "swish", 4, 12.5, 7, "abc")]



def _tiny_model_and_optimizer():
    model = transformer.build_transformer(100, variant="tiny")
    optimizer = transformer.build_optimizer(model.d_model)
    optimizer.build(model.trainable_variables)
    return model, optimizer


def _progress(value):
    return {name: tf.Variable(value, dtype=tf.float64)
            for name in ("wall_seconds", "train_seconds", "tokens")}


@pytest.mark.parametrize("with_progress", [True, False])
def test_restore_checkpoint_with_and_without_totals(tmp_path, with_progress):
    model, optimizer = _tiny_model_and_optimizer()
    optimizer.iterations.assign(7)
    extra = {"progress": _progress(5.0)} if with_progress else {}
    path = transformer.make_checkpoint(model, optimizer, **extra).save(str(tmp_path / "ckpt"))

    restored_model, restored_optimizer = _tiny_model_and_optimizer()
    progress = _progress(0.0)
    train_translation.restore_checkpoint(path, restored_model, restored_optimizer, progress)
    assert int(restored_optimizer.iterations) == 7
    for saved, loaded in zip(model.weights, restored_model.weights):
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy())
    expected_total = 5.0 if with_progress else 0.0
    assert {name: float(value) for name, value in progress.items()} == {
        "wall_seconds": expected_total, "train_seconds": expected_total,
        "tokens": expected_total}

@pytest.mark.slow
def test_train_and_evaluate_resumes_and_records(multi30k_slice, tmp_path):
    data_dir = multi30k_slice
    run_dir = tmp_path / "run"
    gin.bind_parameter("build_transformer.variant", "tiny")
    gin.bind_parameter("build_transformer.activation", "swish")
    options = dict(max_tokens=256, max_length=64, vocab_size=600, eval_every=2,
                   checkpoint_every=2, log_every=1, decode_batch_size=8)

    first = train_translation.train_and_evaluate(str(data_dir), str(run_dir), train_steps=2,
                                                 **options)
    assert first["steps"] == 2
    assert first["activation"] == "swish"
    assert 0.0 <= first["bleu"] <= 100.0
    assert (run_dir / "operative_config.gin").is_file()
    assert (run_dir / "spm_joint.model").is_file()
    assert len((run_dir / "test_2016_flickr.hyp.de").read_text().splitlines()) == 8
    assert list((run_dir / "tensorboard").iterdir())

    second = train_translation.train_and_evaluate(str(data_dir), str(run_dir), train_steps=4,
                                                  **options)
    assert second["steps"] == 4
    first_details, second_details = json.loads(first["details"]), json.loads(second["details"])
    assert second_details["resumed_from_step"] == 2
    # Throughput and wall time count the training before the resume too.
    assert 0 < first_details["tokens"] < second_details["tokens"]
    assert 0 < first_details["train_seconds"] < second_details["train_seconds"]
    assert second["tokens_per_s"] == pytest.approx(
        second_details["tokens"] / second_details["train_seconds"])
    assert second["wall_time_s"] > second_details["train_seconds"]
    assert second["gin_config_hash"] == first["gin_config_hash"]
    with sqlite3.connect(run_dir / train_translation.RESULTS_DATABASE) as connection:
        steps = connection.execute("SELECT steps FROM runs ORDER BY id").fetchall()
    assert steps == [(2,), (4,)]
