"""Tests of the ImageNet input pipelines on real CIFAR-10 images written in ImageNet layouts.

The model tests import `write_cifar_image_folder` from here to train on the same images.
"""

import pathlib
import pickle

import numpy as np
import pytest
import tensorflow as tf

from swish_tf.data import imagenet

# Stored side of the test images: CIFAR-10's 32x32 upsampled, so that crops have room.
STORED_SIZE = 64


def read_cifar_test_images(cifar10_dir: pathlib.Path, count: int):
    """Return the first `count` test images (uint8 [count, 32, 32, 3]), labels and names."""
    with open(cifar10_dir / "test_batch", "rb") as stream:
        batch = pickle.load(stream, encoding="bytes")
    with open(cifar10_dir / "batches.meta", "rb") as stream:
        meta = pickle.load(stream, encoding="bytes")
    images = batch[b"data"][:count].reshape(count, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.array(batch[b"labels"][:count], dtype=np.int32)
    class_names = [name.decode() for name in meta[b"label_names"]]
    return images, labels, class_names


def encode_resized(image: np.ndarray, image_format: str = "png") -> bytes:
    resized = tf.image.resize(image, [STORED_SIZE, STORED_SIZE], method="bilinear")
    resized = tf.cast(tf.round(resized), tf.uint8)
    if image_format == "png":
        return tf.io.encode_png(resized).numpy()
    return tf.io.encode_jpeg(resized, quality=95).numpy()


def write_cifar_image_folder(cifar10_dir: pathlib.Path, root: pathlib.Path, count: int,
                             split: str = "train") -> tuple[np.ndarray, list[str]]:
    """Write `count` CIFAR-10 test images as `<root>/<split>/<class>/<index>.jpg`.

    Returns the labels and the class names that occur, sorted.
    """
    images, labels, class_names = read_cifar_test_images(cifar10_dir, count)
    for index, (image, label) in enumerate(zip(images, labels)):
        class_dir = root / split / class_names[label]
        class_dir.mkdir(parents=True, exist_ok=True)
        (class_dir / f"{index:05d}.jpg").write_bytes(encode_resized(image, "jpeg"))
    return labels, sorted({class_names[label] for label in labels})


def write_tfrecord_shards(root: pathlib.Path, split: str, encoded_images, labels,
                          num_shards: int, label_offset: int = 1) -> list[pathlib.Path]:
    """Write `build_imagenet_data.py`-style shards; example i goes to shard i % num_shards."""
    paths = [root / f"{split}-{shard:05d}-of-{num_shards:05d}" for shard in range(num_shards)]
    writers = [tf.io.TFRecordWriter(str(path)) for path in paths]
    for index, (encoded, label) in enumerate(zip(encoded_images, labels)):
        example = tf.train.Example(features=tf.train.Features(feature={
            "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
            "image/class/label": tf.train.Feature(
                int64_list=tf.train.Int64List(value=[int(label) + label_offset])),
        }))
        writers[index % num_shards].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    return paths


@pytest.fixture
def cifar_shards(cifar10_dir, tmp_path):
    """Ten real CIFAR-10 images as PNG in one validation shard, in their original order."""
    images, labels, _ = read_cifar_test_images(cifar10_dir, 10)
    encoded = [encode_resized(image, "png") for image in images]
    write_tfrecord_shards(tmp_path, "validation", encoded, labels, num_shards=1)
    return tmp_path, images, labels


def test_tfrecord_eval_labels_in_order(cifar_shards):
    data_dir, _, labels = cifar_shards
    dataset = imagenet.imagenet_dataset("validation", str(data_dir), batch_size=4,
                                        image_size=48, num_classes=10)
    assert dataset.element_spec[0].shape.as_list() == [None, 48, 48, 3]
    batches = list(dataset)
    assert [int(images.shape[0]) for images, _ in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b.numpy() for _, b in batches]), labels)
    for images, _ in batches:
        assert images.dtype == tf.float32
        assert images.shape[1:] == (48, 48, 3)
        assert float(tf.reduce_min(images)) >= -1.0
        assert float(tf.reduce_max(images)) <= 1.0


def test_eval_central_crop_exact_pixels(cifar_shards):
    """With image_size equal to the crop size, eval output is the stored center, rescaled."""
    data_dir, images, _ = cifar_shards
    crop_size = int(STORED_SIZE * imagenet.EVAL_CENTRAL_FRACTION)  # 56
    border = (STORED_SIZE - crop_size) // 2
    dataset = imagenet.imagenet_dataset("validation", str(data_dir), batch_size=10,
                                        image_size=crop_size, num_classes=10)
    output, _ = next(iter(dataset))

    stored = tf.cast(tf.round(tf.image.resize(images, [STORED_SIZE, STORED_SIZE])), tf.uint8)
    center = stored[:, border:border + crop_size, border:border + crop_size, :]
    expected = (center.numpy().astype(np.float32) / 255.0 - 0.5) * 2.0
    np.testing.assert_allclose(output.numpy(), expected, atol=1e-5)


