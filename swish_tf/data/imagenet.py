"""ImageNet input pipelines with Inception preprocessing.

Three sources of encoded images and integer labels feed the same preprocessing:

- "tfrecord": the sharded layout written by TensorFlow's `build_imagenet_data.py`
  (`train-00000-of-01024`, `validation-00000-of-00128`, ...), `tf.train.Example`s with the
  features `image/encoded` (JPEG bytes) and `image/class/label` (1-based, 0 was reserved
  for a background class, hence `label_offset=1`).
- "tfds": tensorflow-datasets `imagenet2012`, prepared from the manually downloaded
  `ILSVRC2012_img_train.tar` and `ILSVRC2012_img_val.tar` in `manual_dir`.
- "image_folder": `<data_dir>/<split>/<class_name>/<image>.jpg`; labels follow the sorted
  class directory names, which for synset ids (n01440764, ...) is the order that
  tensorflow-datasets uses too.

Training images get a random distorted bounding-box crop, a left-right flip, optional color
distortion and a resize. Evaluation images get a central crop of 87.5% of each side and a
resize. Both return float32 pixels scaled to [-1, 1], the input range of the Inception
models.
"""

import dataclasses
import os
import struct
from typing import Sequence

import gin
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

SOURCES = ("tfrecord", "tfds", "image_folder")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
TFDS_MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
IMAGENET_TRAIN_EXAMPLES = 1_281_167

# Crop sampling of the Inception preprocessing, as in TF-Slim's
# `inception_preprocessing.distorted_bounding_box_crop`.
MIN_OBJECT_COVERED = 0.1
ASPECT_RATIO_RANGE = (0.75, 1.33)
AREA_RANGE = (0.05, 1.0)
MAX_CROP_ATTEMPTS = 100
EVAL_CENTRAL_FRACTION = 0.875

# A TFRecord record is framed as: uint64 length, uint32 CRC of the length, data, uint32 CRC.
_RECORD_HEADER_BYTES = 12
_RECORD_FOOTER_BYTES = 4


# ---------------------------------------------------------------------------------------------
# Sources: each returns a dataset of (encoded image, int32 label, source name) triples, where
# the source name is the image or TFRecord file, so that errors can point at it.


def tfrecord_files(data_dir: str, split: str) -> list[str]:
    """Return the sorted shard paths `<data_dir>/<split>-*-of-*`.

    Raises:
        FileNotFoundError: when no shard matches.
    """
    pattern = os.path.join(data_dir, f"{split}-*-of-*")
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(
            f"No TFRecord shards match {pattern!r}. Expected files such as "
            f"{split}-00000-of-01024 with image/encoded and image/class/label features; "
            "check data_dir and split.")
    return files


def verify_tfrecord_file(path: str) -> int:
    """Walk the record framing of one TFRecord file and return its record count.

    Only the length headers are read, so a file costs one seek per record; the CRCs are not
    checked.

    Raises:
        ValueError: when a record header or body runs past the end of the file.
    """
    size = tf.io.gfile.stat(path).length
    offset = 0
    count = 0
    with tf.io.gfile.GFile(path, "rb") as stream:
        while offset < size:
            stream.seek(offset)
            header = stream.read(_RECORD_HEADER_BYTES)
            if len(header) < _RECORD_HEADER_BYTES:
                raise ValueError(
                    f"Corrupt TFRecord file {path}: truncated record header at byte {offset} "
                    f"of {size}. Re-create or re-download the file.")
            (length,) = struct.unpack("<Q", header[:8])
            end = offset + _RECORD_HEADER_BYTES + length + _RECORD_FOOTER_BYTES
            if end > size:
                raise ValueError(
                    f"Corrupt TFRecord file {path}: the record at byte {offset} declares "
                    f"{length} bytes but the file ends at byte {size}. Re-create or "
                    "re-download the file.")
            offset = end
            count += 1
    return count


