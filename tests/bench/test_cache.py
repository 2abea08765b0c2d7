"""Benchmark suites: every finished cell is cached under a hash of what determines it, so an
interrupted suite resumes, an unchanged re-run takes seconds, a damaged or copied cell is
recomputed and named, and a change reruns exactly the cells it affects.

The toy task, workspace and counting fakes are in ``conftest.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from plugformer.suites.bench import run_suite
from tests.bench.conftest import Fakes, KeywordTask, cell_files, quiet, write_suite

# --------------------------------------------------------------------------- caching


def test_interrupted_suite_resumes_without_redoing_cells(workspace: Path, fakes: Fakes) -> None:
    suite, run = write_suite(workspace), workspace / "runs" / "resume"
    fakes.fail_on = 3
    with pytest.raises(RuntimeError, match="killed"):
        run_suite(suite, run, log=quiet)
    assert len(cell_files(run)) == 3  # the baseline and two model cells
    fakes.fail_on = None
    run_suite(suite, run, log=quiet)
    assert len(fakes.finetunes) == 5  # 2 before the failure, the failed one again, the last one
    assert len(cell_files(run)) == 5 and not (run / "work").exists()


def test_a_stopped_rerun_of_another_suite_leaves_no_earlier_results(
    workspace: Path, fakes: Fakes
) -> None:
    """Before: a run with other settings into a finished run's directory, stopped before its
    end, left the earlier run's results.json and report.md beside its own suite.json, and
    ``bench compare`` read the old figures as this run's."""
    run = workspace / "runs" / "again"
    run_suite(write_suite(workspace), run, log=quiet)
    assert (run / "results.json").is_file() and (run / "report.md").is_file()
    (run / ".report.md.abc123.tmp").write_text("a killed write's leftover")
    fakes.fail_on = len(fakes.finetunes) + 1
    with pytest.raises(RuntimeError, match="killed"):
        run_suite(write_suite(workspace, seeds="[0, 1, 2]"), run, log=quiet)
    assert not (run / "results.json").exists() and not (run / "report.md").exists()
    assert not list(run.glob(".*.tmp"))
    fakes.fail_on = None
    run_suite(write_suite(workspace, seeds="[0, 1, 2]"), run, log=quiet)
    assert {c["seed"] for c in json.loads((run / "results.json").read_text())["cells"]} >= {2}


