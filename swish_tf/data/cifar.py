"""CIFAR-10 and CIFAR-100: loading, a seeded validation split and the `tf.data` input pipeline.

The searches of "Searching for Activation Functions" score each candidate by the validation
accuracy of a child network trained on CIFAR-10. So the loader holds out a fixed, seeded
validation split from the 50,000 training images and keeps the test set for final numbers.

Sources:

* the official python layout (`cifar-10-batches-py/`, `cifar-100-python/`), either the extracted
  directory or the `.tar.gz` archive it comes from, read without unpacking it to disk;
* tensorflow-datasets (`cifar10`, `cifar100`) from an already prepared `data_dir`. It never
  downloads.

Images are uint8 NHWC arrays of shape (N, 32, 32, 3) and labels int32 arrays of shape (N,).
"""

import dataclasses
import os
import pathlib
import pickle
import tarfile
import zlib
from typing import Any, BinaryIO

from absl import logging
import numpy as np

IMAGE_SIZE = 32
NUM_CHANNELS = 3
IMAGE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, NUM_CHANNELS)
_ROW_LENGTH = IMAGE_SIZE * IMAGE_SIZE * NUM_CHANNELS  # 3072 bytes: 1024 red, 1024 green, 1024 blue.

NUM_TRAIN_IMAGES = 50_000
NUM_TEST_IMAGES = 10_000
DEFAULT_VALIDATION_SIZE = 5_000

# Published per-channel statistics of the 50,000 official CIFAR-10 training images, on the
# [0, 1] scale, as widely used in CIFAR training code. The pipeline normalizes with the
# statistics of the loaded training split (`CifarSplits.channel_mean`) unless a caller passes
# these instead.
CIFAR10_PUBLISHED_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_PUBLISHED_STD = (0.2470, 0.2435, 0.2616)

_CIFAR10_DIRECTORY = "cifar-10-batches-py"
_CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_TEST_FILE = "test_batch"
_CIFAR10_META_FILE = "batches.meta"

_CIFAR100_DIRECTORY = "cifar-100-python"
_CIFAR100_ARCHIVE = "cifar-100-python.tar.gz"


class CifarFormatError(ValueError):
    """A CIFAR file exists but is truncated, corrupt or not in the official layout."""