def tfrecord_examples(files: Sequence[str], label_offset: int = 1, shuffle: bool = False,
                      verify_files: bool = True, seed: int | None = None) -> tf.data.Dataset:
    """Read (encoded image, label - label_offset, shard path) from TFRecord shards.

    Args:
        files: shard paths, for example from `tfrecord_files`.
        label_offset: subtracted from `image/class/label`; 1 for `build_imagenet_data.py`
            shards, whose labels run from 1 to 1000.
        shuffle: shuffle the shard order and interleave shards.
        verify_files: check the record framing of every local shard before reading, so that
            a truncated shard raises ValueError naming it. Without the check, TensorFlow
            raises a DataLossError that does not name the file. Remote paths (with "://") are
            skipped because the check reads one header per record.
        seed: seed of the shard shuffle.

    Raises:
        FileNotFoundError: for a missing shard.
        ValueError: for a truncated shard when `verify_files` is set.
    """
    files = list(files)
    for path in files:
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"TFRecord shard not found: {path}")
    if verify_files:
        local_files = [path for path in files if "://" not in path]
        for path in local_files:
            verify_tfrecord_file(path)
        if len(local_files) < len(files):
            logging.info("Skipped the framing check of %d remote TFRecord shards.",
                         len(files) - len(local_files))

    feature_spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(record, path):
        features = tf.io.parse_single_example(record, feature_spec)
        label = tf.cast(features["image/class/label"], tf.int32) - label_offset
        return features["image/encoded"], label, path

    def read_shard(path):
        records = tf.data.TFRecordDataset(path)
        return records.map(lambda record: parse(record, path))

    paths = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        paths = paths.shuffle(len(files), seed=seed)
        return paths.interleave(read_shard, cycle_length=min(16, len(files)),
                                num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    return paths.flat_map(read_shard)


def image_folder_examples(root: str, shuffle: bool = False,
                          seed: int | None = None) -> tuple[tf.data.Dataset, list[str]]:
    """Read (encoded image, class index, image path) from `<root>/<class_name>/<image>`.

    Class indices follow the sorted class directory names. Files ending in .jpg, .jpeg or
    .png (any case) are read; other files are ignored.

    Returns:
        The dataset and the sorted class names.

    Raises:
        FileNotFoundError: when `root` is missing or has no class directory with images.
    """
    if not tf.io.gfile.isdir(root):
        raise FileNotFoundError(
            f"Image folder {root!r} not found; expected <root>/<class_name>/<image>.jpg.")
    class_names = sorted(name.rstrip("/") for name in tf.io.gfile.listdir(root)
                         if tf.io.gfile.isdir(os.path.join(root, name)))
    paths, labels = [], []
    for index, class_name in enumerate(class_names):
        class_dir = os.path.join(root, class_name)
        for file_name in sorted(tf.io.gfile.listdir(class_dir)):
            if file_name.lower().endswith(IMAGE_EXTENSIONS):
                paths.append(os.path.join(class_dir, file_name))
                labels.append(index)
    if not paths:
        raise FileNotFoundError(
            f"No images found in {root!r}: expected class directories holding files ending in "
            f"{', '.join(IMAGE_EXTENSIONS)}.")
    logging.info("Found %d images of %d classes in %s.", len(paths), len(class_names), root)

    examples = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int32)))
    if shuffle:
        examples = examples.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    examples = examples.map(lambda path, label: (tf.io.read_file(path), label, path),
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    return examples, class_names


def tfds_examples(split: str, data_dir: str | None, manual_dir: str | None,
                  shuffle: bool = False) -> tf.data.Dataset:
    """Read (encoded image, label, file name) from tensorflow-datasets `imagenet2012`.

    Prepares the dataset first when `data_dir` does not hold it yet, which needs the two
    archives of `TFDS_MANUAL_FILES` in `manual_dir` and takes hours.

    Raises:
        FileNotFoundError: when the dataset is not prepared and an archive is missing.
    """
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    if not builder.is_prepared():
        if manual_dir is None:
            raise FileNotFoundError(
                f"imagenet2012 is not prepared in {builder.data_dir!r}. Pass manual_dir, the "
                f"directory that holds {' and '.join(TFDS_MANUAL_FILES)} from "
                "image-net.org, or a data_dir where the dataset is already prepared.")
        for file_name in TFDS_MANUAL_FILES:
            path = os.path.join(manual_dir, file_name)
            if not tf.io.gfile.exists(path):
                raise FileNotFoundError(
                    f"ImageNet archive not found: {path}. Download {file_name} from "
                    "image-net.org into manual_dir.")
        logging.info("Preparing imagenet2012 in %s from %s.", builder.data_dir, manual_dir)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    examples = builder.as_dataset(split=split, shuffle_files=shuffle,
                                  decoders={"image": tfds.decode.SkipDecoding()})
    return examples.map(lambda example: (example["image"], tf.cast(example["label"], tf.int32),
                                         example["file_name"]))


# ---------------------------------------------------------------------------------------------
# Preprocessing.


def _known_image_format(encoded: tf.Tensor) -> tf.Tensor:
    """Return True when `encoded` starts with a JPEG, PNG, GIF, BMP or WebP signature."""
    # Padding keeps substr in range for inputs shorter than the longest signature.
    padded = encoded + tf.constant(b"\0" * 12)
    return tf.reduce_any(tf.stack([
        tf.strings.substr(padded, 0, 3) == b"\xff\xd8\xff",
        tf.strings.substr(padded, 0, 8) == b"\x89PNG\r\n\x1a\n",
        tf.strings.substr(padded, 0, 4) == b"GIF8",
        tf.strings.substr(padded, 0, 2) == b"BM",
        tf.logical_and(tf.strings.substr(padded, 0, 4) == b"RIFF",
                       tf.strings.substr(padded, 8, 4) == b"WEBP"),
    ]))


def decode_image(encoded: tf.Tensor, source: tf.Tensor) -> tf.Tensor:
    """Decode to uint8 RGB, raising InvalidArgumentError naming `source` for non-image data.

    NOTE: an image whose header is valid but whose body is truncated fails inside the
    decoder, and that error does not name the file.
    """
    check = tf.debugging.Assert(_known_image_format(encoded), [
        "Invalid image data in", source,
        "(expected JPEG, PNG, GIF, BMP or WebP). Remove or re-encode the file."])
    with tf.control_dependencies([check]):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _to_unit_range(image: tf.Tensor) -> tf.Tensor:
    return tf.image.convert_image_dtype(image, tf.float32)


def _to_inception_range(image: tf.Tensor) -> tf.Tensor:
    """Map [0, 1] pixels to [-1, 1]."""
    return (image - 0.5) * 2.0


def _distort_colors(image: tf.Tensor) -> tf.Tensor:
    """Apply random brightness and saturation in random order (Inception's fast mode)."""
    def brightness_first():
        distorted = tf.image.random_brightness(image, max_delta=32.0 / 255.0)
        return tf.image.random_saturation(distorted, lower=0.5, upper=1.5)

    def saturation_first():
        distorted = tf.image.random_saturation(image, lower=0.5, upper=1.5)
        return tf.image.random_brightness(distorted, max_delta=32.0 / 255.0)

    distorted = tf.cond(tf.random.uniform([]) < 0.5, brightness_first, saturation_first)
    return tf.clip_by_value(distorted, 0.0, 1.0)


def preprocess_for_train(image: tf.Tensor, image_size: int,
                         distort_colors: bool = True) -> tf.Tensor:
    """Crop a random distorted bounding box, flip, resize and scale a uint8 image.

    Returns:
        float32 [image_size, image_size, 3] in [-1, 1].
    """
    whole_image = tf.constant([0.0, 0.0, 1.0, 1.0], shape=[1, 1, 4])
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=whole_image,
        min_object_covered=MIN_OBJECT_COVERED,
        aspect_ratio_range=ASPECT_RATIO_RANGE,
        area_range=AREA_RANGE,
        max_attempts=MAX_CROP_ATTEMPTS,
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, size)
    image = tf.image.random_flip_left_right(image)
    image = _to_unit_range(image)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    image = tf.clip_by_value(image, 0.0, 1.0)
    if distort_colors:
        image = _distort_colors(image)
    return _to_inception_range(image)


