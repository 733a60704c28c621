"""Parallel text for the translation experiment: reading, subword vocabulary, tf.data batches.

Two sources are supported:

* Multi30k task 1 English-German (Elliott et al., 2016) from a directory of raw gzip text, one
  sentence per line, line i of `<split>.en.gz` aligned with line i of `<split>.de.gz`, for the
  splits `train`, `val` and `test_2016_flickr`.
* WMT'14 English-German through tensorflow-datasets (`wmt14_translate/de-en`), the corpus that
  "Searching for Activation Functions" trains on. It must already be prepared in the tfds data
  directory, because this module never downloads.

Both sources share one joint SentencePiece vocabulary, learned from the training text of both
languages and stored in the run directory, so a resumed run reuses the same subword ids.
"""

import gzip
import os
import pathlib
import zlib
from typing import Iterable, Sequence

from absl import logging
import gin
import numpy as np
import sentencepiece as spm
import tensorflow as tf

# Ids fixed in the SentencePiece model. The model code relies on PAD_ID being 0.
PAD_ID = 0
UNK_ID = 1
BOS_ID = 2
EOS_ID = 3

MULTI30K_SPLITS = ("train", "val", "test_2016_flickr")
WMT14_SPLITS = ("train", "validation", "test")  # validation is newstest2013, test newstest2014.
TOKENIZER_FILENAME = "spm_joint"  # SentencePiece writes <name>.model and <name>.vocab.


