"""Suite files a user gets wrong: each is one line naming the file and field, before any cell.

Found in a user audit of ``plugformer bench`` (the toy workspace and fakes are in
``conftest.py``; the mistakes the earlier audits found are in ``test_suites.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugformer.errors import PlugformerError
from plugformer.suites.bench import run_suite
from tests.bench.conftest import Fakes, quiet, write_suite


@pytest.mark.parametrize(
    ("fields", "expect"),
    [
        # accepted, then 'unexpected error: OverflowError: cannot convert float infinity to
        # integer' from the ETA once the cells were planned
        ({"budget_scale": "inf"}, "bad-input.toml: budget_scale: Input should be a finite number"),
        (
            {"overrides": "{finetune = {max_minutes = inf}}"},
            "bad-input.toml: its overrides on alpha.toml: finetune.max_minutes: Input should be "
            "a finite number",
        ),
        # the suite's own seed, backbone and run directory won, and the override was ignored
        (
            {"overrides": "{seed = 5}"},
            "bad-input.toml: spec key 'overrides.seed' cannot be overridden: the suite sets "
            "each cell's seed",
        ),
        (
            {"backbones": '[{name = "p", ref = "${TOY_CKPT}", overrides = {backbone = "x"}}]'},
            # the location was said twice: "backbones.0: spec key 'backbones.p.overrides.backbone'"
            "bad-input.toml: backbones.0: spec key 'overrides.backbone' cannot be overridden: "
            "a suite's backbones are its columns",
        ),
        (
            {"overrides": '{out_dir = "elsewhere"}'},
            "spec key 'overrides.out_dir' cannot be overridden",
        ),
    ],
)
def test_a_bad_suite_is_one_line_before_any_cell(
    workspace: Path, fakes: Fakes, fields: dict[str, str], expect: str, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    with pytest.raises(PlugformerError) as err:
        run_suite(write_suite(workspace, "bad-input", **fields), run, log=quiet)
    assert expect in str(err.value)
    assert not fakes.finetunes and not run.exists()


def test_a_suite_name_that_is_a_path_is_refused(
    workspace: Path, fakes: Fakes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the default run directory runs/bench/<name> was then outside runs/bench/
    monkeypatch.chdir(tmp_path)
    path = write_suite(workspace, "bad-input")
    path.write_text('name = "../../x"\n' + path.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(PlugformerError) as err:
        run_suite(path, None, log=quiet)
    assert "bad-input.toml" in str(err.value)
    assert "name: a suite name names its run directory runs/bench/<name>" in str(err.value)
    assert not fakes.finetunes and not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("fields", "expect"),
    [
        # ran every cell twice over and reported 2 cells of one seed as if two
        (
            {"tasks": '["tasks/alpha.toml", "tasks/alpha.toml"]'},
            "bad-input.toml: tasks: duplicates tasks/alpha.toml",
        ),
        (
            {"tasks": '["tasks/alpha.toml", "tasks/again/alpha.toml"]'},
            "bad-input.toml: tasks 'tasks/alpha.toml' and 'tasks/again/alpha.toml' are both "
            "spec 'alpha'",
        ),
        # found when the backbone's first cell ran, after the baselines, the run directory made
        (
            {"backbones": '[{name = "p", ref = "hf:minilm-l7"}]'},
            "bad-input.toml: backbone 'p': hf:minilm-l7: neither a model directory nor a model recipe "
            "(did you mean 'minilm-l6'?)",
        ),
        (
            {"backbones": '[{name = "p", ref = "scratch:hf:minilm-l7"}]'},
            "bad-input.toml: backbone 'p': hf:minilm-l7: neither a model directory nor a model recipe",
        ),
        # ran the suite without the backbone's column, silently
        (
            {"backbones": '[{name = "p", ref = "${TOY_CKPT}", tasks = []}]'},
            "bad-input.toml: backbones.0.tasks: an empty list runs this backbone on nothing",
        ),
    ],
)
def test_a_suite_that_would_report_wrong_cells_is_refused(
    workspace: Path, fakes: Fakes, fields: dict[str, str], expect: str, tmp_path: Path
) -> None:
    again = workspace / "tasks" / "again"
    again.mkdir(exist_ok=True)
    (again / "alpha.toml").write_text(
        (workspace / "tasks" / "alpha.toml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    run = tmp_path / "run"
    with pytest.raises(PlugformerError) as err:
        run_suite(write_suite(workspace, "bad-input", **fields), run, log=quiet)
    assert expect in str(err.value)
    assert not fakes.finetunes and not run.exists()


def test_a_report_metric_no_cell_reports_is_named_in_the_report(
    workspace: Path, fakes: Fakes
) -> None:
    """A misspelt ``report_metrics`` name left the report's "Other metrics" table empty and
    said nothing (metric names are known only once cells have run, so it cannot be refused
    before them)."""
    lines: list[str] = []
    run = run_suite(
        write_suite(workspace, "typo-metric", report_metrics='["acuracy"]'),
        workspace / "runs" / "typo-metric",
        log=lines.append,
    )
    report = (run / "report.md").read_text(encoding="utf-8")
    assert (
        "No cell reports `acuracy` (the suite's `report_metrics`); the cells report `accuracy`."
        in report
    )
    # and on the terminal, where the run is watched
    assert (
        "warning: report_metrics 'acuracy' is reported by no cell; the cells report accuracy"
        in lines
    )


def test_compare_names_the_settings_in_which_two_runs_differ(workspace: Path, fakes: Fakes) -> None:
    """`bench compare` of two different suites (or of changed overrides) showed B − A as if like
    for like and said nothing of the settings between them."""
    from plugformer.suites.compare import compare_runs, format_comparison

    run_a, run_b = workspace / "runs" / "set-a", workspace / "runs" / "set-b"
    run_suite(write_suite(workspace, "set-a"), run_a, log=quiet)
    run_suite(
        write_suite(
            workspace,
            "set-b",
            backbones='[{name = "pretrained", ref = "${TOY_CKPT}", '
            "overrides = {finetune = {max_steps = 5}}}, "
            '{name = "scratch", ref = "scratch:${TOY_CKPT}"}]',
        ),
        run_b,
        log=quiet,
    )
    rows = {r.column: r for r in compare_runs(run_a, run_b)}
    assert rows["pretrained"].settings == ["finetune.max_steps: 2 → 5"]
    assert rows["scratch"].settings == [] and rows["always-pos"].settings == []
    table = format_comparison(list(rows.values()), "a", "b")
    assert "| settings differ: finetune.max_steps: 2 → 5 |" in table


@pytest.mark.parametrize(
    ("damage", "reason"), [("deleted", "is missing"), ("cut", "is not the one it wrote")]
)
def test_a_cached_cell_whose_predictions_are_gone_is_recomputed(
    workspace: Path, fakes: Fakes, tmp_path: Path, damage: str, reason: str
) -> None:
    """A cell whose predictions/<key>.jsonl had been deleted was taken from the cache, and
    results.json named a predictions file that did not exist (nothing to re-score); one whose
    file was cut short was taken too, and re-scoring it read half a JSON line."""
    import json

    suite, run = write_suite(workspace, "lost"), tmp_path / "run"
    run_suite(suite, run, log=quiet)
    model = next(
        c for c in json.loads((run / "results.json").read_text())["cells"] if c["kind"] == "model"
    )
    logged = run / model["predictions_file"]
    intact = logged.read_bytes()
    if damage == "deleted":
        logged.unlink()
    else:
        logged.write_bytes(intact[: len(intact) // 2])
    lines: list[str] = []
    run_suite(suite, run, log=lines.append)
    warned = [ln for ln in lines if "invalid" in ln]
    assert len(warned) == 1 and model["key"] in warned[0], lines
    assert f"its predictions file {model['predictions_file']!r} {reason}" in warned[0]
    assert len(fakes.finetunes) == 5  # 4 model cells, then the one again
    assert logged.read_bytes() == intact


def test_a_budget_scale_with_no_minutes_to_scale_is_named(
    workspace: Path, fakes: Fakes, tmp_path: Path
) -> None:
    """``budget_scale = 2`` on specs that train for a number of steps changed nothing, and
    nothing said so; the specs it leaves as they are are now named in a warning."""
    lines: list[str] = []
    suite = write_suite(
        workspace,
        "unscaled",
        tasks='["tasks/alpha.toml", "tasks/beta.toml"]',
        budget_scale="2",
        backbones='[{name = "p", ref = "${TOY_CKPT}", tasks = ["beta"], '
        "overrides = {finetune = {max_minutes = 0.5}}}, "
        '{name = "q", ref = "${TOY_CKPT}", tasks = ["alpha"]}]',
    )
    run_suite(suite, tmp_path / "run", log=lines.append)
    warned = [line for line in lines if line.startswith("warning:")]
    assert warned == [
        "warning: budget_scale 2 leaves alpha as they are: no finetune.max_minutes to scale "
        "(they train for their steps)"
    ]


def test_the_report_names_a_backbone_by_its_reference_as_given(
    workspace: Path, fakes: Fakes, tmp_path: Path
) -> None:
    """The report's Backbones list showed `hf:DIR` (and `hf:minilm-l6`) without its family,
    as `DIR`: the identity's own reference had replaced the one the suite gave."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    suite = write_suite(
        workspace,
        "refs",
        seeds="[0]",
        baselines="false",
        backbones=f'[{{name = "p", ref = "${{TOY_CKPT}}"}}, {{name = "h", ref = "hf:{model}"}}]',
    )
    run = run_suite(suite, tmp_path / "run", log=quiet)
    report = (run / "report.md").read_text(encoding="utf-8")
    assert f"- **h**: `hf:{model}` (directory sha256 " in report