def preprocess_for_eval(image: tf.Tensor, image_size: int,
                        central_fraction: float = EVAL_CENTRAL_FRACTION) -> tf.Tensor:
    """Crop the central `central_fraction` of each side, resize and scale a uint8 image.

    Returns:
        float32 [image_size, image_size, 3] in [-1, 1].
    """
    image = _to_unit_range(image)
    image = tf.image.central_crop(image, central_fraction)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    image = tf.clip_by_value(image, 0.0, 1.0)
    return _to_inception_range(image)


def batch_examples(examples: tf.data.Dataset, training: bool, image_size: int,
                   batch_size: int, num_classes: int, shuffle_buffer: int = 10_000,
                   distort_colors: bool = True, repeat: bool = False,
                   seed: int | None = None) -> tf.data.Dataset:
    """Decode, preprocess and batch (encoded image, label, source name) triples.

    Returns:
        A dataset of (float32 [batch, image_size, image_size, 3] in [-1, 1], int32 [batch]).
        Training batches are full (the remainder is dropped) and shuffled.
    """
    def preprocess(encoded, label, source):
        check = tf.debugging.Assert(
            tf.logical_and(label >= 0, label < num_classes),
            ["Label", label, "out of range [0,", num_classes, ") in", source,
             ". Check label_offset and num_classes."])
        with tf.control_dependencies([check]):
            image = decode_image(encoded, source)
        if training:
            image = preprocess_for_train(image, image_size, distort_colors)
        else:
            image = preprocess_for_eval(image, image_size)
        # The crop has a dynamic size, so static shape inference loses the channel count.
        image.set_shape([image_size, image_size, 3])
        return image, label

    if training:
        examples = examples.shuffle(shuffle_buffer, seed=seed)
    if repeat:
        examples = examples.repeat()
    examples = examples.map(preprocess, num_parallel_calls=tf.data.AUTOTUNE,
                            deterministic=not training)
    return examples.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)


