"""Shared fixtures: real data location, and a clean Keras and Gin state per test."""

import os
import pathlib

import gin
import keras
import pytest

# Tests that need real data read it from this directory, which contains `cifar10/` (the official
# `cifar-10-batches-py` layout) and `multi30k/`. CI must set it: there a missing directory
# fails the run instead of skipping the data tests.
DATA_DIR_VARIABLE = "SWISH_TF_DATA_DIR"


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    value = os.environ.get(DATA_DIR_VARIABLE)
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    if not value:
        message = (f"{DATA_DIR_VARIABLE} is not set; point it at the directory that holds "
                   "cifar10/cifar-10-batches-py and multi30k/")
        if in_ci:
            pytest.fail(message)
        pytest.skip(message)
    path = pathlib.Path(value)
    if not path.is_dir():
        message = f"{DATA_DIR_VARIABLE}={value!r} is not a directory"
        if in_ci:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def cifar10_dir(data_dir: pathlib.Path) -> pathlib.Path:
    path = data_dir / "cifar10" / "cifar-10-batches-py"
    if not path.is_dir():
        pytest.fail(f"CIFAR-10 is missing: expected the official python layout at {path}")
    return path


@pytest.fixture(scope="session")
def multi30k_dir(data_dir: pathlib.Path) -> pathlib.Path:
    path = data_dir / "multi30k"
    if not path.is_dir():
        pytest.fail(f"Multi30k is missing: expected train.en.gz and friends in {path}")
    return path


@pytest.fixture(autouse=True)
def clean_state():
    """Reset Gin bindings and Keras's global state around every test."""
    gin.clear_config()
    keras.backend.clear_session()
    yield
    gin.clear_config()
    keras.backend.clear_session()


@pytest.fixture(scope="session")
def cifar_test_batch(cifar10_dir: pathlib.Path):
    """The first 8 CIFAR-10 test images, normalized as for training, and their labels."""
    import numpy as np
    from swish_tf.data import cifar

    splits = cifar.load_cifar10(cifar10_dir)
    images = (splits.test_images[:8] / 255.0 - splits.channel_mean) / splits.channel_std
    return images.astype(np.float32), splits.test_labels[:8]


@pytest.fixture(scope="session")
def multi30k_slice(multi30k_dir: pathlib.Path, tmp_path_factory) -> pathlib.Path:
    """A Multi30k directory with the first 400 training pairs and 8 pairs of val and test."""
    import gzip

    from models import translation_data

    path = tmp_path_factory.mktemp("multi30k_slice")
    for split, count in {"train": 400, "val": 8, "test_2016_flickr": 8}.items():
        for language in ("en", "de"):
            name = f"{split}.{language}.gz"
            lines = translation_data.read_gzip_lines(multi30k_dir / name)[:count]
            with gzip.open(path / name, "wt", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))
    return path
