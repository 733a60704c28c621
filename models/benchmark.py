r"""Benchmark activation functions, as in "Searching for Activation Functions".

Trains every (model, activation, seed) of the grid that a Gin file sets, stores each run in
RUN_DIR/runs.sqlite, and writes the table of median test scores (accuracy for image models,
BLEU for translation) and the Swish-versus-baseline counts to RUN_DIR/results.md and CSV files. Rerunning the same command skips finished runs and resumes
an interrupted one from its last checkpoint. With --merge_run_dirs it trains nothing and writes
the tables over several run directories, e.g. the six CIFAR experiments together.

  python -m models.benchmark \
      --gin_file=gin_configs/benchmark/cifar10_resnet_cpu.gin \
      --run_dir=/tmp/benchmark_runs/cifar10_resnet_cpu \
      --data_dir=/path/to/cifar10   # contains cifar-10-batches-py/ or its .tar.gz

  python -m models.benchmark \
      --gin_file=gin_configs/benchmark/multi30k_transformer_cpu.gin \
      --run_dir=/tmp/benchmark_runs/multi30k --data_dir=/path/to/multi30k
"""

import os

from absl import app
from absl import flags
from absl import logging
import gin

from models import benchmark_lib
from models import training

_GIN_FILE = flags.DEFINE_multi_string("gin_file", [], "Gin config files, applied in order.")
_GIN_PARAM = flags.DEFINE_multi_string(
    "gin_param", [], "Gin bindings applied after the files, e.g. 'run_benchmark.seeds = [0]'.")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "Directory for the run store, checkpoints, "
                               "TensorBoard logs and result tables.", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Dataset directory passed to the data "
                                "function of the config; required unless --merge_run_dirs.")
_STRATEGY = flags.DEFINE_enum("strategy", "default", list(training.STRATEGIES),
                              "tf.distribute strategy for every run.")
_TPU = flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu.")
_MERGE_RUN_DIRS = flags.DEFINE_list(
    "merge_run_dirs", [], "Train nothing; write the tables over the finished runs of these run "
    "directories (comma-separated) into --run_dir. --data_dir and --gin_file are then unused.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _MERGE_RUN_DIRS.value:
        print(benchmark_lib.merge_run_dirs(_MERGE_RUN_DIRS.value, _RUN_DIR.value))
        return
    if not _DATA_DIR.value:
        raise app.UsageError("--data_dir is required: the directory that contains the dataset "
                             "(for CIFAR-10, cifar-10-batches-py/ or its .tar.gz; for Multi30k, "
                             "train.en.gz and its siblings).")
    # A config file can `include` its neighbours by bare name, from any working directory.
    for path in _GIN_FILE.value:
        gin.add_config_file_search_path(os.path.dirname(os.path.abspath(path)))
    gin.parse_config_files_and_bindings(_GIN_FILE.value, _GIN_PARAM.value)
    os.makedirs(_RUN_DIR.value, exist_ok=True)
    with open(os.path.join(_RUN_DIR.value, "config.gin"), "w") as f:
        f.write(gin.config_str())
    strategy = training.make_strategy(_STRATEGY.value, _TPU.value)
    markdown = benchmark_lib.run_benchmark(_RUN_DIR.value, _DATA_DIR.value, strategy)
    logging.info("Results:\n%s", markdown)
    print(markdown)


if __name__ == "__main__":
    app.run(main)
