"""Suite ensembles: a model pooled with a baseline, the weight chosen on validation only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from plugformer.blocks import ClassificationTask
from plugformer.errors import ConfigError
from plugformer.suites.bench import run_suite
from plugformer.suites.ensemble import choose_weight, fuse_all
from plugformer.tasks import score_predictions

from .conftest import quiet, write_suite


class Polarity(ClassificationTask):
    name = "polarity-test"


class _Ex(BaseModel):
    id: str | None = None
    text: str
    label: str


def _task() -> Polarity:
    task = Polarity({}, None)
    task.prepare([_Ex(text="a", label="neg"), _Ex(text="b", label="pos")])
    return task


def _logged(run: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / name).read_text().splitlines()]


def _p(pos: float) -> dict[str, object]:
    return {"label": "pos" if pos > 0.5 else "neg", "probs": {"neg": 1 - pos, "pos": pos}}


def test_fuse_is_a_weighted_geometric_mean_of_the_probabilities() -> None:
    task = _task()
    a, b = _p(0.9), _p(0.2)
    assert task.fuse(a, b, 1.0)["label"] == "pos" and task.fuse(a, b, 0.0)["label"] == "neg"
    half = task.fuse(a, b, 0.5)["probs"]
    pos, neg = (0.9 * 0.2) ** 0.5, (0.1 * 0.8) ** 0.5
    assert half["pos"] == pytest.approx(pos / (pos + neg))
    assert sum(half.values()) == pytest.approx(1.0)
    # a baseline certain of one label does not veto the model at every weight
    assert task.fuse(_p(0.999999), _p(0.0), 0.9)["label"] == "pos"
    with pytest.raises(ValueError, match="between 0 and 1"):
        task.fuse(a, b, 1.5)


def test_the_weight_is_chosen_on_the_examples_given_ties_nearest_one_half() -> None:
    task = _task()
    gold = [_Ex(text=str(i), label=lab) for i, lab in enumerate(["pos", "neg", "pos", "neg"])]
    # the model is right on the first two, the baseline on the last two, each less sure where
    # it is wrong: pooling at a middle weight gets all four
    model = [_p(0.9), _p(0.1), _p(0.4), _p(0.6)]
    base = [_p(0.45), _p(0.55), _p(0.95), _p(0.05)]
    weight, score = choose_weight(task, model, base, gold, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert score == 1.0 and weight == 0.5
    pooled = fuse_all(task, model, base, weight)
    assert score_predictions(task, pooled, gold)["accuracy"] == 1.0
    # all weights tie: the one nearest 0.5
    same = [_p(0.9)] * 4
    assert choose_weight(task, same, same, gold, [0.0, 0.4, 1.0])[0] == 0.4


def _polar_suite(root: Path, name: str, ensembles: str, **fields: str) -> Path:
    """A suite on a spec of the core's ``classification`` task (which implements ``fuse``)."""
    data = "\n".join(f'{s} = "{root / s}.jsonl"' for s in ("train", "validation", "test"))
    (root / "tasks" / "polar.toml").write_text(
        f'task = "classification"\n\n[data]\n{data}\n\n[finetune]\nmax_steps = 3\nbatch_size = 8\n',
        encoding="utf-8",
    )
    return write_suite(root, name, tasks='["tasks/polar.toml"]', ensembles=ensembles, **fields)


