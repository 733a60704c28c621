r"""Search for activation functions on CIFAR, as in "Searching for Activation Functions".

Usage:
    python -m search.run --gin_file=gin_configs/search/quick_cpu.gin \
        --data_dir=/path/to/cifar-10-batches-py --run_dir=runs/quick

Rerunning the same command resumes the search in --run_dir. Everything that defines the search
(space, algorithm, child budget) comes from Gin; the flags choose paths and resources.
"""

import os
import time

from absl import app
from absl import flags
from absl import logging
import gin

from search import executors, report, runner
from swish_tf import gin_utils

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("gin_file", [], "Gin files, parsed in order.")
flags.DEFINE_multi_string("gin_param", [], "Gin bindings, applied after the files.")
flags.DEFINE_string("data_dir", None, "CIFAR data: the official python directory "
                    "(cifar-10-batches-py), its parent, or the .tar.gz archive.")
flags.DEFINE_string("run_dir", None, "Directory of the run: database, checkpoints, logs. "
                    "Rerun with the same directory to resume.")
flags.DEFINE_enum("dataset", "cifar10", ["cifar10", "cifar100"], "Dataset of the children.")
flags.DEFINE_enum("executor", "local", ["local", "ray"],
                  "Where children train: local worker processes, or a Ray cluster.")
flags.DEFINE_string("ray_address", None,
                    "Ray cluster address (for example 'auto'); unset starts a local Ray.")
flags.DEFINE_integer("num_workers", None, "Parallel children; unset sizes it from the machine "
                     "(one per GPU, else one single-thread worker per CPU core).")
flags.DEFINE_boolean("allow_config_change", False,
                     "Continue a run directory whose search used another configuration.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    gin_utils.parse_gin(FLAGS.gin_file, FLAGS.gin_param)
    config_text = gin.config_str()
    os.makedirs(FLAGS.run_dir, exist_ok=True)
    with open(os.path.join(FLAGS.run_dir, "config.gin"), "w") as f:
        f.write(config_text)

    worker_config = executors.WorkerConfig(
        gin_files=tuple(gin_utils.resolve_gin_file(path) for path in FLAGS.gin_file),
        gin_bindings=tuple(FLAGS.gin_param), data_dir=os.path.abspath(FLAGS.data_dir),
        dataset=FLAGS.dataset)

    def make_executor():
        if FLAGS.executor == "ray":
            return executors.RayExecutor(worker_config, address=FLAGS.ray_address,
                                         num_workers=FLAGS.num_workers)
        return executors.LocalExecutor(worker_config, num_workers=FLAGS.num_workers)

    search = runner.SearchRunner(FLAGS.run_dir, make_executor,
                                 allow_config_change=FLAGS.allow_config_change,
                                 config_text=config_text)
    logging.info("Gin configuration:\n%s", config_text)
    started = time.monotonic()
    summary = search.run()
    with open(os.path.join(FLAGS.run_dir, "operative_config.gin"), "w") as f:
        f.write(gin.operative_config_str())

    print(report.write_report(FLAGS.run_dir))
    print(f"\nSearch finished in {time.monotonic() - started:.0f} s: {summary.proposals} "
          f"proposals, {summary.trained} children trained, {summary.duplicates} duplicates "
          f"avoided, {summary.invalid} invalid rejected, {summary.references} reference "
          f"children; {summary.children_per_hour:.1f} children/hour in this run. Best: "
          f"{summary.best_expression} ({summary.best_reward:.4f}).")


if __name__ == "__main__":
    flags.mark_flags_as_required(["data_dir", "run_dir"])
    app.run(main)
