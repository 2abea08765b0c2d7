"""Suites run with several worker processes: the same cells and results as in-process.

Workers are spawned processes, so they see tasks only through entry points: these tests use
the installed first-party ``sentiment`` plugin on the workspace's tiny data and backbone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from plugformer.suites.bench import run_suite
from plugformer.suites.config import load_suite, resolve_backbones
from plugformer.suites.plan import plan_cells
from plugformer.suites.workers import worker_threads
from tests.bench.conftest import quiet, write_suite


def _sentiment_suite(workspace: Path, name: str, **fields: str) -> Path:
    data = "\n".join(f'{s} = "{workspace / s}.jsonl"' for s in ("train", "validation", "test"))
    spec = workspace / "tasks" / "toy-sentiment.toml"
    spec.write_text(
        f'task = "sentiment"\n\n[data]\n{data}\n\n[finetune]\nmax_steps = 3\nbatch_size = 8\n',
        encoding="utf-8",
    )
    return write_suite(workspace, name, tasks='["tasks/toy-sentiment.toml"]', **fields)


def _metrics(run: Path) -> dict[tuple[str, str, int | None], dict[str, float]]:
    cells = json.loads((run / "results.json").read_text())["cells"]
    return {(c["kind"], c["column"], c["seed"]): c["metrics"] for c in cells}


@pytest.mark.slow
def test_two_workers_give_the_in_process_results(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plugformer import plugins

    monkeypatch.delenv("PLUGFORMER_LOAD_PLUGINS", raising=False)  # entry points, as workers do
    plugins.reset()
    monkeypatch.setenv("TOY_CKPT", str(workspace / "ckpt"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # workers get one thread each on 2 cores
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the in-process run too: equal arithmetic, equal results
    try:
        serial = run_suite(_sentiment_suite(workspace, "serial"), workspace / "serial", log=quiet)
    finally:
        torch.set_num_threads(threads)
    lines: list[str] = []
    parallel = run_suite(
        _sentiment_suite(workspace, "parallel", workers="2"),
        workspace / "parallel",
        log=lines.append,
    )
    assert any("2 cells at a time" in line for line in lines)
    done = [line for line in lines if "in " in line and "ETA" in line]
    assert len(done) == 6  # two baselines and 2 backbones × 2 seeds, each reported once
    assert _metrics(parallel) == _metrics(serial)
    assert (parallel / "report.md").is_file() and not (parallel / "work").exists()
    # a second run finds every cell cached and starts no worker
    lines.clear()
    run_suite(_sentiment_suite(workspace, "parallel", workers="2"), parallel, log=lines.append)
    assert sum("(cached)" in line for line in lines) == 6
    assert not any("at a time" in line for line in lines)


def test_budget_scale_multiplies_every_cells_minutes(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOY_CKPT", str(workspace / "ckpt"))
    path = write_suite(
        workspace,
        "scaled",
        budget_scale="1.5",
        overrides="{finetune = {max_minutes = 0.4}}",
        backbones=(
            '[{name = "pretrained", ref = "${TOY_CKPT}"}, '
            '{name = "scratch", ref = "scratch:${TOY_CKPT}", overrides = {finetune = {max_minutes = 2.0}}}]'
        ),
    )
    suite = load_suite(path)
    minutes = {
        c.column: c.spec.finetune.max_minutes
        for c in plan_cells(suite, path, resolve_backbones(suite))
        if c.kind == "model"
    }
    assert minutes == {"pretrained": pytest.approx(0.6), "scratch": pytest.approx(3.0)}


def test_a_deadline_sums_the_budgets_and_run_suite_takes_its_scale(
    workspace: Path, fakes: object
) -> None:
    """``budget_minutes`` is what a deadline divides; ``run_suite(budget_scale=)`` overrides
    the suite's scale for every cell and records it, so a resumed run can reuse it."""
    from plugformer.suites.bench import budget_minutes

    path = write_suite(
        workspace,
        "deadline",
        budget_scale="1.5",
        workers="2",
        overrides="{finetune = {max_minutes = 0.4}}",
        backbones=(
            '[{name = "pretrained", ref = "${TOY_CKPT}"}, '
            '{name = "scratch", ref = "scratch:${TOY_CKPT}", overrides = {finetune = {max_minutes = 2.0}}}]'
        ),
    )
    assert budget_minutes(path) == (pytest.approx(2 * 0.4 + 2 * 2.0), 2)  # two seeds each
    run = run_suite(path, workspace / "deadline-run", budget_scale=1.25, workers=1, log=quiet)
    assert json.loads((run / "suite.json").read_text())["budget_scale"] == 1.25
    cells = json.loads((run / "results.json").read_text())["cells"]
    minutes = {c["column"]: c["spec_config"]["finetune"]["max_minutes"] for c in cells
               if c["kind"] == "model"}  # fmt: skip
    assert minutes == {"pretrained": pytest.approx(0.5), "scratch": pytest.approx(2.5)}


