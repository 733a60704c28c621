"""Tests for models/benchmark_lib.py and models/benchmark.py: store, tables, sign test, driver."""

import csv
import os
import pathlib
import sqlite3
import subprocess
import sys

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from models import benchmark_lib
from models import densenet  # pylint: disable=unused-import  (registers the Gin builders)
from models import preact_resnet
from models import training  # pylint: disable=unused-import
from models import train_translation
from models import transformer
from models import wide_resnet  # pylint: disable=unused-import
import swish_tf

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "gin_configs" / "benchmark"
PAPER_CONFIGS = (
    "cifar10_preact_resnet164.gin",
    "cifar100_preact_resnet164.gin",
    "cifar10_wide_resnet28_10.gin",
    "cifar100_wide_resnet28_10.gin",
    "cifar10_densenet_bc100_12.gin",
    "cifar100_densenet_bc100_12.gin",
)


def _record(model, activation, seed, accuracy, status="finished"):
    return benchmark_lib.RunRecord(model, activation, seed, "hash", status,
                                   test_score=accuracy)


# ----------------------------------------------------------------------------------------------
# Sign test and the better / equal / worse rule, against hand-worked values.


@pytest.mark.parametrize("wins, losses, expected", [
    (9, 0, 1 / 512),  # Swish against ReLU in the summary of "Searching for Activation Functions".
    (7, 1, 9 / 256),  # 7/1/1 against Leaky ReLU: (C(8,7) + C(8,8)) / 2^8.
    (6, 0, 1 / 64),  # 6/3/0 against PReLU: the 3 ties are dropped.
    (3, 3, 42 / 64),  # (C(6,3) + C(6,4) + C(6,5) + C(6,6)) / 2^6.
    (0, 0, 1.0),  # Only ties: no evidence either way.
    (0, 4, 1.0),
])
def test_sign_test_hand_worked_values(wins, losses, expected):
    assert benchmark_lib.sign_test_p_value(wins, losses) == pytest.approx(expected)


def test_sign_test_rejects_negative_counts():
    with pytest.raises(ValueError, match="-1"):
        benchmark_lib.sign_test_p_value(-1, 2)


def test_compare_hand_worked_nine_models():
    # Nine models; Swish wins 7, ties 1 (94.51 and 94.49 both round to 94.5) and loses 1.
    swish = {f"m{i}": 0.900 + i / 100 for i in range(9)}
    baseline = {f"m{i}": 0.890 + i / 100 for i in range(7)}
    swish["m7"], baseline["m7"] = 0.9451, 0.9449
    swish["m8"], baseline["m8"] = 0.80, 0.81
    result = benchmark_lib.compare_to_baseline(swish, baseline, "leaky_relu")
    assert (result.better, result.equal, result.worse) == (7, 1, 1)
    assert result.p_better == pytest.approx(9 / 256)
    assert result.p_worse == pytest.approx(255 / 256)
    assert result.verdict == "Swish better"


def test_compare_baseline_better_and_undecided():
    swish = {f"m{i}": 0.5 for i in range(5)}
    worse_everywhere = benchmark_lib.compare_to_baseline(swish, {m: 0.6 for m in swish}, "elu")
    assert (worse_everywhere.better, worse_everywhere.equal, worse_everywhere.worse) == (0, 0, 5)
    assert worse_everywhere.p_worse == pytest.approx(1 / 32)
    assert worse_everywhere.verdict == "baseline better"

    # Four wins out of four: p = 1/16 = 0.0625 is not below 0.05.
    four = benchmark_lib.compare_to_baseline({f"m{i}": 0.6 for i in range(4)},
                                             {f"m{i}": 0.5 for i in range(4)}, "relu")
    assert four.verdict == "no significant difference"


def test_compare_uses_only_shared_models():
    result = benchmark_lib.compare_to_baseline({"a": 0.9, "b": 0.9}, {"b": 0.8, "c": 0.99},
                                               "gelu")
    assert (result.better, result.equal, result.worse) == (1, 0, 0)


# ----------------------------------------------------------------------------------------------
# Tables.


