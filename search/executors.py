"""Executors that train children in parallel workers: local processes or a Ray cluster.

Workers are long-lived: each imports TensorFlow, reads the Gin configuration and loads the data
once, then trains one child after another (`train_child` clears the Keras session between
them). The search submits tasks and polls for finished ones. A worker that crashes or outlives
its task's hard deadline costs only its own task, which comes back with status `error` or
`timeout`, and the executor starts a replacement.
"""

import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import threading
import time
import traceback
from typing import Any

from absl import logging
import gin


@dataclasses.dataclass(frozen=True)
class Task:
    """One child to train.

    Attributes:
        task_id: identifier chosen by the search, returned with the result.
        expression: activation expression or registry name.
        seed: seed of the child.
        train_steps: budget override; None keeps the configured `train_child.train_steps`.
    """

    task_id: int
    expression: str
    seed: int
    train_steps: int | None = None


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """A finished task: the child's result record (`ChildResult.to_dict()`) and the worker."""

    task_id: int
    result: dict[str, Any]
    worker: str


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    """What every worker needs to start: the configuration and the data location.

    Attributes:
        gin_files: Gin files to parse, in order.
        gin_bindings: extra Gin bindings, applied after the files.
        data_dir: CIFAR data as accepted by `swish_tf.data.cifar.load_cifar10`.
        dataset: "cifar10" or "cifar100".
        validation_seed: seed of the held-out validation split.
        threads: intra-op and inter-op threads per worker; 0 lets TensorFlow choose.
    """

    gin_files: tuple[str, ...]
    gin_bindings: tuple[str, ...]
    data_dir: str
    dataset: str = "cifar10"
    validation_seed: int = 0
    threads: int = 0


def failure_result(task: Task, status: str, reason: str, wall_time_s: float) -> dict[str, Any]:
    """Build the result record of a task whose worker died or hung."""
    return {"activation": task.expression, "status": status, "reason": reason,
            "val_accuracy": None, "train_loss": None, "steps": 0, "images_per_sec": 0.0,
            "wall_time_s": wall_time_s, "seed": task.seed}


class ChildWorker:
    """State of one worker: configured TensorFlow, parsed Gin and loaded data."""

    def __init__(self, config: WorkerConfig):
        from search import child_trainer  # pylint: disable=import-outside-toplevel
        from swish_tf import gin_utils  # pylint: disable=import-outside-toplevel
        from swish_tf.data import cifar  # pylint: disable=import-outside-toplevel

        gin_utils.parse_gin(config.gin_files, config.gin_bindings)
        # Threads must be set before TensorFlow runs its first op; parsing Gin runs none. At
        # least two inter-op threads: with one, a training loop that waits on its input
        # iterator was seen to deadlock (TF 2.21, CPU), and waiting threads cost no CPU.
        child_trainer.configure_threads(config.threads, max(2, config.threads))
        load = cifar.load_cifar10 if config.dataset == "cifar10" else cifar.load_cifar100
        self.data = load(config.data_dir, seed=config.validation_seed)
        self.train_child = child_trainer.train_child

    def run(self, task: Task) -> dict[str, Any]:
        overrides = {} if task.train_steps is None else {"train_steps": task.train_steps}
        return self.train_child(task.expression, self.data, seed=task.seed, **overrides).to_dict()


def _exit_with_parent(poll_s: float = 2.0) -> None:
    """End this process soon after the search process dies, even in the middle of a child.

    Without this, a worker of a search killed with SIGKILL would train its child to the end
    and compete for the CPU with the resumed search.
    """
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(0)  # pylint: disable=protected-access

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker_main(config: WorkerConfig, tasks, results, name: str) -> None:
    """Entry point of a local worker process: train tasks until a None arrives.

    `tasks` and `results` are this worker's own pipe ends, so a worker killed in the middle of
    a write can break only its own channel, never another worker's.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _exit_with_parent()
    try:
        worker = ChildWorker(config)
    except Exception as error:  # pylint: disable=broad-except
        results.send(("startup_error", f"{type(error).__name__}: {error}\n"
                      + traceback.format_exc()))
        return
    results.send(("ready", ""))
    while True:
        try:
            task = tasks.recv()
        except EOFError:
            return  # The search process is gone.
        if task is None:
            return
        results.send(("result", TaskResult(task.task_id, worker.run(task), name)))


def visible_gpus() -> list[str]:
    """Return the ids of the GPUs this process may use, as CUDA_VISIBLE_DEVICES names them."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    return [str(i) for i in range(len(tf.config.list_physical_devices("GPU")))]