def test_a_signal_during_a_cell_says_how_to_continue_the_suite(
    workspace: Path, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: Ctrl-C in a suite's cell printed fine-tuning's own advice, "resume with --resume
    (checkpoint runs/.../work/KEY/checkpoints/last.ckpt)": `bench` has no --resume, and the
    next run starts that cell over."""
    import signal

    from plugformer.errors import Interrupted

    suite, run = write_suite(workspace), workspace / "runs" / "sigint"
    real = fakes.finetune

    def stopped(spec: Any, backbone: str, out_dir: Path) -> dict[str, Any]:
        if len(fakes.finetunes) == 2:
            fakes.finetunes.append(("stopped", backbone, spec.seed))
            raise Interrupted(
                signal.SIGINT, "interrupted by SIGINT at step 3; resume with --resume"
            )
        return real(spec, backbone, out_dir)

    monkeypatch.setattr("plugformer.training.finetune.finetune", stopped)
    with pytest.raises(Interrupted) as err:
        run_suite(suite, run, log=quiet)
    message = str(err.value)
    assert err.value.exit_code == 130 and "--resume" not in message
    assert "interrupted by SIGINT during cell alpha · " in message
    assert f"3 of 5 cells are saved in {run / 'cells'}" in message
    assert "run the same `plugformer bench` command again" in message
    monkeypatch.setattr("plugformer.training.finetune.finetune", real)
    run_suite(suite, run, log=quiet)
    assert len(cell_files(run)) == 5

    # With workers, Ctrl-C reached the parent as KeyboardInterrupt: "plugformer: aborted".
    def one_then_ctrl_c(cells: list[Any], run_one: Any, out: Path, keep: bool, workers: int):
        yield cells[0], run_one(cells[0], out, keep), 0.1
        raise KeyboardInterrupt

    monkeypatch.setattr("plugformer.suites.workers.run_parallel", one_then_ctrl_c)
    # no worker processes, so the toy task registered in this process is seen
    monkeypatch.setattr("plugformer.suites.workers.check_workers_see", lambda tasks: None)
    parallel = workspace / "runs" / "sigint-workers"
    with pytest.raises(Interrupted) as err:
        run_suite(suite, parallel, workers=2, log=quiet)
    assert err.value.exit_code == 130
    assert f"during the running cells; 1 of 5 cells are saved in {parallel / 'cells'}" in str(
        err.value
    )
    assert len(cell_files(parallel)) == 1


def test_unchanged_rerun_uses_the_cache(workspace: Path, fakes: Fakes) -> None:
    suite, run = write_suite(workspace), workspace / "runs" / "rerun"
    run_suite(suite, run, log=quiet)
    first = json.loads((run / "results.json").read_text())
    lines: list[str] = []
    run_suite(suite, run, log=lines.append)
    assert len(fakes.finetunes) == 4
    assert sum("(cached)" in line for line in lines) == 5
    assert json.loads((run / "results.json").read_text())["summary"] == first["summary"]


def test_a_cached_rerun_writes_the_same_reports(workspace: Path, fakes: Fakes) -> None:
    """Before: a rerun's results.json gained each cell file's "sha256", which the first run's
    records (taken before the file was written) lacked. Both now record the cell as written."""
    suite, run = write_suite(workspace), workspace / "runs" / "identical"
    run_suite(suite, run, log=quiet)
    names = ("results.json", "report.md", "report.csv")
    first = {name: (run / name).read_bytes() for name in names}
    run_suite(suite, run, log=quiet)
    assert len(fakes.finetunes) == 4  # the rerun ran nothing
    assert {name: (run / name).read_bytes() for name in names} == first
    cells = json.loads(first["results.json"])["cells"]
    assert all(len(c["sha256"]) == 64 for c in cells)  # provenance: the cell file's hash


def test_a_finished_suite_leaves_no_empty_work_folders(workspace: Path, fakes: Fakes) -> None:
    """Before: `work/` stayed behind, empty, once every cell had finished. A folder with
    something in it is not the suite's to delete."""
    suite, run = write_suite(workspace), workspace / "runs" / "tidy"
    fakes.fail_on = 3
    with pytest.raises(RuntimeError, match="killed"):
        run_suite(suite, run, log=quiet)
    (run / "work" / "empty" / "deeper").mkdir(parents=True)
    (run / "work" / "kept").mkdir()
    (run / "work" / "kept" / "notes.txt").write_text("mine", encoding="utf-8")
    fakes.fail_on = None
    run_suite(suite, run, log=quiet)
    assert sorted(p.name for p in (run / "work").iterdir()) == ["kept"]
    (run / "work" / "kept" / "notes.txt").unlink()
    run_suite(suite, run, log=quiet)  # all cached: still tidied
    assert not (run / "work").exists() and (run / "cells").is_dir()


def _cells_by_kind(run: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {"model": [], "baseline": []}
    for f in sorted((run / "cells").glob("*.json")):
        out[json.loads(f.read_text())["kind"]].append(f)
    return out


def test_a_cell_copied_over_another_is_recomputed_with_a_warning(
    workspace: Path, fakes: Fakes
) -> None:
    """Issue 20 (2): a cached cell was used without checking its key: a baseline's file copied
    over a model cell's showed the baseline's result in the model's row."""
    suite, run = write_suite(workspace), workspace / "runs" / "copied"
    run_suite(suite, run, log=quiet)
    cells = _cells_by_kind(run)
    victim, other = cells["model"][0], cells["baseline"][0]
    victim.write_bytes(other.read_bytes())
    lines: list[str] = []
    run_suite(suite, run, log=lines.append)
    warned = [ln for ln in lines if "invalid" in ln]
    assert len(warned) == 1 and str(victim) in warned[0] and "key" in warned[0], lines
    assert len(fakes.finetunes) == 5  # the model cell ran again
    assert json.loads(victim.read_text())["kind"] == "model"


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # truncated
        lambda text: text.replace('"metrics": {', '"metrics": {"injected": 1.0, ', 1),  # edited
        lambda text: "",  # empty
    ],
    ids=["truncated", "edited", "empty"],
)
def test_a_damaged_cell_is_recomputed_and_named(workspace: Path, fakes: Fakes, damage: Any) -> None:
    """Issue 20 (2): a truncated cell stopped the suite with a JSONDecodeError naming no file;
    an edited one was trusted. Each is now named in a warning and recomputed."""
    suite, run = write_suite(workspace), workspace / "runs" / f"damaged-{id(damage)}"
    run_suite(suite, run, log=quiet)
    victim = _cells_by_kind(run)["model"][1]
    victim.write_text(damage(victim.read_text()))
    lines: list[str] = []
    run_suite(suite, run, log=lines.append)
    warned = [ln for ln in lines if "invalid" in ln]
    assert len(warned) == 1 and str(victim) in warned[0], lines
    assert len(fakes.finetunes) == 5
    assert sum("(cached)" in line for line in lines) == 4