def test_median_ignores_failed_runs():
    records = [_record("m", "relu", 0, 0.5), _record("m", "relu", 1, 0.7),
               _record("m", "relu", 2, 0.6), _record("m", "relu", 3, None, status="failed")]
    assert benchmark_lib.median_scores(records) == {("m", "relu"): (0.6, 3)}


def test_format_tables_rows():
    records = [_record("A", "relu", 0, 0.90), _record("A", "relu", 1, 0.92),
               _record("A", "swish", 0, 0.93), _record("A", "swish", 1, 0.95),
               _record("B", "relu", 0, 0.80), _record("B", "swish", 0, 0.79)]
    markdown, medians, comparison = benchmark_lib.format_tables(records, ["A", "B"],
                                                                ["relu", "swish"])
    assert medians[0] == ["activation", "A", "B", "seeds (min-max)"]
    assert medians[1] == ["relu", "91.0", "80.0", "1-2"]
    assert medians[2] == ["swish", "94.0", "79.0", "1-2"]
    assert comparison[1][:4] == ["relu", "1", "0", "1"]
    assert comparison[1][6] == "no significant difference"
    assert "| relu | 91.0 | 80.0 | 1-2 |" in markdown


def test_format_tables_marks_missing_cells():
    _, medians, _ = benchmark_lib.format_tables([_record("A", "relu", 0, 0.5)], ["A"],
                                                ["relu", "elu"])
    assert medians[2] == ["elu", "-", "0"]


# ----------------------------------------------------------------------------------------------
# Store and hashing.


def test_run_store_round_trip_in_wal_mode(tmp_path):
    path = str(tmp_path / "runs.sqlite")
    store = benchmark_lib.RunStore(path)
    record = benchmark_lib.RunRecord("m", "swish", 3, "abc", "finished", 0.9, 0.3, 10, 1.5)
    store.put(record)
    store.close()

    reopened = benchmark_lib.RunStore(path)
    assert reopened.get("m", "swish", 3, "abc") == record
    assert reopened.get("m", "swish", 3, "other") is None
    assert reopened.records("abc") == [record]
    reopened.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_run_store_renames_old_accuracy_column(tmp_path):
    path = tmp_path / benchmark_lib.DATABASE_NAME
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE runs (model TEXT NOT NULL, activation TEXT NOT NULL, seed INTEGER NOT "
            "NULL, config_hash TEXT NOT NULL, status TEXT NOT NULL, test_accuracy REAL, "
            "test_loss REAL, steps INTEGER, train_seconds REAL, error TEXT, updated_at REAL NOT "
            "NULL, PRIMARY KEY (model, activation, seed, config_hash))")
        connection.execute("INSERT INTO runs VALUES ('m', 'relu', 0, 'h', 'finished', 0.75, 0.5, "
                           "10, 2.0, NULL, 0.0)")
    store = benchmark_lib.RunStore(str(path))
    [record] = store.records()
    store.close()
    assert record.test_score == 0.75
    assert record.steps == 10


def test_format_tables_bleu_title():
    records = [_record("T", "relu", 0, 0.3681), _record("T", "swish", 0, 0.3712)]
    markdown, median_rows, _ = benchmark_lib.format_tables(records, ["T"], ["relu", "swish"],
                                                           score_title="Test BLEU")
    assert markdown.startswith("## Test BLEU, median over seeds")
    assert median_rows[1:] == [["relu", "36.8", "1"], ["swish", "37.1", "1"]]

def test_hash_ignores_grid_and_comments():
    base = ("run_benchmark.activations = \\\n    ['relu', 'swish']\nrun_benchmark.seeds = [0]\n"
            "sgd.momentum = 0.9\n")
    grid_changed = ("# A comment.\nrun_benchmark.activations = ['relu', 'elu', 'swish']\n"
                    "run_benchmark.seeds = [0, 1, 2]\nsgd.momentum = 0.9\n")
    training_changed = base.replace("0.9", "0.8")
    assert benchmark_lib.hash_config(base) == benchmark_lib.hash_config(grid_changed)
    assert benchmark_lib.hash_config(base) != benchmark_lib.hash_config(training_changed)