def default_num_workers() -> int:
    """One worker per GPU where GPUs exist, else one single-thread worker per CPU core.

    On a 2-core CPU machine, two single-thread workers trained 15-26% more images per second in
    total than one two-thread worker (ResNet-20, TF 2.21), so CPU workers get one thread each.
    """
    gpus = visible_gpus()
    if gpus:
        return len(gpus)
    return _cpu_count()


def default_task_timeout() -> float:
    """Return the hard per-task limit: 1.5 x `train_child.time_limit_s` + 60 s, else 12 hours.

    The child's own limit stops training cleanly between training loops; the hard limit is for
    a worker that hangs inside TensorFlow or never returns.
    """
    try:
        limit = gin.query_parameter("train_child.time_limit_s")
    except ValueError:
        limit = None
    return 1.5 * float(limit) + 60.0 if limit else 12 * 3600.0


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class StartupError(RuntimeError):
    """A worker could not start (bad data path, bad Gin binding): no child can be trained."""


@gin.configurable(denylist=["worker_config"])
class LocalExecutor:
    """Child training in local worker processes.

    Args:
        worker_config: configuration shared by all workers.
        num_workers: worker processes; None for `default_num_workers()`.
        gpus_per_worker: 1 shows worker i only GPU i (modulo the GPU count); 0 hides the GPUs
            from the workers.
        task_timeout_s: hard limit per task; a worker past it is killed and its task reported
            as `timeout`. None derives it from `train_child.time_limit_s` (see
            `default_task_timeout`).
        startup_timeout_s: time a worker may take to import TensorFlow and load the data.
    """

    def __init__(self, worker_config: WorkerConfig, num_workers: int | None = None,
                 gpus_per_worker: int = 1, task_timeout_s: float | None = None,
                 startup_timeout_s: float = 600.0):
        self.num_workers = num_workers or default_num_workers()
        self.gpus = visible_gpus()
        if not worker_config.threads and not self.gpus:
            # Share the CPU cores out among the workers.
            worker_config = dataclasses.replace(
                worker_config, threads=max(1, _cpu_count() // self.num_workers))
        self.worker_config = worker_config
        self.gpus_per_worker = gpus_per_worker
        self.task_timeout_s = task_timeout_s or default_task_timeout()
        self.startup_timeout_s = startup_timeout_s
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[str, dict[str, Any]] = {}
        self.finished: list[TaskResult] = []
        self.serial = 0
        for index in range(self.num_workers):
            self._start_worker(index)
        self._wait_until_ready()

    @property
    def capacity(self) -> int:
        return self.num_workers

    def _start_worker(self, index: int) -> None:
        name = f"local-{index}-{self.serial}"
        self.serial += 1
        task_reader, task_writer = self.context.Pipe(duplex=False)
        result_reader, result_writer = self.context.Pipe(duplex=False)
        environment_backup = os.environ.get("CUDA_VISIBLE_DEVICES")
        if self.gpus and self.gpus_per_worker == 1:
            os.environ["CUDA_VISIBLE_DEVICES"] = self.gpus[index % len(self.gpus)]
        elif self.gpus and self.gpus_per_worker == 0:
            os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
        try:
            process = self.context.Process(
                target=_worker_main, args=(self.worker_config, task_reader, result_writer, name),
                name=name, daemon=True)
            process.start()
        finally:
            if environment_backup is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES", None)
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = environment_backup
        # The parent keeps only its own ends, so a dead worker shows up as EOF.
        task_reader.close()
        result_writer.close()
        self.workers[name] = {"index": index, "process": process, "tasks": task_writer,
                              "results": result_reader, "task": None, "started": None,
                              "ready": False, "spawned": time.monotonic()}
        logging.info("Started worker %s (pid %d).", name, process.pid)

    def _wait_until_ready(self) -> None:
        while not all(worker["ready"] for worker in self.workers.values()):
            self._drain(timeout=1.0)
            for name, worker in list(self.workers.items()):
                if worker["ready"]:
                    continue
                if not worker["process"].is_alive():
                    raise StartupError(f"Worker {name} exited with code "
                                       f"{worker['process'].exitcode} during startup.")
                if time.monotonic() - worker["spawned"] > self.startup_timeout_s:
                    raise StartupError(f"Worker {name} did not start within "
                                       f"{self.startup_timeout_s:.0f} s.")

    def _drain(self, timeout: float) -> None:
        """Read every message that arrives within `timeout` seconds."""
        channels = {worker["results"]: name for name, worker in self.workers.items()}
        for channel in multiprocessing.connection.wait(list(channels), timeout=timeout):
            name = channels[channel]
            worker = self.workers[name]
            try:
                kind, payload = channel.recv()
            except (EOFError, OSError):
                continue  # The worker died; _check_workers reports and replaces it.
            if kind == "startup_error":
                self.shutdown()
                raise StartupError(f"Worker {name} failed to start: {payload}")
            if kind == "ready":
                worker["ready"] = True
            elif kind == "result" and worker["task"] is not None \
                    and worker["task"].task_id == payload.task_id:
                worker["task"] = None
                worker["started"] = None
                self.finished.append(payload)

    def idle_slots(self) -> int:
        return sum(1 for worker in self.workers.values()
                   if worker["ready"] and worker["task"] is None)

    def submit(self, task: Task) -> None:
        for worker in self.workers.values():
            if worker["ready"] and worker["task"] is None:
                worker["task"] = task
                worker["started"] = time.monotonic()
                worker["tasks"].send(task)
                return
        raise RuntimeError("No idle worker; call submit() only while idle_slots() > 0.")

    def poll(self, timeout: float = 1.0) -> list[TaskResult]:
        """Wait up to `timeout` seconds; return tasks finished since the last call."""
        self._drain(timeout)
        self._check_workers()
        finished, self.finished = self.finished, []
        return finished

    def _check_workers(self) -> None:
        now = time.monotonic()
        for name, worker in list(self.workers.items()):
            task, process = worker["task"], worker["process"]
            if not process.is_alive():
                if task is not None:
                    reason = (f"worker process {name} exited with code {process.exitcode} while "
                              "training this child")
                    logging.error("Child %r: %s; starting a replacement worker.",
                                  task.expression, reason)
                    self.finished.append(TaskResult(task.task_id, failure_result(
                        task, "error", reason, now - worker["started"]), name))
                else:
                    logging.error("Idle worker %s exited with code %s; replacing it.", name,
                                  process.exitcode)
                self._replace(name)
            elif (task is not None and self.task_timeout_s is not None
                  and now - worker["started"] > self.task_timeout_s):
                reason = (f"worker {name} exceeded the task limit of {self.task_timeout_s:.0f} s "
                          "and was killed")
                logging.error("Child %r: %s; starting a replacement worker.", task.expression,
                              reason)
                process.kill()
                process.join(timeout=10)
                self.finished.append(TaskResult(task.task_id, failure_result(
                    task, "timeout", reason, now - worker["started"]), name))
                self._replace(name)

    def _replace(self, name: str) -> None:
        worker = self.workers.pop(name)
        worker["tasks"].close()
        worker["results"].close()
        self._start_worker(worker["index"])

    def busy(self) -> int:
        return sum(1 for worker in self.workers.values() if worker["task"] is not None)

    def shutdown(self) -> None:
        for worker in self.workers.values():
            try:
                worker["tasks"].send(None)
            except (OSError, ValueError):
                pass  # The worker is already gone.
        deadline = time.monotonic() + 5.0
        for worker in self.workers.values():
            worker["process"].join(timeout=max(0.0, deadline - time.monotonic()))
            if worker["process"].is_alive():
                worker["process"].kill()
                worker["process"].join(timeout=5.0)
            worker["tasks"].close()
            worker["results"].close()
        self.workers.clear()


@gin.configurable(denylist=["worker_config"])
class RayExecutor:
    """Child training on Ray actors, one child per actor at a time, on one machine or a cluster.

    The data directory must be readable at the same path on every node.

    Args:
        worker_config: configuration shared by all workers.
        address: Ray cluster address for `ray.init` ("auto", "ray://host:10001"); None starts a
            local Ray instance.
        num_workers: actors; None for one per CPU of the cluster divided by `cpus_per_worker`.
        cpus_per_worker: CPUs reserved per actor; also its TensorFlow thread count.
        gpus_per_worker: GPUs reserved per actor.
        task_timeout_s: hard limit per task; an actor past it is killed and replaced. None
            derives it from `train_child.time_limit_s` (see `default_task_timeout`).
    """

    def __init__(self, worker_config: WorkerConfig, address: str | None = None,
                 num_workers: int | None = None, cpus_per_worker: int = 1,
                 gpus_per_worker: float = 0.0, task_timeout_s: float | None = None):
        import ray  # pylint: disable=import-outside-toplevel

        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self.worker_config = dataclasses.replace(worker_config, threads=cpus_per_worker)
        if num_workers is None:
            num_workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_worker)
        self.num_workers = num_workers
        self.task_timeout_s = task_timeout_s or default_task_timeout()
        self.actor_class = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker,
                                      max_restarts=0)(_RayWorker)
        self.actors: dict[str, Any] = {}
        self.running: dict[Any, tuple[str, Task, float]] = {}
        self.serial = 0
        for _ in range(num_workers):
            self._start_actor()
        ready = [actor.ping.remote() for actor in self.actors.values()]
        try:
            ray.get(ready)
        except ray.exceptions.RayError as error:
            raise StartupError(f"A Ray worker failed to start: {error}") from error

    @property
    def capacity(self) -> int:
        return self.num_workers

    def _start_actor(self) -> None:
        name = f"ray-{self.serial}"
        self.serial += 1
        self.actors[name] = self.actor_class.remote(self.worker_config, name)

    def idle_slots(self) -> int:
        busy = {name for name, _, _ in self.running.values()}
        return sum(1 for name in self.actors if name not in busy)

    def busy(self) -> int:
        return len(self.running)

    def submit(self, task: Task) -> None:
        busy = {name for name, _, _ in self.running.values()}
        for name, actor in self.actors.items():
            if name not in busy:
                self.running[actor.run.remote(task)] = (name, task, time.monotonic())
                return
        raise RuntimeError("No idle worker; call submit() only while idle_slots() > 0.")

    def poll(self, timeout: float = 1.0) -> list[TaskResult]:
        finished = []
        if self.running:
            done, _ = self.ray.wait(list(self.running), num_returns=1, timeout=timeout)
            done, _ = self.ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
            for reference in done:
                name, task, started = self.running.pop(reference)
                try:
                    finished.append(TaskResult(task.task_id, self.ray.get(reference), name))
                except self.ray.exceptions.RayError as error:
                    reason = f"Ray worker {name} failed while training this child: {error}"
                    logging.error("Child %r: %s", task.expression, reason)
                    finished.append(TaskResult(task.task_id, failure_result(
                        task, "error", reason, time.monotonic() - started), name))
                    self._replace(name)
        else:
            time.sleep(min(timeout, 0.1))
        now = time.monotonic()
        for reference, (name, task, started) in list(self.running.items()):
            if self.task_timeout_s is not None and now - started > self.task_timeout_s:
                self.running.pop(reference)
                reason = (f"Ray worker {name} exceeded the task limit of "
                          f"{self.task_timeout_s:.0f} s and was killed")
                logging.error("Child %r: %s", task.expression, reason)
                finished.append(TaskResult(task.task_id, failure_result(
                    task, "timeout", reason, now - started), name))
                self._replace(name)
        return finished

    def _replace(self, name: str) -> None:
        actor = self.actors.pop(name, None)
        if actor is not None:
            self.ray.kill(actor, no_restart=True)
        self._start_actor()

    def shutdown(self) -> None:
        for actor in self.actors.values():
            self.ray.kill(actor, no_restart=True)
        self.actors.clear()
        self.running.clear()


class _RayWorker:
    """Ray actor body around `ChildWorker`."""

    def __init__(self, config: WorkerConfig, name: str):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.name = name
        self.worker = ChildWorker(config)

    def ping(self) -> str:
        return self.name

    def run(self, task: Task) -> dict[str, Any]:
        return self.worker.run(task)