def test_keep_checkpoints_turned_on_for_a_finished_suite_keeps_them(
    workspace: Path, fakes: Fakes, tmp_path: Path
) -> None:
    """``keep_checkpoints = true`` added to a suite that had run reused every cached cell and
    kept no checkpoint, saying nothing; those cells now run again and keep theirs."""
    run = tmp_path / "run"
    run_suite(write_suite(workspace, "keep"), run, log=quiet)
    assert len(fakes.finetunes) == 4 and not (run / "checkpoints").exists()
    lines: list[str] = []
    keep = write_suite(workspace, "keep", keep_checkpoints="true")
    run_suite(keep, run, log=lines.append)
    assert len(fakes.finetunes) == 8
    assert any("4 cached cells have no checkpoint" in line for line in lines), lines
    assert len(list((run / "checkpoints").iterdir())) == 4
    run_suite(keep, run, log=quiet)  # kept: all cached now
    assert len(fakes.finetunes) == 8


def test_a_cell_run_again_for_its_checkpoint_loses_its_old_record_first(
    workspace: Path, fakes: Fakes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached cell that keep_checkpoints runs again kept its old cell file while it ran: a
    run stopped after the new predictions were written left them beside the old record, which
    the next run accepted as the cell's. The old record now goes before the cell runs."""
    import plugformer.suites.cellcache as cellcache

    run = tmp_path / "run"
    run_suite(write_suite(workspace, "keep"), run, log=quiet)
    kinds = {p.stem: json.loads(p.read_text())["kind"] for p in (run / "cells").glob("*.json")}
    models = {key for key, kind in kinds.items() if kind == "model"}
    assert len(models) == 4

    def stopped(path: Path, record: dict) -> dict:
        raise OSError("killed")  # after the cell's predictions, before its cell file

    monkeypatch.setattr(cellcache, "write_cell", stopped)
    with pytest.raises(OSError, match="killed"):
        run_suite(write_suite(workspace, "keep", keep_checkpoints="true"), run, log=quiet)
    cells = {p.stem for p in (run / "cells").glob("*.json")}
    assert cells == set(kinds) - models  # every cell to run again has lost its old record
    assert {p.stem for p in (run / "predictions").glob("*.jsonl")} == cells


def test_workers_refuse_a_task_registered_in_this_process(
    workspace: Path, fakes: Fakes, tmp_path: Path
) -> None:
    """With workers, a task whose plugin was registered in-process (the toy plugin here) failed
    in each worker with "unknown task 'keyword'; known: ...", which did not say why; it is
    now refused before any worker starts, saying what to do."""
    from plugformer.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        run_suite(write_suite(workspace, "in-process", workers="2"), tmp_path / "run", log=quiet)
    assert str(err.value) == (
        "task 'keyword' comes from plugin 'toy-bench', registered in this process: worker "
        "processes load plugins from entry points only; run the suite with workers = 1 "
        "(--workers 1), or install the plugin"
    )
    assert not fakes.finetunes