def test_tfrecord_train_batches(cifar10_dir, tmp_path):
    images, labels, _ = read_cifar_test_images(cifar10_dir, 12)
    encoded = [encode_resized(image, "jpeg") for image in images]
    write_tfrecord_shards(tmp_path, "train", encoded, labels, num_shards=3)
    dataset = imagenet.imagenet_dataset("train", str(tmp_path), batch_size=5, image_size=40,
                                        num_classes=10)
    batches = list(dataset)
    # 12 examples in batches of 5: the remainder of 2 is dropped in training.
    assert len(batches) == 2
    seen_labels = np.concatenate([batch_labels.numpy() for _, batch_labels in batches])
    assert set(seen_labels) <= set(labels)
    for batch_images, _ in batches:
        assert batch_images.shape == (5, 40, 40, 3)
        assert np.isfinite(batch_images.numpy()).all()
        assert float(tf.reduce_min(batch_images)) >= -1.0
        assert float(tf.reduce_max(batch_images)) <= 1.0


def test_train_preprocessing_varies(cifar_shards):
    data_dir, _, _ = cifar_shards
    dataset = imagenet.imagenet_dataset("validation", str(data_dir), batch_size=10,
                                        image_size=32, num_classes=10, training=True)
    first, _ = next(iter(dataset))
    second, _ = next(iter(dataset))
    assert not np.allclose(np.sort(first.numpy(), axis=None), np.sort(second.numpy(), axis=None))


def test_image_folder_labels_match_classes(cifar10_dir, tmp_path):
    labels, present_classes = write_cifar_image_folder(cifar10_dir, tmp_path, 20)
    examples, class_names = imagenet.image_folder_examples(str(tmp_path / "train"))
    assert class_names == present_classes
    _, _, all_names = read_cifar_test_images(cifar10_dir, 1)
    for _, label, path in examples:
        class_from_path = pathlib.Path(path.numpy().decode()).parent.name
        assert class_names[int(label)] == class_from_path
        index = int(pathlib.Path(path.numpy().decode()).stem)
        assert all_names[labels[index]] == class_from_path


def test_image_folder_pipeline_batches(cifar10_dir, tmp_path):
    write_cifar_image_folder(cifar10_dir, tmp_path, 8, split="validation")
    dataset = imagenet.imagenet_dataset("validation", str(tmp_path), batch_size=3,
                                        image_size=24, source="image_folder", num_classes=10)
    shapes = [tuple(images.shape) for images, _ in dataset]
    assert shapes == [(3, 24, 24, 3), (3, 24, 24, 3), (2, 24, 24, 3)]