def test_changes_invalidate_exactly_the_affected_cells(workspace: Path, fakes: Fakes) -> None:
    run = workspace / "runs" / "invalidate"
    run_suite(write_suite(workspace), run, log=quiet)
    before = cell_files(run)
    run_suite(write_suite(workspace, seeds="[0, 2]"), run, log=quiet)  # a new seed: its two cells
    assert fakes.finetunes[4:] == [
        ("alpha", str(workspace / "ckpt"), 2),
        ("alpha", f"scratch:{workspace / 'ckpt'}", 2),
    ]
    assert len(cell_files(run) - before) == 2
    before = cell_files(run)
    run_suite(
        write_suite(workspace, seeds="[0, 2]", overrides="{finetune = {max_steps = 3}}"),
        run,
        log=quiet,
    )
    assert (
        len(fakes.finetunes) == 10 and len(cell_files(run) - before) == 4
    )  # the baseline does not train
    before = cell_files(run)
    run_suite(
        write_suite(workspace, seeds="[0, 2]", overrides="{data = {max_eval = 4}}"), run, log=quiet
    )
    assert len(cell_files(run) - before) == 5  # test data changed: every cell, the baseline too


def test_edited_plugin_source_reruns_its_cells(
    workspace: Path, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    import plugformer.suites.plan

    run = workspace / "runs" / "edited"
    run_suite(write_suite(workspace), run, log=quiet)
    real = plugformer.suites.plan.source_hash
    edited = {KeywordTask.__module__: "edited"}
    monkeypatch.setattr(plugformer.suites.plan, "source_hash", lambda m: edited.get(m) or real(m))
    run_suite(write_suite(workspace), run, log=quiet)
    assert len(fakes.finetunes) == 8 and len(cell_files(run)) == 10


def test_renamed_backbone_label_reuses_cells(workspace: Path, fakes: Fakes) -> None:
    run = workspace / "runs" / "rename"
    run_suite(write_suite(workspace), run, log=quiet)
    renamed = (
        '[{name = "pre", ref = "${TOY_CKPT}"}, {name = "scratch", ref = "scratch:${TOY_CKPT}"}]'
    )
    run_suite(write_suite(workspace, backbones=renamed), run, log=quiet)
    assert len(fakes.finetunes) == 4
    assert "pre" in {c["column"] for c in json.loads((run / "results.json").read_text())["cells"]}


def test_cli_backbone_override_and_seed_count(workspace: Path, fakes: Fakes) -> None:
    from click.testing import CliRunner

    from plugformer.cli.main import _add_commands, cli

    _add_commands()
    run = workspace / "runs" / "cli"
    args = [
        "bench",
        str(write_suite(workspace)),
        "--out",
        str(run),
        "--seeds",
        "1",
        "--backbone",
        f"scratch=scratch:{workspace / 'ckpt'}",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "| alpha (keyword) | accuracy ↑ |" in result.output and "one seed" in result.output
    assert [seed for _, _, seed in fakes.finetunes] == [0, 0]
    compared = CliRunner().invoke(cli, ["bench", "compare", str(run), str(run)])
    assert compared.exit_code == 0 and "+0 |" in compared.output


def test_a_model_directory_of_another_family_rewritten_in_place_reruns_its_cells(
    tmp_path: Path,
) -> None:
    """Found in a user audit: ``hf:DIR`` was identified by its path alone, so a model
    re-exported into the same directory (``plugformer export NEW DIR --to hf``) reused the old
    model's cached cells. Its files are now part of its identity (``scratch:`` too: a changed
    config is another architecture)."""
    from plugformer.suites.plan import backbone_identity

    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights one")
    (model / "config.json").write_text("{}", encoding="utf-8")
    first, untrained = backbone_identity(f"hf:{model}"), backbone_identity(f"scratch:hf:{model}")
    assert first["family"] == "hf" and first["ref"] == str(model) and first["directory_sha256"]
    assert backbone_identity(f"hf:{model}") == first  # unchanged: the same cells
    (model / "model.safetensors").write_bytes(b"weights two")
    assert backbone_identity(f"hf:{model}") != first
    (model / "config.json").write_text('{"n_layer": 2}', encoding="utf-8")
    assert backbone_identity(f"scratch:hf:{model}") != untrained