@dataclasses.dataclass(frozen=True)
class CifarSplits:
    """CIFAR images and labels split into train, validation and test.

    Images are uint8 arrays of shape (N, 32, 32, 3) (NHWC), labels int32 arrays of shape (N,).
    `channel_mean` and `channel_std` are the per-channel statistics of `train_images` on the
    [0, 1] scale, which the input pipeline normalizes with by default.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    validation_images: np.ndarray
    validation_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    num_classes: int
    channel_mean: tuple[float, float, float]
    channel_std: tuple[float, float, float]


# ----------------------------------------------------------------------------------------------
# Reading the official python layout.


class _DirectoryReader:
    """Opens the files of an extracted `cifar-*-python` directory."""

    def __init__(self, directory: pathlib.Path):
        self.directory = directory

    def describe(self, name: str) -> str:
        return str(self.directory / name)

    def read(self, name: str) -> Any:
        path = self.directory / name
        if not path.is_file():
            raise FileNotFoundError(
                f"CIFAR file {path} not found: expected the official python layout, a directory "
                f"holding {name} as it unpacks from the official archive.")
        with open(path, "rb") as f:
            return _unpickle(f, str(path))

    def close(self) -> None:
        pass


class _ArchiveReader:
    """Reads the member files of an official `cifar-*-python.tar.gz` without unpacking it."""

    def __init__(self, archive: pathlib.Path, directory_name: str):
        self.archive = archive
        self.directory_name = directory_name
        try:
            self._tar = tarfile.open(archive, "r:*")
            # Listing the members reads the whole archive, so a truncated one fails here.
            self._members = {m.name: m for m in self._tar.getmembers() if m.isfile()}
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise CifarFormatError(
                f"Cannot read CIFAR archive {archive}: {e}. Expected the official gzip-compressed "
                f"tar archive that unpacks to {directory_name}/; the file may be truncated or "
                "corrupt, so download it again.") from e

    def describe(self, name: str) -> str:
        return f"{self.archive}:{self.directory_name}/{name}"

    def read(self, name: str) -> Any:
        member_name = f"{self.directory_name}/{name}"
        member = self._members.get(member_name) or self._members.get(f"./{member_name}")
        if member is None:
            raise FileNotFoundError(
                f"CIFAR archive {self.archive} has no member {member_name}: expected the official "
                f"archive, which unpacks to {self.directory_name}/.")
        try:
            f = self._tar.extractfile(member)
            if f is None:
                raise CifarFormatError(f"{self.describe(name)} is not a regular file.")
            return _unpickle(f, self.describe(name))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise CifarFormatError(
                f"Cannot read {self.describe(name)}: {e}. The archive may be truncated or "
                "corrupt; download it again.") from e

    def close(self) -> None:
        self._tar.close()


def _unpickle(f: BinaryIO, description: str) -> Any:
    # encoding="bytes" is how the official files must be read: they are Python 2 pickles.
    try:
        return pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, MemoryError) as e:
        raise CifarFormatError(
            f"Cannot unpickle CIFAR file {description}: {type(e).__name__}: {e}. Expected a "
            "pickled dict as in the official python version of CIFAR; the file may be truncated "
            "or corrupt.") from e


def _field(batch: Any, key: str, description: str) -> Any:
    if not isinstance(batch, dict):
        raise CifarFormatError(
            f"CIFAR file {description} contains a {type(batch).__name__}; expected a dict with key "
            f"{key!r}.")
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in batch)
    raise CifarFormatError(
        f"CIFAR file {description} has no key {key!r}; it has {keys}.")


def _decode_batch(batch: Any, label_key: str, num_classes: int,
                  description: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert one pickled batch to NHWC uint8 images and int32 labels, checking both."""
    data = np.asarray(_field(batch, "data", description))
    labels = np.asarray(_field(batch, label_key, description))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _ROW_LENGTH:
        raise CifarFormatError(
            f"CIFAR file {description}: 'data' is a {data.dtype} array of shape {data.shape}; "
            f"expected uint8 of shape (N, {_ROW_LENGTH}).")
    if labels.shape != (data.shape[0],):
        raise CifarFormatError(
            f"CIFAR file {description}: {data.shape[0]} images but {labels.size} labels.")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0
                        or labels.max() >= num_classes):
        raise CifarFormatError(
            f"CIFAR file {description}: labels must be integers in [0, {num_classes}); found "
            f"dtype {labels.dtype}, range [{labels.min()}, {labels.max()}].")
    # Each row is channel-major (CHW); transpose to NHWC.
    images = data.reshape(-1, NUM_CHANNELS, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int32)


def _decode_names(batch: Any, key: str, num_classes: int, description: str) -> tuple[str, ...]:
    names = _field(batch, key, description)
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    if len(names) != num_classes:
        raise CifarFormatError(
            f"CIFAR file {description}: {len(names)} class names in {key!r}; expected "
            f"{num_classes}.")
    return names


def _resolve_source(path: os.PathLike | str, directory_name: str, archive_name: str,
                    marker_file: str) -> pathlib.Path:
    """Find the extracted directory or the archive that `path` points at, or is the parent of."""
    path = pathlib.Path(path).expanduser()
    if path.is_file():
        return path
    candidates = [path, path / directory_name, path / archive_name]
    for candidate in candidates:
        if candidate.is_dir() and (candidate / marker_file).exists():
            return candidate
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"No CIFAR data found at {path}: expected the {directory_name} directory (holding "
        f"{marker_file}), a directory that contains it or {archive_name}, or the {archive_name} "
        "archive itself.")