@gin.configurable
def imagenet_dataset(
    split: str,
    data_dir: str,
    batch_size: int,
    image_size: int = 299,
    source: str = "tfrecord",
    training: bool | None = None,
    num_classes: int = 1000,
    manual_dir: str | None = None,
    label_offset: int = 1,
    shuffle_buffer: int = 10_000,
    distort_colors: bool = True,
    verify_files: bool = True,
    repeat: bool = False,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Build the ImageNet input pipeline of one split.

    Args:
        split: "train" or "validation" (the shard prefix or image-folder subdirectory for the
            other sources).
        data_dir: directory of the shards, of the tensorflow-datasets data, or of the split
            subdirectories of the image folder.
        batch_size: examples per batch.
        image_size: output height and width: 299 for the Inception models, 224 for Mobile
            NASNet-A and MobileNet.
        source: "tfrecord", "tfds" or "image_folder" (see the module docstring).
        training: random crops, flips and shuffling when True, central crops when False;
            None means `split == "train"`.
        num_classes: labels must lie in [0, num_classes).
        manual_dir: for source "tfds", the directory of the downloaded ImageNet archives.
        label_offset: for source "tfrecord", subtracted from the stored labels.
        shuffle_buffer: examples in the shuffle buffer when training.
        distort_colors: random brightness and saturation when training.
        verify_files: for source "tfrecord", check the shards' framing first
            (see `tfrecord_examples`).
        repeat: repeat the split indefinitely.
        seed: seed of the file and example shuffles. The random crops and flips follow
            TensorFlow's global seed (`keras.utils.set_random_seed`).

    Raises:
        ValueError: for an unknown source or a corrupt shard.
        FileNotFoundError: for missing files.
    """
    if source not in SOURCES:
        raise ValueError(f"Unknown ImageNet source {source!r}; expected one of {SOURCES}.")
    if training is None:
        training = split == "train"

    if source == "tfrecord":
        examples = tfrecord_examples(tfrecord_files(data_dir, split), label_offset,
                                     shuffle=training, verify_files=verify_files, seed=seed)
    elif source == "tfds":
        examples = tfds_examples(split, data_dir, manual_dir, shuffle=training)
    else:
        examples, _ = image_folder_examples(os.path.join(data_dir, split), shuffle=training,
                                            seed=seed)

    return batch_examples(examples, training, image_size, batch_size, num_classes,
                          shuffle_buffer, distort_colors, repeat, seed)


@dataclasses.dataclass(frozen=True)
class BenchmarkSplits:
    """Training and evaluation input of one benchmark run.

    The fields are those of `models.benchmark_lib.BenchmarkData`, so that
    `imagenet_benchmark_data` can serve as `run_benchmark.data_fn`.
    """

    train: tf.data.Dataset  # (images, labels) batches, repeated forever.
    test: tf.data.Dataset  # (images, labels) batches, one pass over the evaluation split.
    num_classes: int
    train_examples: int
    batch_size: int  # Global batch size of `train`.


@gin.configurable(denylist=["data_dir", "seed"])
def imagenet_benchmark_data(
    data_dir: str,
    seed: int,
    *,
    batch_size: int = gin.REQUIRED,
    image_size: int = gin.REQUIRED,
    eval_batch_size: int = 100,
    source: str = "tfrecord",
    train_split: str = "train",
    eval_split: str = "validation",
    num_classes: int = 1000,
    train_examples: int = IMAGENET_TRAIN_EXAMPLES,
    manual_dir: str | None = None,
) -> BenchmarkSplits:
    """Build the endless training input and the one-pass evaluation input of one seed.

    Args:
        data_dir: passed to `imagenet_dataset`.
        seed: seed of the shuffles.
        batch_size: global training batch size.
        image_size: input side of the model (299 or 224).
        eval_batch_size: evaluation batch size; it does not change the result.
        source: "tfrecord", "tfds" or "image_folder".
        train_split: split to train on.
        eval_split: split to evaluate on; ImageNet results are reported on "validation".
        num_classes: number of classes.
        train_examples: size of the training split, from which the training loop counts
            epochs; 1,281,167 for ImageNet 2012.
        manual_dir: for source "tfds", the directory of the downloaded archives.
    """
    common = dict(image_size=image_size, source=source, num_classes=num_classes,
                  manual_dir=manual_dir, seed=seed)
    train = imagenet_dataset(train_split, data_dir, batch_size, training=True, repeat=True,
                             **common)
    test = imagenet_dataset(eval_split, data_dir, eval_batch_size, training=False, **common)
    return BenchmarkSplits(train=train, test=test, num_classes=num_classes,
                           train_examples=train_examples, batch_size=batch_size)
