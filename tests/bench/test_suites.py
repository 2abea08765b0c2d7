"""Benchmark suites: config validation, reports, baselines, compare, and one real run.

The toy task, workspace and counting fakes are in ``conftest.py``; caching and
resumption are in ``test_cache.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from plugformer.errors import ConfigError
from plugformer.suites.aggregate import bootstrap_ci
from plugformer.suites.bench import run_suite
from plugformer.suites.compare import (
    compare_runs,
    format_comparison,
    paired_bootstrap_p,
    paired_permutation_p,
)
from plugformer.suites.config import load_suite
from tests.bench.conftest import RESULTS, Fakes, KeywordTask, quiet, write_suite

# --------------------------------------------------------------------------- configuration


def test_suite_config_validates(workspace: Path) -> None:
    suite = load_suite(write_suite(workspace, seeds="3", overrides="{finetune = {max_steps = 5}}"))
    assert suite.name == "suite" and suite.seeds == [0, 1, 2] and suite.baselines
    assert [b.name for b in suite.backbones] == ["pretrained", "scratch"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({"backbones": '[{name = "a", ref = "x", reff = "y"}]'}, "unknown key 'backbones.0.reff'"),
        ({"seeds": "0"}, "seeds"),
        (
            {"overrides": "{finetune = {max_stepz = 5}}"},
            "did you mean 'overrides.finetune.max_steps'",
        ),
        (
            {"backbones": '[{name = "a", ref = "x"}, {name = "a", ref = "y"}]'},
            "backbones: duplicates a",
        ),
    ],
)
def test_bad_suite_names_the_field(workspace: Path, line: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=r"bad\.toml") as err:
        load_suite(write_suite(workspace, "bad", **line))
    assert message in str(err.value)


def test_unset_backbone_variable_is_one_clear_error(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOY_CKPT", raising=False)
    with pytest.raises(ConfigError, match=r"\$\{TOY_CKPT\} is not set.*--backbone pretrained=REF"):
        run_suite(write_suite(workspace), workspace / "runs" / "unset", log=quiet)


# --------------------------------------------------------------------------- reports and compare


def test_report_has_every_task_baseline_and_plot(workspace: Path, fakes: Fakes) -> None:
    run = workspace / "runs" / "report"
    run_suite(
        write_suite(workspace, tasks='["tasks/alpha.toml", "tasks/beta.toml"]'), run, log=quiet
    )
    report = (run / "report.md").read_text()
    for needle in (
        "| alpha (keyword) |",
        "| beta (keyword) |",
        "always-pos (baseline)",
        "| pretrained |",
        "95% percentile-bootstrap interval",
        "fraction of correct labels (0-1)",
    ):
        assert needle in report
    csv_lines = (run / "report.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 2 * 3  # header; 2 tasks × (2 backbones + 1 baseline)
    cells = json.loads((run / "results.json").read_text())["cells"]
    assert {c["kind"] for c in cells} == {"model", "baseline"}
    model = next(c for c in cells if c["kind"] == "model")
    assert (
        model["backbone"]["weights_sha256"]
        and model["hardware"]["cpu_count"]
        and model["versions"]["task_plugin"] == "1.0"
    )
    for png in ("main_metric.png", "val_curves.png"):
        assert (run / png).read_bytes()[:4] == b"\x89PNG"


def test_on_result_is_called_for_baseline_cells(workspace: Path, fakes: Fakes) -> None:
    run_suite(write_suite(workspace), workspace / "runs" / "hook", log=quiet)
    (baseline,) = RESULTS  # the fakes stand in for evaluate, which calls the hook itself
    assert baseline["baseline"] == "always-pos" and baseline["metrics"]["accuracy"] == 0.5


class ValidationSpy:
    """A tuned baseline: it answers the majority label of the validation examples it is given."""

    definition = "the most frequent validation label"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, train: list[Any], test: list[Any], validation: list[Any]) -> list[Any]:
        self.seen = [ex.text for ex in validation]
        labels = [ex.label for ex in validation]
        label = max(sorted(set(labels)), key=labels.count)
        self.chosen = {"label": label, "n_validation": len(validation)}
        return [{"label": label} for _ in test]


def test_baselines_get_validation_and_their_choices_are_recorded(
    workspace: Path, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ValidationSpy()
    old = {"always-pos": lambda train, test: [{"label": "pos"} for _ in test]}
    monkeypatch.setattr(KeywordTask, "baselines", lambda self: {**old, "spy": spy})
    run = run_suite(write_suite(workspace, seeds="[0]"), workspace / "runs" / "tuned", log=quiet)
    cells = {c["column"]: c for c in json.loads((run / "results.json").read_text())["cells"]}
    validation = [json.loads(line)["text"] for line in open(workspace / "validation.jsonl")]
    assert spy.seen == validation  # the validation split, never test
    assert cells["spy"]["baseline"] == {
        "name": "spy",
        "definition": "the most frequent validation label",
        "chosen": {"label": "neg", "n_validation": 6},
        "tuned_on": "validation",
    }
    # A two-argument baseline still runs; it reports nothing and was tuned on nothing.
    assert cells["always-pos"]["baseline"] == {
        "name": "always-pos", "definition": None, "chosen": {}, "tuned_on": None
    }  # fmt: skip
    assert json.loads((run / "cells" / f"{cells['spy']['key']}.json").read_text())["baseline"]


def test_compare_flags_incomparable_cells(workspace: Path, fakes: Fakes) -> None:
    run_a, run_b = workspace / "runs" / "cmp-a", workspace / "runs" / "cmp-b"
    run_suite(write_suite(workspace), run_a, log=quiet)
    run_suite(write_suite(workspace, overrides="{finetune = {max_steps = 3}}"), run_b, log=quiet)
    results = json.loads((run_b / "results.json").read_text())
    for cell in results["cells"]:
        if cell["column"] == "scratch":
            cell["metric_info"] = {"accuracy": "another definition"}
        if cell["kind"] == "baseline":
            cell["data"] = {"test": "0" * 64}
    (run_b / "results.json").write_text(json.dumps(results))
    rows = {r.column: r for r in compare_runs(run_a, run_b)}
    assert rows["pretrained"].problem is None and rows["pretrained"].delta == pytest.approx(0.0)
    assert rows["pretrained"].p_value == 1.0 and rows["pretrained"].seeds == [0, 1]
    assert rows["scratch"].problem == "metric definition (metric_info / signature) differs"
    assert rows["always-pos"].problem == "data version differs" and rows["always-pos"].delta is None
    assert "NOT COMPARED: data version differs" in format_comparison(list(rows.values()), "a", "b")


def test_compare_refuses_a_damaged_results_file_in_one_line(workspace: Path, fakes: Fakes) -> None:
    """Before: a results.json that parsed but whose cells lacked a field or held a string metric
    stopped `bench compare` with "unexpected error: KeyError: 'spec'" (or ValueError, TypeError)."""
    from plugformer.errors import PlugformerError

    run_a, run_b = workspace / "runs" / "ok-a", workspace / "runs" / "bad-b"
    run_suite(write_suite(workspace), run_a, log=quiet)
    results = json.loads((run_a / "results.json").read_text())
    damages = {
        "'spec' is missing": lambda cells: cells[0].pop("spec"),
        "'metrics' is missing": lambda cells: cells[1].pop("metrics"),
        "is not a number": lambda cells: cells[0]["metrics"].update(accuracy="high"),
        "'n_examples' is missing": lambda cells: cells[0].pop("n_examples"),
        "not a JSON object": lambda cells: cells.append(5),
    }
    for expect, damage in damages.items():
        broken = json.loads(json.dumps(results))
        damage(broken["cells"])
        run_b.mkdir(parents=True, exist_ok=True)
        (run_b / "results.json").write_text(json.dumps(broken))
        with pytest.raises(PlugformerError, match=r"bad-b/results\.json: cells\[\d+\]: ") as err:
            compare_runs(run_a, run_b)
        assert expect in str(err.value)
    (run_b / "results.json").write_bytes(b"\xff\xfe")
    with pytest.raises(PlugformerError, match="not a suite results file"):
        compare_runs(run_a, run_b)


def test_bootstrap_interval_sanity() -> None:
    assert bootstrap_ci([0.7, 0.7, 0.7]) == (0.7, 0.7)
    assert bootstrap_ci([0.3]) == (0.3, 0.3)
    low, high = bootstrap_ci([0.1, 0.5, 0.9, 0.4])
    assert 0.1 <= low < 0.475 < high <= 0.9
    assert bootstrap_ci([0.1, 0.5, 0.9, 0.4]) == (low, high)  # fixed RNG seed
    assert paired_bootstrap_p([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]) == 1.0
    assert paired_bootstrap_p([0.5, 0.6, 0.7], [0.6, 0.7, 0.8]) < 0.01  # a constant shift
    assert paired_bootstrap_p([0.5], [0.6]) is None


def test_a_few_seeds_cannot_give_a_small_p() -> None:
    """Before: `bench compare` printed p=0.000999 for two seeds whose differences shared a sign
    (+0.025, +0.075): the centred bootstrap of two differences never reaches the observed mean."""
    assert paired_permutation_p([0.975, 0.825], [1.0, 0.9]) == 0.5
    assert paired_permutation_p([0.5, 0.6, 0.7], [0.6, 0.7, 0.8]) == 0.25  # 2 / 2**3
    assert paired_permutation_p([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]) == 1.0
    assert paired_permutation_p([0.5], [0.6]) is None
    shift = [0.1 * i for i in range(20)]  # Monte Carlo above 16 pairs: a clear shift is small
    assert paired_permutation_p(shift, [x + 0.1 for x in shift]) < 0.01


# --------------------------------------------------------------------------- end to end


def test_real_finetune_end_to_end(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOY_CKPT", str(workspace / "ckpt"))
    run = run_suite(write_suite(workspace, seeds="1"), workspace / "runs" / "real", log=quiet)
    cells = json.loads((run / "results.json").read_text())["cells"]
    assert [c["kind"] for c in cells] == ["baseline", "model", "model"]
    for cell in cells[1:]:
        assert 0.0 <= cell["metrics"]["accuracy"] <= 1.0 and cell["finetune"]["val_history"]
    assert len(RESULTS) == 3  # evaluate told plugins of both model cells, the suite of the baseline
    assert not (run / "work").exists()  # task checkpoints are not kept


def test_backbone_settings_override_the_suite_and_pick_tasks(
    workspace: Path, fakes: Fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[tuple[str, str], Any] = {}
    real = fakes.finetune

    def spy(spec: Any, backbone: str, out_dir: Path) -> dict[str, Any]:
        seen[(spec.label, backbone)] = spec.finetune
        return real(spec, backbone, out_dir)

    monkeypatch.setattr("plugformer.training.finetune.finetune", spy)
    suite = write_suite(
        workspace,
        "per-backbone",
        tasks='["tasks/alpha.toml", "tasks/beta.toml"]',
        seeds="[0]",
        overrides="{finetune = {max_steps = 3, lr_head = 0.01}}",
        backbones=(
            '[{name = "pretrained", ref = "${TOY_CKPT}", '
            "task_overrides = {beta = {finetune = {max_steps = 5}}}}, "
            '{name = "scratch", ref = "scratch:${TOY_CKPT}", tasks = ["alpha"], '
            "overrides = {finetune = {max_steps = 7, max_minutes = 0.5}}, "
            "task_overrides = {alpha = {finetune = {lr_head = 0.02}}}}]"
        ),
    )
    run = run_suite(suite, workspace / "runs" / "per-backbone", log=quiet)
    ckpt, scratch = str(workspace / "ckpt"), f"scratch:{workspace / 'ckpt'}"
    # (alpha and beta are the same spec under two names: beta's cell would be alpha's, from the
    # cache, but the pretrained backbone has settings of its own on beta)
    assert set(seen) == {("alpha", ckpt), ("beta", ckpt), ("alpha", scratch)}
    assert seen[("alpha", ckpt)].max_steps == 3 and seen[("alpha", ckpt)].max_minutes is None
    assert seen[("beta", ckpt)].max_steps == 5  # its settings on this spec only
    assert seen[("alpha", scratch)].max_steps == 7  # the backbone's own setting wins
    assert seen[("alpha", scratch)].max_minutes == 0.5
    assert seen[("alpha", scratch)].lr_head == 0.02  # and its setting on the spec over both
    cells = json.loads((run / "results.json").read_text())["cells"]
    models = sorted((c["spec"], c["column"]) for c in cells if c["kind"] == "model")
    assert models == [("alpha", "pretrained"), ("alpha", "scratch"), ("beta", "pretrained")]


@pytest.mark.parametrize(
    ("fields", "expect"),
    [
        # a typo in a backbone's tasks silently dropped its every cell
        (
            {"backbones": '[{name = "p", ref = "${TOY_CKPT}", tasks = ["alfa"]}]'},
            "bad-plan.toml: backbone 'p': tasks names 'alfa', which is no spec or task",
        ),
        (
            {"backbones": '[{name = "p", ref = "${TOY_CKPT}", task_overrides = {alfa = {}}}]'},
            "bad-plan.toml: backbone 'p': task_overrides names 'alfa', which is no spec or task",
        ),
        # an unknown family was found only when its first cell ran, the run directory made
        (
            {"backbones": '[{name = "p", ref = "bogus:x"}]'},
            "bad-plan.toml: backbone 'p': unknown backbone family 'bogus'",
        ),
        (
            {"backbones": '[{name = "p", ref = "scratch:bogus:x"}]'},
            "bad-plan.toml: backbone 'p': unknown backbone family 'bogus'",
        ),
        # the suite's seeds and overrides were blamed on the spec file
        ({"seeds": "[-1]"}, "bad-plan.toml: seeds.0: Input should be greater than or equal to 0"),
        (
            {"overrides": "{finetune = 3}"},
            "bad-plan.toml: its overrides on alpha.toml: finetune: Input should be",
        ),
        (
            {
                "backbones": '[{name = "p", ref = "${TOY_CKPT}", '
                'overrides = {finetune = {batch_size = "x"}}}]'
            },
            "bad-plan.toml: backbone 'p''s overrides on alpha.toml: finetune.batch_size",
        ),
    ],
)
def test_a_bad_plan_is_refused_before_any_cell_and_blamed_on_the_suite(
    workspace: Path, fakes: Fakes, fields: dict[str, str], expect: str
) -> None:
    from plugformer.errors import PlugformerError

    run = workspace / "runs" / "bad-plan"
    with pytest.raises(PlugformerError) as err:
        run_suite(write_suite(workspace, "bad-plan", **fields), run, log=quiet)
    assert expect in str(err.value)
    assert not fakes.finetunes and not run.exists()


def test_unknown_backbone_override_key_is_named(workspace: Path) -> None:
    suite = write_suite(
        workspace,
        "bad-override",
        backbones='[{name = "p", ref = "x", overrides = {finetune = {max_step = 3}}}]',
    )
    with pytest.raises(
        ConfigError, match=r"backbones\.0: unknown spec key .overrides\.finetune\.max_step."
    ):
        load_suite(suite)


def test_predictions_are_logged_and_rescore_to_the_reported_metric(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOY_CKPT", str(workspace / "ckpt"))
    run = run_suite(
        write_suite(workspace, "logged", seeds="1"), workspace / "runs" / "logged", log=quiet
    )
    cells = json.loads((run / "results.json").read_text())["cells"]
    for cell in cells:
        samples = [json.loads(x) for x in (run / cell["predictions_file"]).read_text().splitlines()]
        assert len(samples) == cell["n_examples"] == 8
        right = sum(s["prediction"]["label"] == s["example"]["label"] for s in samples)
        assert right / len(samples) == pytest.approx(cell["metrics"]["accuracy"])
    model = next(c for c in cells if c["kind"] == "model")
    compute = model["compute"]
    assert compute["params_trained"] <= compute["params_total"] and compute["params_total"] > 0
    assert compute["examples_seen"] == 2 * 8  # max_steps 2 × batch 8
    assert (
        compute["tokens_seen"] > 0 and compute["train_flops"] > 0 and compute["train_seconds"] > 0
    )
    report = (run / "report.md").read_text()
    assert "## Compute" in report and "quality_vs_compute.png" in report
    assert (run / "quality_vs_compute.png").read_bytes()[:4] == b"\x89PNG"


def test_an_untrained_twin_of_another_family_is_identified_by_its_reference() -> None:
    """``scratch:hf:NAME`` in a suite: no checkpoint directory to hash, so the report names the
    family and reference and marks the weights re-initialised (it used to fail on a manifest)."""
    from plugformer.suites.plan import backbone_identity

    assert backbone_identity("scratch:hf:minilm-l6") == {
        "family": "hf",
        "ref": "minilm-l6",
        "scratch": True,
    }
    assert backbone_identity("hf:minilm-l6") == {"family": "hf", "ref": "minilm-l6"}
