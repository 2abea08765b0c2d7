"""The suite's progress lines: an ETA from the cells' fine-tuning budgets before any cell ends."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from plugformer.suites.bench import run_suite
from plugformer.suites.progress import Progress
from tests.bench.conftest import Fakes, quiet, write_suite


def _cell(key: str, kind: str, label: str, minutes: float | None) -> SimpleNamespace:
    spec = SimpleNamespace(label=label, finetune=SimpleNamespace(max_minutes=minutes))
    return SimpleNamespace(key=key, kind=kind, spec=spec, describe=lambda: f"{label} {key}")


def test_eta_counts_budgets_first_then_learns_each_specs_overhead():
    cells = [
        _cell("a0", "model", "translation", 2.0),
        _cell("a1", "model", "translation", 2.0),
        _cell("b0", "model", "sentiment", 0.5),
        _cell("b1", "model", "sentiment", 0.5),
        _cell("z", "baseline", "sentiment", None),
    ]
    lines: list[str] = []
    progress = Progress(cells, {c.key for c in cells}, lines.append, workers=2)
    # Nothing finished: budgets only (2 + 2 + 0.5 + 0.5 minutes over 2 workers), a lower bound.
    assert progress.eta() == "≥ 0:02:30"

    record = {"main_metric": "bleu", "metrics": {"bleu": 3.0}}
    progress.done(cells[0], record, ran=150.0)  # 30 s beyond its 2 minutes
    # a1: 120 + 30; b0, b1: 30 + 30 each (another spec's overhead until their own is known);
    # the baseline: no baseline has finished, so it counts 0 and the ETA stays a lower bound.
    assert progress.eta() == "≥ 0:02:15"
    assert lines[-1].startswith("[1/5] ") and lines[-1].endswith("ETA ≥ 0:02:15")

    progress.done(cells[4], {"main_metric": "accuracy", "metrics": {"accuracy": 0.8}}, 10.0)
    progress.done(cells[2], {"main_metric": "accuracy", "metrics": {"accuracy": 0.7}}, 35.0)
    # a1: 150; b1: 30 + 5 (its own spec's overhead now): 185 s over 2 workers.
    assert progress.eta() == "0:01:32"


def test_cached_cells_and_shared_keys_do_not_count():
    cells = [_cell("a", "model", "qa", 1.0), _cell("a", "model", "qa", 1.0)]  # two labels
    progress = Progress(cells, {"a"}, lambda line: None, workers=1)
    assert progress.eta() == "≥ 0:01:00"
    progress.done(cells[0], {"main_metric": "f1", "metrics": {"f1": 20.0}}, ran=None)
    assert progress.eta() == "≥ 0:01:00"  # a cached report says nothing of time
    progress.done(cells[1], {"main_metric": "f1", "metrics": {"f1": 20.0}}, ran=70.0)
    assert progress.eta() == "0:00:00"


# --------------------------------------------------------------------------- numbering in a run


def _in_process_workers(cells: list[Any], run_one: Any, out: Path, keep: bool, workers: int):
    """run_parallel without processes: the last cell finishes first, as a worker's may."""
    for cell in reversed(cells):
        yield cell, run_one(cell, out, keep), 0.1


def _numbers(lines: list[str], total: int) -> list[int]:
    """The i of every finished cell's ``[i/N] … | elapsed …`` line, in the order printed."""
    done = (re.match(rf"\[ *(\d+)/{total}\] .*\| elapsed ", line) for line in lines)
    return [int(m.group(1)) for m in done if m]


@pytest.mark.parametrize("workers", [1, 2])
def test_every_cell_is_counted_once_in_completion_order(
    workspace: Path, fakes: Fakes, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Before: with workers, the cells run in parallel and the cached ones were numbered
    apart, so `[1/4]` was printed twice and `[4/4]` never. Two labels of one checkpoint
    share their cells: each label is still a line of its own."""
    monkeypatch.setattr("plugformer.suites.workers.run_parallel", _in_process_workers)
    # no worker processes, so the toy task registered in this process is seen
    monkeypatch.setattr("plugformer.suites.workers.check_workers_see", lambda tasks: None)
    twins = '[{name = "a", ref = "${TOY_CKPT}"}, {name = "b", ref = "${TOY_CKPT}"}, {name = "scratch", ref = "scratch:${TOY_CKPT}"}]'
    suite = write_suite(workspace, f"count{workers}", backbones=twins)
    run = workspace / "runs" / f"count{workers}"
    run_suite(suite, run, workers=workers, log=quiet)  # 1 baseline + 2 seeds × 3 labels
    for cell in sorted((run / "cells").glob("*.json"))[:2]:
        cell.unlink()  # an interrupted run: some cells cached, some to run
    lines: list[str] = []
    run_suite(suite, run, workers=workers, log=lines.append)
    assert _numbers(lines, 7) == list(range(1, 8))


def test_no_eta_line_without_budgets(workspace: Path, fakes: Fakes) -> None:
    """Before: a suite bounded by steps only printed "ETA ≥ 0:00:00, from the cells'
    fine-tuning budgets"; it has no budget to estimate from."""
    lines: list[str] = []
    run_suite(write_suite(workspace, "steps"), workspace / "runs" / "steps", log=lines.append)
    assert not any("fine-tuning budgets" in line for line in lines)
    lines.clear()
    budgeted = write_suite(workspace, "minutes", overrides="{finetune = {max_minutes = 0.5}}")
    run_suite(budgeted, workspace / "runs" / "minutes", log=lines.append)
    assert any("ETA ≥ 0:02:00, from the cells' fine-tuning budgets" in line for line in lines)
