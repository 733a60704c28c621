"""Tests of swish_tf.data.cifar on the real CIFAR-10 files and on small copies of them."""

import os
import pickle
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from swish_tf.data import cifar

# Images per batch file in the small copies of the official layout.
_SLICE = 60


@pytest.fixture(scope="module")
def cifar10(cifar10_dir):
    return cifar.load_cifar10(cifar10_dir, seed=0)


def _write_small_cifar10(cifar10_dir, directory):
    """Copy the official layout into `directory` with the first images of each real batch."""
    directory.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(cifar10_dir / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        small = {b"batch_label": batch[b"batch_label"], b"data": batch[b"data"][:_SLICE],
                 b"labels": batch[b"labels"][:_SLICE], b"filenames": batch[b"filenames"][:_SLICE]}
        with open(directory / name, "wb") as f:
            pickle.dump(small, f, protocol=2)
    with open(cifar10_dir / "batches.meta", "rb") as source, \
            open(directory / "batches.meta", "wb") as target:
        target.write(source.read())
    return directory


@pytest.fixture
def small_cifar10(cifar10_dir, tmp_path):
    return _write_small_cifar10(cifar10_dir, tmp_path / "cifar-10-batches-py")


def _load_small(path, **kwargs):
    return cifar.load_cifar10(path, validation_size=50, **kwargs)


def test_split_sizes_and_labels(cifar10):
    assert cifar10.train_images.shape == (45_000, 32, 32, 3)
    assert cifar10.validation_images.shape == (5_000, 32, 32, 3)
    assert cifar10.test_images.shape == (10_000, 32, 32, 3)
    assert cifar10.train_images.dtype == np.uint8
    assert cifar10.num_classes == 10
    assert cifar10.class_names[0] == "airplane"
    assert cifar10.class_names[9] == "truck"
    for labels in (cifar10.train_labels, cifar10.validation_labels, cifar10.test_labels):
        assert labels.dtype == np.int32
        assert labels.min() == 0
        assert labels.max() == 9
        assert np.all(np.bincount(labels, minlength=10) > 0)


def test_split_partitions_official_training_set(cifar10, cifar10_dir):
    with open(cifar10_dir / "data_batch_1", "rb") as f:
        first = pickle.load(f, encoding="bytes")
    # Image 0 of the first batch, decoded by hand from its channel-major row.
    expected = first[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    in_train = np.all(cifar10.train_images == expected, axis=(1, 2, 3)).sum()
    in_validation = np.all(cifar10.validation_images == expected, axis=(1, 2, 3)).sum()
    assert in_train + in_validation >= 1
    total = (np.bincount(cifar10.train_labels, minlength=10)
             + np.bincount(cifar10.validation_labels, minlength=10))
    assert total.sum() == 50_000


def test_same_seed_same_split(small_cifar10):
    first = _load_small(small_cifar10, seed=0)
    again = _load_small(small_cifar10, seed=0)
    other = _load_small(small_cifar10, seed=1)
    np.testing.assert_array_equal(again.validation_labels, first.validation_labels)
    np.testing.assert_array_equal(again.validation_images, first.validation_images)
    np.testing.assert_array_equal(again.train_images, first.train_images)
    assert not np.array_equal(other.validation_images, first.validation_images)


def test_channel_statistics_match_numpy(cifar10):
    images = cifar10.train_images[:2000]
    mean, std = cifar.channel_statistics(images)
    pixels = images.reshape(-1, 3).astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-6)
    # The statistics of the whole training split are close to the published ones. The JPEG
    # re-encoding of the test copy of CIFAR-10 shifts them a little.
    np.testing.assert_allclose(cifar10.channel_mean, cifar.CIFAR10_PUBLISHED_MEAN, atol=0.01)
    np.testing.assert_allclose(cifar10.channel_std, cifar.CIFAR10_PUBLISHED_STD, atol=0.01)


def test_archive_matches_directory(small_cifar10, tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(small_cifar10, arcname="cifar-10-batches-py")
    from_directory = _load_small(small_cifar10)
    from_archive = _load_small(archive)
    from_parent = _load_small(tmp_path)  # Holds both; the directory wins.
    for loaded in (from_archive, from_parent):
        np.testing.assert_array_equal(loaded.train_images, from_directory.train_images)
        np.testing.assert_array_equal(loaded.train_labels, from_directory.train_labels)
        np.testing.assert_array_equal(loaded.validation_images, from_directory.validation_images)
        np.testing.assert_array_equal(loaded.test_images, from_directory.test_images)
        assert loaded.class_names == from_directory.class_names
    assert from_directory.train_images.shape == (5 * _SLICE - 50, 32, 32, 3)
    assert from_directory.test_images.shape == (_SLICE, 32, 32, 3)


def test_archive_in_parent_directory(small_cifar10, tmp_path):
    parent = tmp_path / "download"
    parent.mkdir()
    with tarfile.open(parent / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(small_cifar10, arcname="cifar-10-batches-py")
    loaded = _load_small(parent)
    np.testing.assert_array_equal(loaded.test_labels, _load_small(small_cifar10).test_labels)


def test_missing_directory_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py") as error:
        cifar.load_cifar10(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(error.value)


def test_missing_batch_names_file(small_cifar10):
    os.remove(small_cifar10 / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        _load_small(small_cifar10)


def test_truncated_batch_names_file(small_cifar10):
    path = small_cifar10 / "test_batch"
    content = path.read_bytes()
    path.write_bytes(content[:len(content) // 2])
    with pytest.raises(cifar.CifarFormatError, match="test_batch") as error:
        _load_small(small_cifar10)
    assert "truncated" in str(error.value)


def test_corrupt_batch_names_file(small_cifar10):
    (small_cifar10 / "data_batch_2").write_bytes(b"this is not a pickle")
    with pytest.raises(cifar.CifarFormatError, match="data_batch_2"):
        _load_small(small_cifar10)


def test_wrong_shape_names_file(small_cifar10):
    with open(small_cifar10 / "data_batch_4", "wb") as f:
        pickle.dump({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}, f)
    with pytest.raises(cifar.CifarFormatError, match=r"data_batch_4.*\(N, 3072\)"):
        _load_small(small_cifar10)


def test_label_out_of_range_names_file(small_cifar10):
    with open(small_cifar10 / "data_batch_5", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, f)
    with pytest.raises(cifar.CifarFormatError, match=r"data_batch_5.*\[0, 10\)"):
        _load_small(small_cifar10)


def test_truncated_archive_names_file(small_cifar10, tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(small_cifar10, arcname="cifar-10-batches-py")
    content = archive.read_bytes()
    archive.write_bytes(content[:len(content) * 2 // 3])
    with pytest.raises(cifar.CifarFormatError, match="cifar-10-python.tar.gz"):
        _load_small(archive)


def test_archive_without_member_names_it(small_cifar10, tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    os.remove(small_cifar10 / "batches.meta")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(small_cifar10, arcname="cifar-10-batches-py")
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py/batches.meta"):
        _load_small(archive)


def test_validation_size_out_of_range(small_cifar10):
    with pytest.raises(ValueError, match="validation_size"):
        cifar.load_cifar10(small_cifar10, validation_size=5 * _SLICE)


def test_cifar100_layout_reads_fine_labels(cifar10_dir, tmp_path):
    """The CIFAR-100 layout (train, test, meta; fine labels), filled with CIFAR-10 pixels."""
    directory = tmp_path / "cifar-100-python"
    directory.mkdir()
    with open(cifar10_dir / "data_batch_1", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    fine_labels = {"train": [i % 100 for i in range(200)],
                   "test": [99 - i % 100 for i in range(100)]}
    for name, count in (("train", 200), ("test", 100)):
        with open(directory / name, "wb") as f:
            pickle.dump({b"data": batch[b"data"][:count], b"fine_labels": fine_labels[name],
                         b"coarse_labels": [0] * count}, f, protocol=2)
    with open(directory / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"class{i}".encode() for i in range(100)],
                     b"coarse_label_names": [b"all"]}, f, protocol=2)

    loaded = cifar.load_cifar100(tmp_path, validation_size=20)

    assert loaded.num_classes == 100
    assert loaded.class_names[99] == "class99"
    assert loaded.train_images.shape == (180, 32, 32, 3)
    np.testing.assert_array_equal(loaded.test_labels, fine_labels["test"])
    np.testing.assert_array_equal(
        loaded.test_images[0], batch[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0))


def test_tfds_not_prepared_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="not prepared"):
        cifar.load_tfds("cifar10", data_dir=tmp_path)
    with pytest.raises(ValueError, match="cifar10"):
        cifar.load_tfds("mnist", data_dir=tmp_path)


def _denormalize(images, mean, std):
    return np.rint((images * np.asarray(std) + np.asarray(mean)) * 255.0)


def test_training_pipeline_augments_crops_and_flips(cifar10):
    count = 64
    images = cifar10.train_images[:count]
    labels = np.arange(count, dtype=np.int32)  # The label tells which image each output came from.
    dataset = cifar.make_dataset(images, labels, batch_size=16, training=True,
                                 mean=cifar10.channel_mean, std=cifar10.channel_std, seed=3)
    batch_images, batch_labels = next(iter(dataset))
    assert batch_images.shape == (16, 32, 32, 3)
    assert batch_images.dtype == tf.float32
    assert batch_labels.dtype == tf.int32

    shifted = 0
    for image, index in zip(batch_images.numpy(), batch_labels.numpy()):
        pixels = _denormalize(image, cifar10.channel_mean, cifar10.channel_std)
        padded = np.pad(images[index].astype(np.float64), [(4, 4), (4, 4), (0, 0)])
        windows = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (False, True)
                   if np.array_equal(pixels, (padded[dy:dy + 32, dx:dx + 32, :][:, ::-1]
                                              if flip else padded[dy:dy + 32, dx:dx + 32, :]))]
        assert windows, f"augmented image {index} is no crop of its padded original"
        shifted += all((dy, dx) != (4, 4) for dy, dx, _ in windows)
    assert shifted > 0


def test_training_pipeline_same_seed_same_batches(cifar10):
    def first_batches(seed):
        dataset = cifar.make_dataset(cifar10.train_images[:256], cifar10.train_labels[:256],
                                     batch_size=32, training=True, mean=cifar10.channel_mean,
                                     std=cifar10.channel_std, seed=seed, threads=2)
        return [images.numpy() for images, _ in dataset.take(3)]

    for a, b in zip(first_batches(5), first_batches(5)):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first_batches(5)[0], first_batches(6)[0])


def test_evaluation_pipeline_pads_last_batch(cifar10):
    images, labels = cifar10.validation_images[:250], cifar10.validation_labels[:250]
    dataset = cifar.make_dataset(images, labels, batch_size=100, training=False,
                                 mean=cifar10.channel_mean, std=cifar10.channel_std,
                                 pad_to_batch=True)
    batches = list(dataset)
    assert [b[0].shape[0] for b in batches] == [100, 100, 100]
    all_labels = np.concatenate([b[1].numpy() for b in batches])
    np.testing.assert_array_equal(all_labels[:250], labels)
    np.testing.assert_array_equal(all_labels[250:], -1)
    first = _denormalize(batches[0][0].numpy()[0], cifar10.channel_mean, cifar10.channel_std)
    np.testing.assert_array_equal(first, images[0])


def test_normalized_training_images_are_centered(cifar10):
    dataset = cifar.make_dataset(cifar10.train_images[:2048], cifar10.train_labels[:2048],
                                 batch_size=512, training=False, mean=cifar10.channel_mean,
                                 std=cifar10.channel_std)
    pixels = np.concatenate([images.numpy() for images, _ in dataset]).reshape(-1, 3)
    np.testing.assert_allclose(pixels.mean(axis=0), 0.0, atol=0.1)
    np.testing.assert_allclose(pixels.std(axis=0), 1.0, atol=0.1)


@pytest.mark.parametrize("threads", [0, -1, 1.5])
def test_make_dataset_rejects_bad_threads(threads):
    images = np.zeros((4, 32, 32, 3), np.uint8)
    labels = np.zeros((4,), np.int32)
    with pytest.raises(ValueError, match=f"threads must be a positive integer.*{threads}"):
        cifar.make_dataset(images, labels, batch_size=2, training=False, mean=(0.5,) * 3,
                           std=(0.25,) * 3, threads=threads)