def _open_reader(source: pathlib.Path, directory_name: str) -> _DirectoryReader | _ArchiveReader:
    if source.is_dir():
        return _DirectoryReader(source)
    return _ArchiveReader(source, directory_name)


# ----------------------------------------------------------------------------------------------
# Public loaders.


def load_cifar10(path: os.PathLike | str, *, validation_size: int = DEFAULT_VALIDATION_SIZE,
                 seed: int = 0) -> CifarSplits:
    """Load CIFAR-10 from the official python layout and hold out a validation split.

    Args:
      path: the `cifar-10-batches-py` directory, a directory that contains it or the
        `cifar-10-python.tar.gz` archive, or that archive itself.
      validation_size: number of training images held out for validation.
      seed: seed of the random validation split; the same seed always gives the same split.

    Returns:
      The splits: 50,000 - `validation_size` training images, `validation_size` validation
      images and the 10,000 test images.

    Raises:
      FileNotFoundError: no CIFAR-10 data at `path`, or a batch file is missing.
      CifarFormatError: a file is truncated, corrupt or not in the official layout; the
        message names the file.
    """
    source = _resolve_source(path, _CIFAR10_DIRECTORY, _CIFAR10_ARCHIVE, _CIFAR10_META_FILE)
    logging.info("Loading CIFAR-10 from %s", source)
    reader = _open_reader(source, _CIFAR10_DIRECTORY)
    try:
        class_names = _decode_names(reader.read(_CIFAR10_META_FILE), "label_names", 10,
                                    reader.describe(_CIFAR10_META_FILE))
        train = [_decode_batch(reader.read(name), "labels", 10, reader.describe(name))
                 for name in _CIFAR10_TRAIN_FILES]
        test_images, test_labels = _decode_batch(
            reader.read(_CIFAR10_TEST_FILE), "labels", 10, reader.describe(_CIFAR10_TEST_FILE))
    finally:
        reader.close()
    train_images = np.concatenate([images for images, _ in train])
    train_labels = np.concatenate([labels for _, labels in train])
    return _split(train_images, train_labels, test_images, test_labels, class_names,
                  validation_size=validation_size, seed=seed, description=str(source))


def load_cifar100(path: os.PathLike | str, *, validation_size: int = DEFAULT_VALIDATION_SIZE,
                  seed: int = 0) -> CifarSplits:
    """Load CIFAR-100 (the 100 fine labels) from the official python layout.

    Args:
      path: the `cifar-100-python` directory, a directory that contains it or the
        `cifar-100-python.tar.gz` archive, or that archive itself.
      validation_size: number of training images held out for validation.
      seed: seed of the random validation split.

    Returns:
      The splits, with the 100 fine class names.

    Raises:
      FileNotFoundError, CifarFormatError: as `load_cifar10`.
    """
    source = _resolve_source(path, _CIFAR100_DIRECTORY, _CIFAR100_ARCHIVE, "meta")
    logging.info("Loading CIFAR-100 from %s", source)
    reader = _open_reader(source, _CIFAR100_DIRECTORY)
    try:
        class_names = _decode_names(reader.read("meta"), "fine_label_names", 100,
                                    reader.describe("meta"))
        train_images, train_labels = _decode_batch(reader.read("train"), "fine_labels", 100,
                                                   reader.describe("train"))
        test_images, test_labels = _decode_batch(reader.read("test"), "fine_labels", 100,
                                                 reader.describe("test"))
    finally:
        reader.close()
    return _split(train_images, train_labels, test_images, test_labels, class_names,
                  validation_size=validation_size, seed=seed, description=str(source))


