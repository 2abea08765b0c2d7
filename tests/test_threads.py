"""The CLI's thread choice: torch's default when idle, the idle cores when others are busy."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from plugformer import threads


def test_idle_machine_keeps_torchs_default(monkeypatch):
    monkeypatch.setattr(threads, "other_runnable", lambda: 0.0)
    assert threads.pick_threads("auto", cpus=2) is None


def test_busy_machine_uses_the_idle_cores_and_at_least_one(monkeypatch):
    monkeypatch.setattr(threads, "other_runnable", lambda: 1.0)
    assert threads.pick_threads("auto", cpus=8) == 7
    monkeypatch.setattr(threads, "other_runnable", lambda: 5.0)
    assert threads.pick_threads("auto", cpus=2) == 1


def test_explicit_numbers_and_bad_values():
    assert threads.pick_threads("3") == 3
    assert threads.pick_threads(None) is None
    assert threads.pick_threads("default") is None
    with pytest.raises(ValueError, match="positive number or 'auto'"):
        threads.pick_threads("0")


def test_other_runnable_reads_proc_loadavg():
    busy = threads.other_runnable(samples=3, interval=0.0)
    assert busy >= 0.0


def test_omp_num_threads_from_the_user_wins(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.apply_threads("1") is None


def test_cli_threads_option_reaches_torch(tmp_path):
    code = (
        "import sys; from plugformer.cli.main import main; import torch;"
        "sys.argv=['plugformer','--threads','1','plugins'];"
        "\ntry: main()\nexcept SystemExit: pass\n"
        "import torch; print('THREADS', torch.get_num_threads())"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "THREADS 1" in out.stdout, out.stderr[-500:]


@pytest.mark.parametrize("omp", [None, "2"])
def test_cli_rejects_a_bad_thread_count(omp: str | None):
    """With ``OMP_NUM_THREADS`` set too (before: a bad ``--threads`` was then not checked at
    all, and an earlier in-process test that set it made this one fail in CI)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if omp:
        env["OMP_NUM_THREADS"] = omp
    out = subprocess.run(
        [sys.executable, "-m", "plugformer", "--threads", "none", "plugins"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 2
    assert "--threads" in out.stderr and "Traceback" not in out.stderr


def test_a_passing_load_is_not_a_competitor(monkeypatch):
    """A kernel thread writing back a checkpoint is runnable for a moment; a CPU-bound
    competitor at every read."""
    reads = iter([1.0, 2.0, 0.0, 1.0, 1.0])
    monkeypatch.setattr(threads, "other_runnable", lambda **_: next(reads))
    assert threads.steady_runnable(reads=5, interval=0.0) == 0.0
    monkeypatch.setattr(threads, "other_runnable", lambda **_: 1.0)
    assert threads.steady_runnable(reads=5, interval=0.0) == 1.0


def test_an_auto_count_is_picked_again_for_the_load_of_now(monkeypatch):
    """A quickstart started while another job was exiting trained its whole trunk on one of
    two cores: the count chosen at start-up is picked again as each training run starts."""
    import torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "other_runnable", lambda: 1.0)  # busy at start-up
    assert threads.apply_threads("auto") == 1 and torch.get_num_threads() == 1
    monkeypatch.setattr(threads, "other_runnable", lambda **_: 0.0)  # the other job is gone
    assert threads.refresh_threads(cpus=2) == 2 and torch.get_num_threads() == 2
    # idle: nothing inherited, so Lightning shares the cores out among DDP processes itself
    assert "OMP_NUM_THREADS" not in os.environ
    monkeypatch.setattr(threads, "other_runnable", lambda **_: 1.0)
    assert threads.refresh_threads(cpus=2) == 1 and torch.get_num_threads() == 1
    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_a_count_that_is_not_auto_is_left_alone(monkeypatch):
    import torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.apply_threads("1") == 1
    monkeypatch.setattr(threads, "other_runnable", lambda **_: 0.0)
    assert threads.refresh_threads(cpus=2) is None and torch.get_num_threads() == 1


def test_this_processs_own_busy_threads_are_counted_as_its_own():
    """/proc/loadavg counts every runnable thread, this process's too (OpenMP threads still
    spinning after a parallel region): those must not read as another job."""
    import threading

    import torch

    a = torch.randn(1024, 1024)
    done = threading.Event()

    def work() -> None:  # matmuls release the GIL: this thread stays runnable
        while not done.is_set():
            torch.mm(a, a)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        time.sleep(0.05)
        seen = max(threads._own_running() for _ in range(20))
    finally:
        done.set()
        worker.join()
    assert seen >= 2  # the reader and the worker