def read_gzip_lines(path: pathlib.Path) -> list[str]:
    """Read a gzip-compressed UTF-8 text file into a list of lines without line endings.

    Raises:
        FileNotFoundError: if `path` does not exist.
        ValueError: if the file is not valid gzip or not valid UTF-8.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Parallel text file not found: {path}. Expected gzip text with one sentence per "
            "line; check --data_dir.")
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
            text = f.read()
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(
            f"Failed to decompress {path}: {error}. The file is not valid gzip or is truncated; "
            "replace it with an intact copy.") from error
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not valid UTF-8 text: {error}") from error
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # The newline that ends the last line does not start another sentence.
    return [line.rstrip("\r") for line in lines]


def read_parallel_split(data_dir: str | os.PathLike, split: str, source_language: str = "en",
                        target_language: str = "de") -> tuple[list[str], list[str]]:
    """Read one split of a line-aligned corpus stored as `<split>.<language>.gz` files.

    Returns:
        The source sentences and the target sentences, as two lists of equal length.

    Raises:
        FileNotFoundError: if either file is missing.
        ValueError: if a file is corrupt or empty, or the two files differ in line count.
    """
    data_dir = pathlib.Path(data_dir)
    source_path = data_dir / f"{split}.{source_language}.gz"
    target_path = data_dir / f"{split}.{target_language}.gz"
    sources = read_gzip_lines(source_path)
    targets = read_gzip_lines(target_path)
    if not sources:
        raise ValueError(f"{source_path} contains no sentences.")
    if len(sources) != len(targets):
        raise ValueError(
            f"Misaligned parallel text: {source_path} has {len(sources)} lines but "
            f"{target_path} has {len(targets)}. Line i of each file must translate the other.")
    return sources, targets


def load_multi30k(data_dir: str | os.PathLike) -> dict[str, tuple[list[str], list[str]]]:
    """Read every Multi30k English-to-German split from `data_dir`.

    Returns:
        A dict from split name (`MULTI30K_SPLITS`) to (English sentences, German sentences).
    """
    return {split: read_parallel_split(data_dir, split) for split in MULTI30K_SPLITS}


def load_wmt14(data_dir: str | os.PathLike | None = None,
               max_train_pairs: int | None = None) -> dict[str, tuple[list[str], list[str]]]:
    """Read WMT'14 English-to-German from a prepared tensorflow-datasets directory.

    Args:
        data_dir: the tfds data directory; None uses tfds's default (`~/tensorflow_datasets`).
        max_train_pairs: read at most this many training pairs; None reads all 4.5M.

    Returns:
        A dict from split name (`WMT14_SPLITS`) to (English sentences, German sentences).

    Raises:
        FileNotFoundError: if the dataset has not been prepared in `data_dir`.
    """
    import tensorflow_datasets as tfds  # Imported here: only this source needs it.

    builder = tfds.builder("wmt14_translate/de-en", data_dir=data_dir)
    if not pathlib.Path(builder.data_dir, "dataset_info.json").is_file():
        raise FileNotFoundError(
            f"wmt14_translate/de-en is not prepared in {builder.data_dir}. Run "
            "`tfds build wmt14_translate/de-en` on a machine with internet access and point "
            "--data_dir at that tfds data directory.")
    splits = {}
    for split in WMT14_SPLITS:
        dataset = builder.as_dataset(split=split)
        if split == "train" and max_train_pairs is not None:
            dataset = dataset.take(max_train_pairs)
        sources, targets = [], []
        for example in dataset.as_numpy_iterator():
            sources.append(example["en"].decode("utf-8"))
            targets.append(example["de"].decode("utf-8"))
        splits[split] = (sources, targets)
        logging.info("Read %d WMT'14 %s pairs.", len(sources), split)
    return splits


@gin.configurable(denylist=["data_dir"])
def load_corpus(data_dir: str | None, dataset: str = "multi30k",
                max_train_pairs: int | None = None):
    """Return {split: (sources, targets)} and the (train, validation, test) split names.

    Args:
        data_dir: for multi30k the directory of gzip files, for wmt14 the tfds data directory.
        dataset: "multi30k" or "wmt14".
        max_train_pairs: for wmt14, read at most this many training pairs.

    Raises:
        ValueError: if `dataset` is unknown or multi30k has no data_dir.
    """
    if dataset == "multi30k":
        if not data_dir:
            raise ValueError("--data_dir is required for multi30k: pass the directory that "
                             "contains train.en.gz, train.de.gz and the other splits.")
        return load_multi30k(data_dir), ("train", "val", "test_2016_flickr")
    if dataset == "wmt14":
        return (load_wmt14(data_dir, max_train_pairs),
                ("train", "validation", "test"))
    raise ValueError(f"Unknown dataset {dataset!r}; expected 'multi30k' or 'wmt14'.")


def load_or_train_tokenizer(run_dir: str | os.PathLike, training_text: Iterable[str],
                            vocab_size: int, seed: int = 0) -> spm.SentencePieceProcessor:
    """Load the run's joint SentencePiece model, learning it from `training_text` if absent.

    The model is stored as `spm_joint.model` in `run_dir`, so a resumed run and later
    evaluation use the same subword ids as the run that created it.

    Args:
        run_dir: the run directory.
        training_text: sentences of both languages; read only when no model exists yet.
        vocab_size: the number of subword pieces, including the four special ids.
        seed: seed for SentencePiece's sentence sampling.

    Raises:
        ValueError: if a stored model has a different vocabulary size than `vocab_size`.
    """
    run_dir = pathlib.Path(run_dir)
    model_path = run_dir / f"{TOKENIZER_FILENAME}.model"
    if not model_path.is_file():
        run_dir.mkdir(parents=True, exist_ok=True)
        logging.info("Learning a %d-piece SentencePiece vocabulary into %s.", vocab_size,
                     model_path)
        spm.set_random_generator_seed(seed)
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(training_text),
            model_prefix=str(run_dir / TOKENIZER_FILENAME),
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=1.0,
            # Characters missing from the training text become UTF-8 byte pieces instead of
            # <unk>, so every sentence decodes back to itself.
            byte_fallback=True,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            input_sentence_size=2_000_000,
            shuffle_input_sentence=True,
            num_threads=os.cpu_count() or 1,
            minloglevel=2,
        )
    tokenizer = spm.SentencePieceProcessor(model_file=str(model_path))
    if tokenizer.get_piece_size() != vocab_size:
        raise ValueError(
            f"{model_path} has {tokenizer.get_piece_size()} pieces but vocab_size is "
            f"{vocab_size}. Use a new --run_dir or bind the stored vocabulary size.")
    return tokenizer


def encode(tokenizer: spm.SentencePieceProcessor, sentences: Sequence[str]) -> list[list[int]]:
    """Encode sentences to subword ids, without BOS or EOS."""
    return tokenizer.encode(list(sentences), out_type=int)


def decode(tokenizer: spm.SentencePieceProcessor, ids: Sequence[Sequence[int]]) -> list[str]:
    """Decode subword ids into detokenized sentences, dropping ids after the first EOS."""
    sentences = []
    for row in ids:
        row = [int(i) for i in row]
        if EOS_ID in row:
            row = row[:row.index(EOS_ID)]
        sentences.append(tokenizer.decode([i for i in row if i not in (PAD_ID, BOS_ID)]))
    return sentences


def pad_batch(rows: Sequence[Sequence[int]]) -> np.ndarray:
    """Stack id lists into an int32 array [len(rows), max length], padded with PAD_ID."""
    batch = np.full([len(rows), max(len(row) for row in rows)], PAD_ID, np.int32)
    for i, row in enumerate(rows):
        batch[i, :len(row)] = row
    return batch


def bucket_boundaries(max_length: int, min_length: int = 8, growth: float = 1.1) -> list[int]:
    """Return geometrically spaced sequence-length bucket boundaries up to `max_length`."""
    boundaries = []
    length = min_length
    while length < max_length:
        boundaries.append(length)
        length = max(length + 1, int(length * growth))
    return boundaries


def make_dataset(source_ids: Sequence[Sequence[int]], target_ids: Sequence[Sequence[int]],
                 max_tokens: int, max_length: int, shuffle: bool, seed: int = 0,
                 repeat: bool = False) -> tf.data.Dataset:
    """Build batches of ((source, target_input), target_output) padded with PAD_ID.

    The source gets EOS appended, the decoder input is BOS + target and the decoder output is
    target + EOS. Pairs are grouped into buckets of similar length, and each batch holds at most
    `max_tokens` padded tokens on its longer side.

    Args:
        source_ids, target_ids: aligned subword id lists, without BOS or EOS.
        max_tokens: the maximum of batch size x padded length.
        max_length: pairs whose longer side (with EOS) exceeds this are dropped.
        shuffle: shuffle pairs before bucketing (training); False keeps the order stable.
        seed: shuffle seed.
        repeat: repeat the data indefinitely.

    Raises:
        ValueError: if `max_tokens` is below `max_length` or no pair fits `max_length`.
    """
    if max_tokens < max_length:
        raise ValueError(
            f"max_tokens={max_tokens} must be at least max_length={max_length}, so that every "
            "kept pair fits into a batch.")
    kept_sources, kept_targets = [], []
    for source, target in zip(source_ids, target_ids):
        if max(len(source), len(target)) + 1 <= max_length:
            kept_sources.append(list(source) + [EOS_ID])
            kept_targets.append(list(target))
    if not kept_sources:
        raise ValueError(f"No sentence pair is shorter than max_length={max_length} tokens.")
    dropped = len(source_ids) - len(kept_sources)
    if dropped:
        logging.info("Dropped %d of %d pairs longer than %d tokens.", dropped, len(source_ids),
                     max_length)

    dataset = tf.data.Dataset.from_tensor_slices((_ragged(kept_sources), _ragged(kept_targets)))
    if shuffle:
        dataset = dataset.shuffle(len(kept_sources), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()

    def add_special_ids(source, target):
        bos = tf.constant([BOS_ID], target.dtype)
        eos = tf.constant([EOS_ID], target.dtype)
        return source, tf.concat([bos, target], 0), tf.concat([target, eos], 0)

    dataset = dataset.map(add_special_ids, num_parallel_calls=tf.data.AUTOTUNE)
    boundaries = bucket_boundaries(max_length)
    # Bucket i holds pairs shorter than boundaries[i]; the last bucket holds up to max_length.
    batch_sizes = [max(1, max_tokens // length) for length in boundaries + [max_length]]
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda s, ti, to: tf.maximum(tf.shape(s)[0], tf.shape(ti)[0]),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=batch_sizes,
        padded_shapes=([None], [None], [None]),
        padding_values=(PAD_ID, PAD_ID, PAD_ID),
    )
    dataset = dataset.map(lambda s, ti, to: ((s, ti), to))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _ragged(rows: list[list[int]]) -> tf.RaggedTensor:
    lengths = np.array([len(row) for row in rows], np.int64)
    flat = np.fromiter((i for row in rows for i in row), np.int32, count=int(lengths.sum()))
    return tf.RaggedTensor.from_row_lengths(flat, lengths)