def load_tfds(name: str = "cifar10", *, data_dir: os.PathLike | str,
              validation_size: int = DEFAULT_VALIDATION_SIZE, seed: int = 0) -> CifarSplits:
    """Load CIFAR-10 or CIFAR-100 from a prepared tensorflow-datasets directory.

    tfds may store the training images in another order than the official files, so the same
    seed can give another validation split. Compare accuracies within one source.

    Args:
      name: "cifar10" or "cifar100" (fine labels).
      data_dir: the tfds data directory in which `name` has already been prepared.
      validation_size: number of training images held out for validation.
      seed: seed of the random validation split.

    Raises:
      ValueError: `name` is not a CIFAR dataset.
      FileNotFoundError: the dataset is not prepared under `data_dir`.
    """
    # NOTE: this path has not run against a prepared tfds directory in this repository's
    # tests, because the test machines cannot download the tfds source files.
    num_classes = {"cifar10": 10, "cifar100": 100}.get(name)
    if num_classes is None:
        raise ValueError(f"Unknown tfds CIFAR dataset {name!r}; expected 'cifar10' or 'cifar100'.")
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    builder = tfds.builder(name, data_dir=os.fspath(data_dir))
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"tfds dataset {name!r} is not prepared in {data_dir} (looked in {builder.data_dir}). "
            f"Prepare it with `tfds build {name} --data_dir={data_dir}` on a machine with "
            "internet access, or load the official python archive with load_cifar10/100.")
    label_key = "label"  # In tfds's cifar100, "label" is the fine label.
    arrays = {}
    for split in ("train", "test"):
        features = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        arrays[split] = (np.asarray(features["image"], dtype=np.uint8),
                         np.asarray(features[label_key], dtype=np.int32))
    class_names = tuple(builder.info.features[label_key].names)
    return _split(*arrays["train"], *arrays["test"], class_names, validation_size=validation_size,
                  seed=seed, description=f"tfds {name} in {data_dir}")


def _split(train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
           test_labels: np.ndarray, class_names: tuple[str, ...], *, validation_size: int,
           seed: int, description: str) -> CifarSplits:
    """Hold out a seeded random validation split and compute the training channel statistics."""
    num_train = len(train_images)
    if not 0 < validation_size < num_train:
        raise ValueError(
            f"validation_size must be in (0, {num_train}); received {validation_size}.")
    if num_train != NUM_TRAIN_IMAGES or len(test_images) != NUM_TEST_IMAGES:
        logging.warning("%s has %d training and %d test images; the official CIFAR files have "
                        "%d and %d.", description, num_train, len(test_images), NUM_TRAIN_IMAGES,
                        NUM_TEST_IMAGES)
    permutation = np.random.default_rng(seed).permutation(num_train)
    validation_index = np.sort(permutation[:validation_size])
    train_index = np.sort(permutation[validation_size:])
    train_images_split = train_images[train_index]
    mean, std = channel_statistics(train_images_split)
    return CifarSplits(
        train_images=train_images_split,
        train_labels=train_labels[train_index],
        validation_images=train_images[validation_index],
        validation_labels=train_labels[validation_index],
        test_images=test_images,
        test_labels=test_labels,
        class_names=tuple(class_names),
        num_classes=len(class_names),
        channel_mean=mean,
        channel_std=std,
    )