def test_run_directory_name_for_expressions():
    assert benchmark_lib.run_directory_name("swish_1") == "swish_1"
    name = benchmark_lib.run_directory_name("max(x, sigmoid(x))")
    assert name.startswith("max_x_sigmoid_x_")
    assert os.sep not in name
    assert name != benchmark_lib.run_directory_name("max(x, sigmoid(x)) ")
    assert benchmark_lib.run_directory_name("ResNet-164 C10").startswith("ResNet_164_C10_")


def _fill_run_dir(run_dir, config, records):
    """Write config.gin and store records under the hash of that config."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "config.gin"), "w") as f:
        f.write(config)
    store = benchmark_lib.RunStore(os.path.join(run_dir, benchmark_lib.DATABASE_NAME))
    for model, activation, seed, accuracy, config_hash in records:
        config_hash = config_hash or benchmark_lib.hash_config(config)
        store.put(benchmark_lib.RunRecord(model, activation, seed, config_hash, "finished",
                                          test_score=accuracy))
    store.close()


def test_merge_run_dirs_combines_experiments(tmp_path):
    _fill_run_dir(tmp_path / "c10", "sgd.momentum = 0.9\n", [
        ("R C10", "relu", 0, 0.90, None), ("R C10", "swish", 0, 0.92, None),
        ("R C10", "swish", 1, 0.10, "stale_config_hash")])
    _fill_run_dir(tmp_path / "c100", "sgd.momentum = 0.8\n", [
        ("R C100", "relu", 0, 0.70, None), ("R C100", "swish", 0, 0.71, None)])

    markdown = benchmark_lib.merge_run_dirs([str(tmp_path / "c10"), str(tmp_path / "c100")],
                                            str(tmp_path / "merged"), ["relu", "swish"])
    assert "| activation | R C10 | R C100 | seeds (min-max) |" in markdown
    assert "| swish | 92.0 | 71.0 | 1 |" in markdown  # The stale run is left out.
    with open(tmp_path / "merged" / "comparison.csv") as f:
        relu_row = list(csv.reader(f))[1]
    assert relu_row[:4] == ["relu", "2", "0", "0"]


def test_merge_run_dirs_rejects_repeated_model(tmp_path):
    for name in ("a", "b"):
        _fill_run_dir(tmp_path / name, "x = 1\n", [("same", "relu", 0, 0.5, None)])
    with pytest.raises(ValueError, match="same"):
        benchmark_lib.merge_run_dirs([str(tmp_path / "a"), str(tmp_path / "b")],
                                     str(tmp_path / "merged"))


def test_merge_run_dirs_rejects_mixed_scores(tmp_path):
    _fill_run_dir(tmp_path / "images", "x = 1\n", [("R", "relu", 0, 0.9, None)])
    _fill_run_dir(tmp_path / "translation", "run_benchmark.score_title = 'Test BLEU'\n",
                  [("T", "relu", 0, 0.3, None)])
    with pytest.raises(ValueError, match="Test BLEU"):
        benchmark_lib.merge_run_dirs([str(tmp_path / "images"), str(tmp_path / "translation")],
                                     str(tmp_path / "merged"))


def test_merge_run_dirs_keeps_bleu_title(tmp_path):
    _fill_run_dir(tmp_path / "translation", "run_benchmark.score_title = 'Test BLEU'\n",
                  [("T", "relu", 0, 0.3, None)])
    markdown = benchmark_lib.merge_run_dirs([str(tmp_path / "translation")],
                                            str(tmp_path / "merged"), ["relu"])
    assert markdown.startswith("## Test BLEU, median over seeds")

def test_merge_run_dirs_rejects_config_without_runs(tmp_path):
    _fill_run_dir(tmp_path / "edited", "x = 2\n", [("R", "relu", 0, 0.9, "old_config_hash")])
    with pytest.raises(ValueError, match="matches no run"):
        benchmark_lib.merge_run_dirs([str(tmp_path / "edited")], str(tmp_path / "merged"))

def test_merge_run_dirs_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.gin"):
        benchmark_lib.merge_run_dirs([str(tmp_path / "absent")], str(tmp_path / "merged"))


# ----------------------------------------------------------------------------------------------
# The driver on real CIFAR-10 images.

_TINY_TRAINING = """
    train_and_evaluate.train_steps = 2
    train_and_evaluate.progress_bar = False
    cifar_data.batch_size = 4
    cifar_data.test_examples = 8
