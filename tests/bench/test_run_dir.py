"""A suite's run directory: one run at a time, and what a bad ``--out`` is told.

Found in a user audit: two ``plugformer bench`` commands into the same directory both ran
its cells, and each deleted the other's ``work/<key>`` checkpoint as "a killed earlier
attempt" (the second ended with ``unexpected error: ValueError: dict contains fields not
in fieldnames``); an ``--out`` that is a file was planned, announced, then refused as
``suite.json: cannot write (File exists)``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plugformer.errors import PlugformerError
from plugformer.outdir import claim
from plugformer.suites.bench import run_suite
from tests.bench.conftest import Fakes, cell_files, quiet, write_suite


def test_a_second_run_into_a_directory_in_use_is_refused(workspace: Path, fakes: Fakes) -> None:
    run = workspace / "runs" / "busy"
    suite = write_suite(workspace, "busy")
    with claim(run, "bench busy"), pytest.raises(PlugformerError, match="in use by another run"):
        run_suite(suite, run, log=quiet)
    assert not fakes.finetunes and not (run / "cells").exists()
    run_suite(suite, run, log=quiet)  # free again: the run goes ahead
    assert len(cell_files(run)) == 5  # 1 baseline + 2 seeds x 2 backbones


def test_an_output_path_that_is_a_file_is_one_line_before_anything_runs(
    workspace: Path, fakes: Fakes
) -> None:
    lines: list[str] = []
    out = workspace / "runs" / "a-file"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("mine\n", encoding="utf-8")
    with pytest.raises(PlugformerError, match="exists and is not a directory"):
        run_suite(write_suite(workspace, "file-out"), out, log=lines.append)
    assert not fakes.finetunes and not lines  # nothing announced, nothing run
    assert out.read_text(encoding="utf-8") == "mine\n"


def test_a_run_that_fails_before_any_cell_leaves_no_directory(
    workspace: Path, fakes: Fakes
) -> None:
    """Before (found in the audit, left then): a suite whose first cell failed (an empty
    training file) left its new run directory behind, holding suite.json and an empty work/."""
    run = workspace / "runs" / "first-fails"
    suite = write_suite(workspace, "first-fails", baselines="false")
    fakes.fail_on = 1
    with pytest.raises(RuntimeError, match="killed"):
        run_suite(suite, run, log=quiet)
    assert not run.exists()
    # a run that saved a cell before failing keeps it, to continue from
    fakes.fail_on = 3  # the calls count on: the first run's was call 1
    with pytest.raises(RuntimeError, match="killed"):
        run_suite(suite, run, log=quiet)
    assert len(cell_files(run)) == 1 and (run / "suite.json").is_file()


def test_a_stopped_run_leaves_no_predictions_of_unsaved_cells(
    workspace: Path, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before (found in the audit): a run stopped (an error, a kill) between a cell's predictions file and its
    cell file (a cell writes them in that order) left ``predictions/<key>.jsonl`` of a cell that was
    never saved, beside the saved cells' files."""
    import plugformer.suites.cellcache as cellcache

    run, suite = workspace / "runs" / "stopped", write_suite(workspace, "stopped")
    real, calls = cellcache.write_cell, []

    def stopped_on_third(path: Path, record: dict) -> dict:
        calls.append(path)
        if len(calls) == 3:  # the third cell's predictions are written, its cell file is not
            raise OSError("disk full")
        return real(path, record)

    monkeypatch.setattr(cellcache, "write_cell", stopped_on_third)
    with pytest.raises(OSError, match="disk full"):
        run_suite(suite, run, log=quiet)
    saved = {Path(n).stem for n in cell_files(run)}
    assert len(saved) == 2
    assert {p.stem for p in (run / "predictions").glob("*.jsonl")} == saved

    # a kill (no clean-up in the process) leaves one behind: the next run removes it first
    orphan = run / "predictions" / "0123456789abcdef.jsonl"
    orphan.write_text("{}\n", encoding="utf-8")
    seen: list[bool] = []

    def checked(path: Path, record: dict) -> dict:
        seen.append(orphan.exists())  # gone before the run saves its first cell
        return real(path, record)

    monkeypatch.setattr(cellcache, "write_cell", checked)
    run_suite(suite, run, log=quiet)
    assert seen and not any(seen) and not orphan.exists()
    saved = {Path(n).stem for n in cell_files(run)}
    assert len(saved) == 5 and {p.stem for p in (run / "predictions").glob("*.jsonl")} == saved