def channel_statistics(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return the per-channel mean and standard deviation of uint8 NHWC images, on [0, 1]."""
    pixels = images.reshape(-1, images.shape[-1])
    # Sums of uint8 values in float64 are exact here, and avoid a float copy of all images.
    count = pixels.shape[0]
    total = pixels.sum(axis=0, dtype=np.float64)
    total_squares = np.einsum("nc,nc->c", pixels, pixels, dtype=np.float64)
    mean = total / count
    std = np.sqrt(np.maximum(total_squares / count - mean**2, 0.0))
    return tuple(float(v) for v in mean / 255.0), tuple(float(v) for v in std / 255.0)


# ----------------------------------------------------------------------------------------------
# The tf.data pipeline.


def make_dataset(images: np.ndarray, labels: np.ndarray, *, batch_size: int, training: bool,
                 mean: tuple[float, ...], std: tuple[float, ...], seed: int = 0,
                 pad_to_batch: bool = False, threads: int | None = None):
    """Build a `tf.data` pipeline over in-memory uint8 images.

    Training pipelines shuffle (seeded, reshuffled every epoch), repeat forever, augment with
    the standard CIFAR augmentation (pad 4 pixels on each side with zeros, take a random 32x32
    crop, flip left-right with probability 1/2) and drop the last partial batch. Augmentation
    uses stateless random ops keyed on (`seed`, element index), so a seed gives the same
    batches however many threads run the map.

    Evaluation pipelines keep the order, run once and cache the normalized images in memory.
    With `pad_to_batch` they pad the last batch to `batch_size` with label -1, so every batch
    has a static shape (TPUs need one); count only labels >= 0.

    Args:
      images: uint8 array of shape (N, H, W, C).
      labels: integer array of shape (N,).
      batch_size: global batch size.
      training: build the training pipeline (True) or the evaluation pipeline (False).
      mean, std: per-channel statistics on the [0, 1] scale; images become
        (image / 255 - mean) / std.
      seed: seed of shuffling and augmentation.
      pad_to_batch: evaluation only; see above.
      threads: size of the private thread pool of the pipeline, or None for tf.data's default.
        A set size also turns off tf.data's autotuning, whose background thread made
        deleting a training iterator wait 20 to 50 s on a busy CPU core (TensorFlow 2.21);
        the map then runs `threads` calls at a time and 2 batches are prefetched.

    Returns:
      A dataset of (float32 images (B, H, W, C), int32 labels (B,)).
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 NHWC; received {images.dtype} {images.shape}.")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels.")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive; received {batch_size}.")
    if threads is not None and (not isinstance(threads, int) or threads <= 0):
        raise ValueError(f"threads must be a positive integer or None for tf.data's default; "
                         f"received {threads!r}.")
    height, width, channels = images.shape[1:]
    labels = np.asarray(labels, dtype=np.int32)
    parallel_calls = tf.data.AUTOTUNE if threads is None else threads
    prefetch_batches = tf.data.AUTOTUNE if threads is None else 2
    scale = tf.constant([1.0 / (255.0 * s) for s in std], tf.float32)
    offset = tf.constant([m / s for m, s in zip(mean, std)], tf.float32)

    def normalize(image):
        return tf.cast(image, tf.float32) * scale - offset

    if training:
        if len(images) < batch_size:
            raise ValueError(
                f"The training set has {len(images)} images, fewer than one batch of {batch_size}.")

        def augment(index, image, label):
            crop_seed = tf.stack([tf.cast(seed, tf.int64), 2 * index])
            flip_seed = tf.stack([tf.cast(seed, tf.int64), 2 * index + 1])
            padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
            image = tf.image.stateless_random_crop(padded, [height, width, channels], crop_seed)
            image = tf.image.stateless_random_flip_left_right(image, flip_seed)
            return normalize(image), label

        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.repeat().enumerate()
        dataset = dataset.map(lambda i, example: augment(i, *example),
                              num_parallel_calls=parallel_calls, deterministic=True)
        dataset = dataset.batch(batch_size, drop_remainder=True)
    else:
        if pad_to_batch and len(images) % batch_size:
            padding = batch_size - len(images) % batch_size
            images = np.concatenate([images, np.zeros((padding, *images.shape[1:]), np.uint8)])
            labels = np.concatenate([labels, np.full((padding,), -1, np.int32)])
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
        dataset = dataset.map(lambda image, label: (normalize(image), label),
                              num_parallel_calls=parallel_calls, deterministic=True)
        dataset = dataset.cache()
        dataset = dataset.batch(batch_size, drop_remainder=pad_to_batch)

    options = tf.data.Options()
    options.deterministic = True
    if threads is not None:
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
        options.autotune.enabled = False
    return dataset.with_options(options).prefetch(prefetch_batches)