"""


def _nan_model(activation, num_classes):
    del activation
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    x = keras.layers.Dense(num_classes)(x)
    outputs = keras.layers.Lambda(lambda logits: logits * np.float32("nan"))(x)
    return keras.Model(inputs, outputs)


def test_run_benchmark_resumes_and_records(cifar10_dir, tmp_path):
    gin.parse_config(_TINY_TRAINING)
    data_calls = []

    def data_fn(data_dir, seed):
        data_calls.append(seed)
        return benchmark_lib.cifar_data(data_dir, seed)

    grid = dict(models={"tiny": preact_resnet.preact_resnet_tiny}, activations=["relu", "swish"],
                data_fn=data_fn)
    run_dir = str(tmp_path)
    markdown = benchmark_lib.run_benchmark(run_dir, str(cifar10_dir), seeds=[0], **grid)
    assert data_calls == [0]
    assert "| relu |" in markdown
    store = benchmark_lib.RunStore(os.path.join(run_dir, benchmark_lib.DATABASE_NAME))
    records = store.records()
    store.close()
    assert [(r.activation, r.seed, r.status, r.steps) for r in records] == [
        ("relu", 0, "finished", 2), ("swish", 0, "finished", 2)]
    # 8 test images: every accuracy is a multiple of 1/8.
    assert all(r.test_score * 8 == pytest.approx(round(r.test_score * 8)) for r in records)

    # A rerun with one more seed trains only that seed's runs.
    benchmark_lib.run_benchmark(run_dir, str(cifar10_dir), seeds=[0, 1], **grid)
    assert data_calls == [0, 1]
    with open(os.path.join(run_dir, "medians.csv")) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["activation", "tiny", "seeds (min-max)"]
    assert [row[0] for row in rows[1:]] == ["relu", "swish"]
    assert [row[2] for row in rows[1:]] == ["2", "2"]
    for name in ("results.md", "comparison.csv", "runs.csv"):
        assert os.path.getsize(os.path.join(run_dir, name)) > 0


def test_run_benchmark_records_failed_run(cifar10_dir, tmp_path):
    gin.parse_config(_TINY_TRAINING + "train_and_evaluate.log_every_steps = 1")
    benchmark_lib.run_benchmark(str(tmp_path), str(cifar10_dir), models={"nan": _nan_model},
                                activations=["relu"], seeds=[0])
    store = benchmark_lib.RunStore(str(tmp_path / benchmark_lib.DATABASE_NAME))
    [record] = store.records()
    store.close()
    assert record.status == "failed"
    assert "training loss is nan" in record.error


def test_run_benchmark_rejects_unknown_activation(tmp_path):
    with pytest.raises(ValueError, match="relu6"):
        benchmark_lib.run_benchmark(str(tmp_path), "unused", models={"tiny": _nan_model},
                                    activations=["relu6"], seeds=[0])


def test_cifar_data_rejects_unknown_dataset(cifar10_dir):
    with pytest.raises(ValueError, match="cifar1000"):
        benchmark_lib.cifar_data(str(cifar10_dir), 0, dataset="cifar1000")



_TINY_TRANSLATION = """
    build_transformer.variant = "tiny"
    train_translation.train_steps = 2
    train_translation.max_tokens = 256
    train_translation.max_length = 64
    train_translation.vocab_size = 600
    train_translation.eval_every = 2
    train_translation.checkpoint_every = 2
    train_translation.log_every = 1
    train_translation.decode_batch_size = 8
