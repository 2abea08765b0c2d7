"""The CLI's thread choice: torch's default when idle, the idle cores when others are busy."""

from __future__ import annotations

import os
import subprocess
import sys

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