def test_worker_threads_share_the_idle_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("plugformer.threads.other_runnable", lambda: 0.0)
    assert worker_threads(2, cpus=2) == 1 and worker_threads(2, cpus=8) == 4
    monkeypatch.setattr("plugformer.threads.other_runnable", lambda: 1.0)  # one core is busy
    assert worker_threads(2, cpus=2) == 1 and worker_threads(3, cpus=8) == 2


class _SlowCell:
    """A stand-in cell for run_parallel: ``_sleep_cell`` sleeps its ``seconds``."""

    kind = "baseline"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


def _sleep_cell(cell: _SlowCell, out: Path, keep: bool) -> dict[str, float]:
    import time

    time.sleep(cell.seconds)
    return {"slept": cell.seconds}


def test_an_interrupted_parent_stops_its_workers(tmp_path: Path) -> None:
    """Before: ``kill -INT`` of the suite's parent alone (no Ctrl-C to the process group)
    waited for every running cell to end; now the workers are told to stop (SIGTERM) and
    the interruption comes back within seconds."""
    import os
    import signal
    import threading
    import time

    from plugformer.suites.workers import run_parallel

    # Python leaves SIGINT ignored when it starts ignored (a background job of a
    # non-interactive shell): Ctrl-C's handler is installed for this test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            list(run_parallel([_SlowCell(120), _SlowCell(120)], _sleep_cell, tmp_path, False, 2))
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - t0 < 60


def _pid_cell(cell: _SlowCell, out: Path, keep: bool) -> dict[str, float]:
    """``_sleep_cell`` that first leaves its worker's pid in ``out``."""
    import os

    (out / str(os.getpid())).write_text("", encoding="utf-8")
    return _sleep_cell(cell, out, keep)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie whose reaper has not come counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return True
    return "\nState:\tZ" in status


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    """Before: a suite killed with SIGKILL left its workers running (each holds both ends of
    its task queue's pipe, so none saw the parent go), 650 MB apiece in the smoke suite, until
    killed by hand; now each ends within seconds of its parent."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys\nfrom pathlib import Path\n"
        "from plugformer.suites.workers import run_parallel\n"
        "from tests.bench.test_workers import _SlowCell, _pid_cell\n"
        "list(run_parallel([_SlowCell(120), _SlowCell(120)], _pid_cell, Path(sys.argv[1]), False, 2))\n"
    )
    root = Path(__file__).resolve().parents[2]
    parent = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=root)
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
            assert parent.poll() is None, "the suite's process ended early"
            time.sleep(0.2)
        workers = [int(p.name) for p in tmp_path.iterdir()]
        assert len(workers) == 2
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 20
    while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers if not _gone(pid)]
    for pid in left:  # not left behind by the test either
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers {left} outlived their parent"


def _failing_cell(cell: _SlowCell, out: Path, keep: bool) -> dict[str, float]:
    """``_sleep_cell``, except that a cell of no seconds fails at once."""
    if not cell.seconds:
        raise ValueError("a broken cell")
    return _sleep_cell(cell, out, keep)


def test_a_failing_cell_lets_the_running_ones_finish(tmp_path: Path) -> None:
    """Before: a cell that failed stopped the cells running beside it, and their work was lost
    (a suite whose data error showed in 2 seconds discarded its neighbour's nearly finished
    fine-tuning); as the docstring said, they now end first and their results come back."""
    from plugformer.suites.workers import run_parallel

    got: list[float] = []
    with pytest.raises(ValueError, match="a broken cell"):
        for _, record, _ in run_parallel(
            [_SlowCell(4), _SlowCell(0)], _failing_cell, tmp_path, False, 2
        ):
            got.append(record["slept"])
    assert got == [4]
