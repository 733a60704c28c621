"""The search end to end on real CIFAR-10 with tiny children: workers, store, resume, report."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import gin
import pytest

from search import executors, report, runner
from search.store import ConfigMismatchError, SearchStore
from swish_tf import gin_utils

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_FILES = ("gin_configs/search/quick_cpu.gin", "gin_configs/child/tiny.gin")
# Four functions: x + x, x - x (constant, so invalid), x + sin(x), x - sin(x).
SMALL_SPACE = (
    'search_space.right_unary = ["identity", "sin"]',
    'search_space.binary = ["add", "sub"]',
)


def make_runner(run_dir, data_dir, bindings, num_workers=1):
    gin.clear_config()
    gin_utils.parse_gin(GIN_FILES, bindings)
    config = executors.WorkerConfig(GIN_FILES, tuple(bindings), str(data_dir))
    return runner.SearchRunner(
        str(run_dir), lambda: executors.LocalExecutor(config, num_workers=num_workers),
        config_text=gin.config_str())


@pytest.fixture(scope="module")
def random_search_run(tmp_path_factory, cifar10_dir):
    """A random search of 8 samples over the four-function space, with a ReLU reference."""
    run_dir = tmp_path_factory.mktemp("random_search")
    bindings = SMALL_SPACE + ("SearchRunner.algorithm = @RandomSearch",
                              "RandomSearch.max_samples = 8", "RandomSearch.seed = 0",
                              'SearchRunner.references = ["relu"]')
    summary = make_runner(run_dir, cifar10_dir, bindings).run()
    gin.clear_config()
    return run_dir, summary


def test_search_trains_each_function_once(random_search_run):
    run_dir, summary = random_search_run
    store = SearchStore.open_existing(str(run_dir))
    proposals = store.proposals()
    evaluations = store.evaluations(kind="candidate")
    assert len(proposals) == 8
    assert summary.proposals == 8
    assert summary.trained + summary.duplicates + summary.invalid == 8
    canonical = [row["canonical"] for row in evaluations]
    assert len(canonical) == len(set(canonical))
    assert summary.duplicates == 8 - len(canonical)
    assert summary.duplicates > 0
    assert summary.references == 1


def test_invalid_candidate_is_recorded_without_training(random_search_run):
    run_dir, _ = random_search_run
    store = SearchStore.open_existing(str(run_dir))
    invalid = [row for row in store.evaluations() if row["status"] == "invalid"]
    assert [row["expression"] for row in invalid] == ["x - x"]
    assert invalid[0]["reward"] == 0.0
    assert "constant output" in invalid[0]["reason"]
    assert invalid[0]["steps"] is None


def test_trained_rows_are_complete(random_search_run):
    run_dir, _ = random_search_run
    store = SearchStore.open_existing(str(run_dir))
    trained = [row for row in store.evaluations() if row["status"] == "ok"]
    assert trained
    for row in trained:
        assert 0.0 <= row["val_accuracy"] <= 1.0
        assert row["reward"] == row["val_accuracy"]
        assert row["steps"] == 3
        assert row["images_per_sec"] > 0
        assert row["worker"].startswith("local-")
        assert row["config_hash"] == store.get_meta("config_hash")
    assert os.path.isdir(os.path.join(run_dir, "tensorboard"))


def test_report_writes_leaderboard_and_plots(random_search_run):
    run_dir, _ = random_search_run
    store = SearchStore.open_existing(str(run_dir))
    # A diverged child as the runner stores it: reward 0 and no accuracy.
    store.add_evaluation(expression="exp(x)^3", canonical="cube(exp(x))", fingerprint="f",
                         tokens=None, kind="candidate", train_steps=3, seed=0,
                         status="diverged", reason="loss became NaN at step 2", reward=0.0,
                         result={"val_accuracy": float("nan"), "train_loss": float("inf")})
    store.close()
    text = report.write_report(str(run_dir))
    rows = report.leaderboard(SearchStore.open_existing(str(run_dir)))
    finished = [row for row in rows if row.mean_accuracy is not None]
    assert rows[:len(finished)] == finished  # Failures rank below every finished function.
    assert rows[-1].status in ("diverged", "invalid")
    assert "max(x, 0)" in text
    assert "(reference)" in text
    directory = os.path.join(run_dir, "report")
    for name in ("leaderboard.csv", "leaderboard.json", "top_functions.png",
                 "search_progress.png"):
        assert os.path.getsize(os.path.join(directory, name)) > 0
    with open(os.path.join(directory, "leaderboard.json")) as f:
        # Strict JSON: a NaN or Infinity token makes parse_constant raise.
        exported = json.load(f, parse_constant=lambda token: pytest.fail(f"{token} in JSON"))
    assert exported["counts"]["children_diverged"] == 1


def test_changed_config_is_rejected(random_search_run, cifar10_dir):
    run_dir, _ = random_search_run
    bindings = SMALL_SPACE + ("SearchRunner.algorithm = @RandomSearch",
                              "RandomSearch.max_samples = 9")
    with pytest.raises(ConfigMismatchError, match="--allow_config_change"):
        make_runner(run_dir, cifar10_dir, bindings)


def _count(database, query):
    """Run a COUNT query; 0 while the search has not created its tables yet."""
    if not database.exists():
        return 0
    with sqlite3.connect(database) as connection:
        try:
            return connection.execute(query).fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def test_kill_and_resume_loses_nothing(tmp_path, cifar10_dir):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "search.run", f"--data_dir={cifar10_dir}",
               f"--run_dir={run_dir}", "--num_workers=1"]
    for path in GIN_FILES:
        command.append(f"--gin_file={path}")
    for binding in SMALL_SPACE + ("SearchRunner.references = []",):
        command.append(f"--gin_param={binding}")
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    database = run_dir / "search.sqlite"

    process = subprocess.Popen(command, cwd=REPOSITORY, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            if _count(database, "SELECT COUNT(*) FROM evaluations WHERE status = 'ok'") >= 1:
                break
            assert process.poll() is None, "the search ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("no child finished within 600 s")
    finally:
        # SIGKILL to the search process alone: its workers must notice and exit by themselves.
        process.kill()
        process.wait()
    try:
        for _ in range(60):
            os.killpg(process.pid, 0)  # Raises once no process of the group is left.
            time.sleep(0.5)
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail("worker processes outlived the killed search by 30 s")
    except ProcessLookupError:
        pass
    trained_before = _count(database, "SELECT COUNT(*) FROM evaluations WHERE status = 'ok'")
    assert _count(database, "SELECT COUNT(*) FROM proposals") < 4

    finished = subprocess.run(command, cwd=REPOSITORY, env=environment, capture_output=True,
                              text=True, timeout=900)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert _count(database, "SELECT COUNT(*) FROM proposals") == 4
    # Exhaustive search over four functions: three trainable, x - x invalid, each exactly once.
    assert _count(database, "SELECT COUNT(*) FROM evaluations WHERE status = 'ok'") == 3
    assert _count(database, "SELECT COUNT(DISTINCT canonical) FROM evaluations") == 4
    assert _count(database, "SELECT COUNT(*) FROM evaluations") == 4
    assert trained_before >= 1
    assert "Resuming the search" in finished.stderr
    assert "rank  function" in finished.stdout
    assert "4 proposals" in finished.stdout