def test_an_ensemble_column_pools_each_seed_on_validation_and_rescores(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOY_CKPT", str(workspace / "ckpt"))
    suite = _polar_suite(
        workspace,
        "pooled",
        '[{name = "pretrained+majority", model = "pretrained", baseline = "majority", weights = [0.0, 0.5, 1.0]}]',
        seeds="2",
    )
    run = run_suite(suite, workspace / "runs" / "pooled", log=quiet)
    cells = json.loads((run / "results.json").read_text())["cells"]
    base = next(c for c in cells if c["kind"] == "baseline")
    models = [c for c in cells if c["column"] == "pretrained"]
    pooled = [c for c in cells if c["column"] == "pretrained+majority"]
    assert [c["seed"] for c in pooled] == [0, 1] and all(c["kind"] == "model" for c in pooled)
    # the cells it pools predicted validation; the untrained control was not asked to
    scratch = [c for c in cells if c["column"] == "scratch"]
    assert all("validation_predictions_file" in c for c in [base, *models])
    assert not any("validation_predictions_file" in c for c in scratch)
    task = Polarity({}, None)
    task.prepare([_Ex(text="x", label="neg"), _Ex(text="y", label="pos")])
    val_base = _logged(run, base["validation_predictions_file"])
    for fused, model in zip(pooled, models, strict=True):
        info = fused["ensemble"]
        assert info["model_cell"] == model["key"] and info["baseline_cell"] == base["key"]
        # the weight is the one the logged validation predictions choose, nothing else's
        val_model = _logged(run, model["validation_predictions_file"])
        gold = [_Ex(**s["example"]) for s in val_model]
        weight, score = choose_weight(
            task,
            [s["prediction"] for s in val_model],
            [s["prediction"] for s in val_base],
            gold,
            [0.0, 0.5, 1.0],
        )
        assert info["weight"] == weight and fused["validation_metrics"]["accuracy"] == score
        assert "finetune" not in fused  # no second validation curve of the same model
        samples = [
            json.loads(x) for x in (run / fused["predictions_file"]).read_text().splitlines()
        ]
        right = sum(s["prediction"]["label"] == s["example"]["label"] for s in samples)
        assert right / len(samples) == pytest.approx(fused["metrics"]["accuracy"])
        assert fused["compute"] == model["compute"]  # the model's training, nothing more
    report = (run / "report.md").read_text()
    assert "pretrained+majority" in report and "## Ensembles" in report
    assert report.count("**pretrained**") == 1  # one backbone line, not one per column
    # a rerun reuses every cell, computes the same ensembles, and removes stale pooled files
    stale = run / "predictions" / "ensembles" / "0123456789abcdef-old.jsonl"
    stale.write_text("{}\n")
    lines: list[str] = []
    again = json.loads((run_suite(suite, run, log=lines.append) / "results.json").read_text())[
        "cells"
    ]
    assert any("0 to run" in line for line in lines)
    assert [c["metrics"] for c in again if c["column"] == "pretrained+majority"] == [
        c["metrics"] for c in pooled
    ]
    assert not stale.exists()


@pytest.mark.parametrize(
    ("ensembles", "message"),
    [
        (
            '[{name = "x", model = "nobody", baseline = "always-pos"}]',
            "ensembles.0.model: no backbone 'nobody'",
        ),
        (
            '[{name = "x", model = "pretrained", baseline = "always-pos"}]',
            "cannot pool predictions",
        ),
        (
            '[{name = "../x", model = "pretrained", baseline = "always-pos"}]',
            "ensembles.0.name: .*names a file",
        ),
        (
            '[{name = "x", model = "pretrained", baseline = "always-pos", tasks = []}]',
            "ensembles.0.tasks: .*pools on nothing",
        ),
    ],
)
def test_a_bad_ensemble_is_one_clear_error_before_any_cell(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, ensembles: str, message: str
) -> None:
    monkeypatch.setenv("TOY_CKPT", str(workspace / "ckpt"))
    suite = write_suite(workspace, "bad-ensemble", ensembles=ensembles)
    with pytest.raises(ConfigError, match=message) as err:
        run_suite(suite, workspace / "runs" / "bad-ensemble", log=quiet)
    assert "\n" not in str(err.value)
    assert not (workspace / "runs" / "bad-ensemble" / "cells").exists()


def test_a_baseline_the_task_lacks_is_named(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOY_CKPT", str(workspace / "ckpt"))
    suite = _polar_suite(
        workspace, "no-such-baseline", '[{name = "x", model = "pretrained", baseline = "tfidf"}]'
    )
    with pytest.raises(ConfigError, match="has no baseline 'tfidf' \\(it has majority\\)"):
        run_suite(suite, workspace / "runs" / "no-such-baseline", log=quiet)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {
                "ensembles": '[{name = "x", model = "pretrained", baseline = "majority", tasks = ["polr"]}]'
            },
            "ensemble 'x': tasks names 'polr', which is no spec or task of the suite",
        ),
        (
            {
                "ensembles": '[{name = "x", model = "pretrained", baseline = "majority"}]',
                "backbones": '[{name = "pretrained", ref = "${TOY_CKPT}", overrides = { data = { max_test = 4 } } }]',
            },
            "backbone 'pretrained' changes the data of polar \\(max_test\\)",
        ),
    ],
)
def test_an_ensemble_on_nothing_or_on_other_examples_is_refused(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, fields: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("TOY_CKPT", str(workspace / "ckpt"))
    ensembles = fields.pop("ensembles")
    suite = _polar_suite(workspace, "refused-ensemble", ensembles, **fields)
    with pytest.raises(ConfigError, match=message) as err:
        run_suite(suite, workspace / "runs" / "refused-ensemble", log=quiet)
    assert "\n" not in str(err.value)


def test_without_validation_data_the_cells_run_and_pooling_is_skipped(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOY_CKPT", str(workspace / "ckpt"))
    data = "\n".join(f'{s} = "{workspace / s}.jsonl"' for s in ("train", "test"))
    (workspace / "tasks" / "noval.toml").write_text(
        f'task = "classification"\n\n[data]\n{data}\n\n[finetune]\nmax_steps = 2\nbatch_size = 8\n',
        encoding="utf-8",
    )
    suite = write_suite(
        workspace,
        "noval",
        tasks='["tasks/noval.toml"]',
        seeds="1",
        ensembles='[{name = "x", model = "pretrained", baseline = "majority"}]',
    )
    lines: list[str] = []
    run = run_suite(suite, workspace / "runs" / "noval", log=lines.append)
    cells = json.loads((run / "results.json").read_text())["cells"]
    assert {c["column"] for c in cells} == {"majority", "pretrained", "scratch"}
    assert not any("validation_predictions_file" in c for c in cells)
    assert any("no validation predictions to choose a weight on; skipped" in x for x in lines)
