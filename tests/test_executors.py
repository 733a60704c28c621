"""Executors with real worker processes: results, a killed worker, a hung worker, Ray."""

import os
import shutil
import signal
import tempfile
import time

import pytest

from search import executors

GIN_FILES = ("gin_configs/child/tiny.gin",)


def wait_for_results(executor, count, limit_s=600):
    results = []
    deadline = time.monotonic() + limit_s
    while len(results) < count and time.monotonic() < deadline:
        results.extend(executor.poll(timeout=1.0))
    assert len(results) == count, f"only {len(results)} of {count} results in {limit_s} s"
    return results


def test_local_worker_crash_and_hang_cost_one_task(cifar10_dir):
    config = executors.WorkerConfig(GIN_FILES, (), str(cifar10_dir))
    executor = executors.LocalExecutor(config, num_workers=1, task_timeout_s=None)
    try:
        # A killed worker: its task comes back as an error and a new worker takes over.
        executor.submit(executors.Task(1, "relu", seed=0))
        (worker,) = executor.workers.values()
        os.kill(worker["process"].pid, signal.SIGKILL)
        (crashed,) = wait_for_results(executor, 1)
        assert crashed.task_id == 1
        assert crashed.result["status"] == "error"
        assert "exited with code -9" in crashed.result["reason"]
        executor._wait_until_ready()  # pylint: disable=protected-access

        # A hung worker: past the task limit it is killed and its task reported as timeout.
        executor.task_timeout_s = 0.5
        executor.submit(executors.Task(2, "swish", seed=0))
        (hung,) = wait_for_results(executor, 1)
        assert hung.result["status"] == "timeout"
        assert "exceeded the task limit" in hung.result["reason"]
        executor._wait_until_ready()  # pylint: disable=protected-access

        # The replacement trains normally.
        executor.task_timeout_s = None
        executor.submit(executors.Task(3, "x * sigmoid(beta * x)", seed=0, train_steps=2))
        (normal,) = wait_for_results(executor, 1)
        assert normal.result["status"] == "ok", normal.result["reason"]
        assert normal.result["steps"] == 2
        assert normal.worker != crashed.worker
    finally:
        executor.shutdown()


def test_bad_data_dir_fails_at_startup(tmp_path):
    config = executors.WorkerConfig(GIN_FILES, (), str(tmp_path / "missing"))
    with pytest.raises(executors.StartupError, match="missing"):
        executors.LocalExecutor(config, num_workers=1)


def test_ray_executor_trains_children(cifar10_dir, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    # A short private temp dir: Ray puts Unix sockets there, whose paths are length-limited.
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(num_cpus=1, include_dashboard=False, _temp_dir=temp_dir, log_to_driver=False)
    try:
        config = executors.WorkerConfig(GIN_FILES, (), str(cifar10_dir))
        executor = executors.RayExecutor(config, num_workers=1)
        try:
            assert executor.idle_slots() == 1
            executor.submit(executors.Task(7, "max(x, sigmoid(x))", seed=0))
            assert executor.idle_slots() == 0
            (result,) = wait_for_results(executor, 1)
            assert result.task_id == 7
            assert result.result["status"] == "ok", result.result["reason"]
            assert result.worker == "ray-0"
        finally:
            executor.shutdown()
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
