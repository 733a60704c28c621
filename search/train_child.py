r"""Train one child network with a candidate activation and print its result as one JSON line.

  python -m search.train_child --activation="x * sigmoid(beta * x)" --data_dir=/path/to/cifar10

Without --gin_file the child trains on the quick CPU budget (`gin_configs/child/quick_cpu.gin`,
a few minutes); pass `--gin_file=gin_configs/child/paper.gin` for the 10,000 steps of
"Searching for Activation Functions".

`--data_dir` takes the `cifar-10-batches-py` directory, a directory that contains it or the
official `cifar-10-python.tar.gz`, or the archive itself. Hyperparameters come from Gin
(`train_child.*`, `resnet_cifar.*`, `configure_threads.*`, `get_strategy.*`); Gin file paths
may be relative to the working directory or to the repository root. The only line on stdout is the result record in strict JSON, and logs go
to stderr.
"""

from absl import app
from absl import flags
from absl import logging
import gin

from search import child_trainer
from swish_tf import gin_utils
from swish_tf.data import cifar

def _define_flags() -> None:
    """Define the command-line flags.

    Called only when the module runs as a program, so importing it next to other entry points,
    as the tests do, defines no duplicate flags.
    """
    flags.DEFINE_string(
        "activation", None, "Activation of the child: a registry name such as 'relu' or an "
        "expression such as 'max(x, sigmoid(x))'.", required=True)
    flags.DEFINE_string(
        "data_dir", None, "CIFAR location: the official python layout (directory or .tar.gz), "
        "or with --tfds a prepared tensorflow-datasets data_dir.", required=True)
    flags.DEFINE_enum("dataset", "cifar10", ["cifar10", "cifar100"], "Dataset.")
    flags.DEFINE_bool("tfds", False, "Read --data_dir as a tensorflow-datasets data_dir.")
    flags.DEFINE_integer("seed", 0, "Seed of initialization, shuffling and augmentation.")
    flags.DEFINE_integer("split_seed", 0, "Seed of the validation split; keep it fixed across "
                         "the children of a search.")
    flags.DEFINE_multi_string("gin_file", ["gin_configs/child/quick_cpu.gin"],
                              "Gin config files, applied in order.")
    flags.DEFINE_multi_string("gin_param", [], "Gin bindings applied after the files, e.g. "
                              "'train_child.train_steps=100'.")


def _parse_gin(files: list[str], bindings: list[str]) -> None:
    try:
        gin_utils.parse_gin(files, bindings)
    except gin_utils.GinConfigError as e:
        raise app.UsageError(f"{e} Configurable names here are train_child, configure_threads, "
                             "get_strategy and resnet_cifar.") from e


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    _parse_gin(values.gin_file, values.gin_param)
    child_trainer.configure_threads()  # Before any TensorFlow op runs.
    if values.tfds:
        data = cifar.load_tfds(values.dataset, data_dir=values.data_dir, seed=values.split_seed)
    elif values.dataset == "cifar100":
        data = cifar.load_cifar100(values.data_dir, seed=values.split_seed)
    else:
        data = cifar.load_cifar10(values.data_dir, seed=values.split_seed)
    result = child_trainer.train_child(values.activation, data, seed=values.seed)
    logging.info("Operative Gin config:\n%s", gin.operative_config_str())
    print(result.to_json(), flush=True)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