"""


def test_run_benchmark_trains_translators(multi30k_slice, tmp_path):
    gin.parse_config(_TINY_TRANSLATION)
    grid = dict(models={"tiny": transformer.build_transformer}, activations=["relu", "swish"],
                seeds=[0], data_fn=benchmark_lib.translation_data_dir,
                trainer=benchmark_lib.train_translator, score_title="Test BLEU")
    markdown = benchmark_lib.run_benchmark(str(tmp_path), str(multi30k_slice), **grid)
    assert markdown.startswith("## Test BLEU, median over seeds")
    store = benchmark_lib.RunStore(str(tmp_path / benchmark_lib.DATABASE_NAME))
    records = store.records()
    store.close()
    assert [(r.activation, r.status, r.steps) for r in records] == [
        ("relu", "finished", 2), ("swish", "finished", 2)]

    # Each run also keeps the translation trainer's own row, with the grid's activation.
    run_rows = []
    for record in records:
        [run_database] = tmp_path.glob(
            f"*/tiny/{record.activation}/seed_0/{train_translation.RESULTS_DATABASE}")
        with sqlite3.connect(run_database) as connection:
            run_rows += connection.execute("SELECT activation, bleu FROM runs").fetchall()
    assert [row[0] for row in run_rows] == ["relu", "swish"]
    assert [r.test_score for r in records] == [bleu / 100 for _, bleu in run_rows]

    # A rerun finds both runs finished and trains nothing.
    benchmark_lib.run_benchmark(str(tmp_path), str(multi30k_slice), **grid)
    with sqlite3.connect(run_database) as connection:
        assert connection.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)


def test_train_translator_rejects_distribution(multi30k_slice, tmp_path):
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with pytest.raises(NotImplementedError, match="--strategy=default"):
        benchmark_lib.train_translator(str(tmp_path), transformer.build_transformer, "relu", 0,
                                       str(multi30k_slice), strategy)


def test_translation_data_dir_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent"):
        benchmark_lib.translation_data_dir(str(tmp_path / "absent"), 0)


@pytest.mark.parametrize("name, variant, train_steps, activations", [
    ("multi30k_transformer_cpu.gin", "small", 2000, ["relu", "swish_1", "swish"]),
    ("wmt14_transformer_base.gin", "base", 300_000, list(swish_tf.BENCHMARK_ACTIVATIONS)),
])
def test_translation_benchmark_configs(name, variant, train_steps, activations):
    gin.add_config_file_search_path(str(CONFIG_DIR))
    gin.parse_config_file(str(CONFIG_DIR / name))
    assert gin.query_parameter("build_transformer.variant") == variant
    assert gin.query_parameter("train_translation.train_steps") == train_steps
    assert gin.query_parameter("run_benchmark.activations") == activations
    assert gin.query_parameter("run_benchmark.score_title") == "Test BLEU"
    assert gin.query_parameter("run_benchmark.trainer").selector.endswith("train_translator")

@pytest.mark.slow
def test_command_line_writes_tables(cifar10_dir, tmp_path):
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "models.benchmark",
        f"--gin_file={CONFIG_DIR / 'cifar10_resnet_cpu.gin'}",
        "--gin_param=run_benchmark.activations = ['relu', 'swish']",
        "--gin_param=run_benchmark.seeds = [0]",
        "--gin_param=resnet_cifar.depth = 8",
        "--gin_param=resnet_cifar.base_filters = 4",
        "--gin_param=train_and_evaluate.train_steps = 2",
        "--gin_param=cosine.warmup_steps = 1",
        "--gin_param=cifar_data.batch_size = 4",
        "--gin_param=cifar_data.test_examples = 8",
        f"--run_dir={run_dir}",
        f"--data_dir={cifar10_dir}",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| swish |" in result.stdout
    assert (run_dir / "config.gin").is_file()
    assert (run_dir / "results.md").read_text() in result.stdout
    with open(run_dir / "comparison.csv") as f:
        [header, relu_row] = list(csv.reader(f))
    assert header[:4] == ["baseline", "better", "equal", "worse"]
    assert relu_row[0] == "relu"
    # One model: it counts once, as better, equal or worse.
    assert sum(int(count) for count in relu_row[1:4]) == 1


# ----------------------------------------------------------------------------------------------
# The paper-scale configs.


def _parse_paper_config(name: str, extra_bindings: str = "") -> None:
    gin.add_config_file_search_path(str(CONFIG_DIR))
    gin.parse_config_files_and_bindings([str(CONFIG_DIR / name)], [extra_bindings])


@pytest.mark.parametrize("name, epochs, batch_size, weight_decay, nesterov, dataset", [
    ("cifar10_preact_resnet164.gin", 164, 128, 1e-4, False, "cifar10"),
    ("cifar100_preact_resnet164.gin", 164, 128, 1e-4, False, "cifar100"),
    ("cifar10_wide_resnet28_10.gin", 200, 128, 5e-4, True, "cifar10"),
    ("cifar100_wide_resnet28_10.gin", 200, 128, 5e-4, True, "cifar100"),
    ("cifar10_densenet_bc100_12.gin", 300, 64, 1e-4, True, "cifar10"),
    ("cifar100_densenet_bc100_12.gin", 300, 64, 1e-4, True, "cifar100"),
])
def test_paper_config_hyperparameters(name, epochs, batch_size, weight_decay, nesterov, dataset):
    _parse_paper_config(name)
    assert gin.query_parameter("train_and_evaluate.train_epochs") == epochs
    assert gin.query_parameter("cifar_data.batch_size") == batch_size
    assert gin.query_parameter("train_and_evaluate.weight_decay") == weight_decay
    assert gin.query_parameter("sgd.nesterov") == nesterov
    assert gin.query_parameter("sgd.momentum") == 0.9
    assert gin.query_parameter("piecewise_constant.initial_learning_rate") == 0.1
    assert gin.query_parameter("cifar_data.dataset") == dataset
    assert gin.query_parameter("run_benchmark.seeds") == [0, 1, 2, 3, 4]
    assert len(gin.query_parameter("run_benchmark.activations")) == 9


def test_paper_schedules_in_steps():
    # ResNet-164: 391 steps per epoch at batch 128, /10 at epochs 81 and 122 of 164.
    _parse_paper_config("cifar10_preact_resnet164.gin")
    schedule = training.piecewise_constant(164 * 391, 391)
    assert float(schedule(81 * 391 - 1)) == pytest.approx(0.1)
    assert float(schedule(81 * 391 + 1)) == pytest.approx(0.01)
    assert float(schedule(122 * 391 + 1)) == pytest.approx(0.001)
    gin.clear_config()

    # WRN-28-10: x0.2 at epochs 60, 120 and 160 of 200.
    _parse_paper_config("cifar10_wide_resnet28_10.gin")
    schedule = training.piecewise_constant(200 * 391, 391)
    assert float(schedule(160 * 391 + 1)) == pytest.approx(0.1 * 0.2**3)
    gin.clear_config()

    # DenseNet-BC: 782 steps per epoch at batch 64, /10 at 50% and 75% of 300 epochs.
    _parse_paper_config("cifar10_densenet_bc100_12.gin")
    schedule = training.piecewise_constant(300 * 782, 782)
    assert float(schedule(150 * 782 - 1)) == pytest.approx(0.1)
    assert float(schedule(225 * 782 + 1)) == pytest.approx(0.001)


@pytest.mark.slow
@pytest.mark.parametrize("name", PAPER_CONFIGS[::2])
def test_paper_config_trains_one_step(name, cifar10_dir, tmp_path):
    # One step on a batch of 2 through the real driver, builder and hyperparameters.
    _parse_paper_config(name, """
        train_and_evaluate.train_epochs = None
        train_and_evaluate.train_steps = 1
        train_and_evaluate.progress_bar = False
        cifar_data.batch_size = 2
        cifar_data.test_examples = 2
        run_benchmark.activations = ["swish"]
        run_benchmark.seeds = [0]
    """)
    benchmark_lib.run_benchmark(str(tmp_path), str(cifar10_dir))
    store = benchmark_lib.RunStore(str(tmp_path / benchmark_lib.DATABASE_NAME))
    [record] = store.records()
    store.close()
    assert record.status == "finished"
    assert record.steps == 1