def test_missing_shards_names_pattern(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-\*-of-\*"):
        imagenet.imagenet_dataset("train", str(tmp_path), batch_size=2)


def test_missing_image_folder_names_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such_split"):
        imagenet.imagenet_dataset("no_such_split", str(tmp_path), batch_size=2,
                                  source="image_folder")


def test_empty_image_folder_rejected(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(FileNotFoundError, match="No images found"):
        imagenet.imagenet_dataset("train", str(tmp_path), batch_size=2, source="image_folder")


def test_truncated_shard_names_file(cifar_shards):
    data_dir, _, _ = cifar_shards
    shard = data_dir / "validation-00000-of-00001"
    assert imagenet.verify_tfrecord_file(str(shard)) == 10
    content = shard.read_bytes()
    shard.write_bytes(content[:len(content) - 100])
    with pytest.raises(ValueError, match="Corrupt TFRecord file .*validation-00000-of-00001"):
        imagenet.imagenet_dataset("validation", str(data_dir), batch_size=2, num_classes=10)


def test_corrupt_image_names_file(cifar10_dir, tmp_path):
    write_cifar_image_folder(cifar10_dir, tmp_path, 4)
    class_dir = next((tmp_path / "train").iterdir())
    broken = class_dir / "broken.jpg"
    broken.write_text("this is not a JPEG")
    dataset = imagenet.imagenet_dataset("train", str(tmp_path), batch_size=1,
                                        source="image_folder", training=False, num_classes=10)
    with pytest.raises(tf.errors.InvalidArgumentError, match="broken.jpg"):
        for _ in dataset:
            pass


def test_label_out_of_range_names_file(cifar10_dir, tmp_path):
    images, labels, _ = read_cifar_test_images(cifar10_dir, 2)
    encoded = [encode_resized(image) for image in images]
    # Written 0-based but read with the default label_offset=1, so a label 0 becomes -1.
    write_tfrecord_shards(tmp_path, "validation", encoded, np.array([0, 0]), num_shards=1,
                          label_offset=0)
    dataset = imagenet.imagenet_dataset("validation", str(tmp_path), batch_size=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="validation-00000-of-00001"):
        next(iter(dataset))


def test_tfds_missing_archive_named(tmp_path):
    manual_dir = tmp_path / "manual"
    manual_dir.mkdir()
    with pytest.raises(FileNotFoundError, match="ILSVRC2012_img_train.tar"):
        imagenet.imagenet_dataset("train", str(tmp_path / "tfds"), batch_size=2, source="tfds",
                                  manual_dir=str(manual_dir))


def test_tfds_unprepared_without_manual_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="manual_dir"):
        imagenet.imagenet_dataset("train", str(tmp_path), batch_size=2, source="tfds")


def test_unknown_source_rejected(tmp_path):
    with pytest.raises(ValueError, match="'folders'"):
        imagenet.imagenet_dataset("train", str(tmp_path), batch_size=2, source="folders")


# ---------------------------------------------------------------------------------------------
# The ImageNet benchmark configs, run end to end on a few real images with tiny models.

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "gin_configs" / "benchmark"

# Bindings that shrink each config's model to its tiny test variant and keep everything else.
TINY_MODEL_BINDINGS = {
    "imagenet_inception_resnet_v2.gin": (
        75, ["inception_resnet_v2.image_size = 75", "inception_resnet_v2.block_counts = (1, 1, 1)",
             "inception_resnet_v2.filter_scale = 0.0625"]),
    "imagenet_inception_v3.gin": (
        75, ["inception_v3.image_size = 75", "inception_v3.filter_scale = 0.0625"]),
    "imagenet_nasnet_mobile.gin": (
        32, ["nasnet_a.image_size = 32", "nasnet_a.num_normal_cells = 1",
             "nasnet_a.penultimate_filters = 192", "nasnet_a.stem_filters = 8"]),
    "imagenet_mobilenet.gin": (32, ["mobilenet.image_size = 32", "mobilenet.alpha = 0.25"]),
}


def test_every_config_has_bindings():
    assert sorted(path.name for path in CONFIG_DIR.glob("imagenet_*.gin")) == sorted(
        TINY_MODEL_BINDINGS)


@pytest.mark.parametrize("config_name", [
    "imagenet_mobilenet.gin",
    pytest.param("imagenet_inception_resnet_v2.gin", marks=pytest.mark.slow),
    pytest.param("imagenet_inception_v3.gin", marks=pytest.mark.slow),
    pytest.param("imagenet_nasnet_mobile.gin", marks=pytest.mark.slow),
])
def test_config_trains_tiny_model(config_name, cifar10_dir, tmp_path):
    import gin
    from models import benchmark_lib

    image_size, model_bindings = TINY_MODEL_BINDINGS[config_name]
    write_cifar_image_folder(cifar10_dir, tmp_path / "data", 16, split="train")
    write_cifar_image_folder(cifar10_dir, tmp_path / "data", 8, split="validation")
    gin.parse_config_files_and_bindings([str(CONFIG_DIR / config_name)], model_bindings + [
        "run_benchmark.activations = ['swish']",
        "run_benchmark.seeds = [0]",
        "imagenet_benchmark_data.source = 'image_folder'",
        f"imagenet_benchmark_data.image_size = {image_size}",
        "imagenet_benchmark_data.batch_size = 4",
        "imagenet_benchmark_data.eval_batch_size = 4",
        "imagenet_benchmark_data.num_classes = 10",
        "imagenet_benchmark_data.train_examples = 16",
        "train_and_evaluate.train_epochs = None",
        "train_and_evaluate.train_steps = 2",
        "train_and_evaluate.progress_bar = False",
    ])
    markdown = benchmark_lib.run_benchmark(str(tmp_path / "run"), str(tmp_path / "data"))

    store = benchmark_lib.RunStore(str(tmp_path / "run" / benchmark_lib.DATABASE_NAME))
    try:
        records = store.records(benchmark_lib.hash_config(gin.config_str()))
    finally:
        store.close()
    assert [record.status for record in records] == ["finished"]
    assert records[0].steps == 2
    assert 0.0 <= records[0].test_score <= 1.0
    assert "swish" in markdown
