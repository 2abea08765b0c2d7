"""Benchmark suites: config validation, per-cell caching and resumption, reports, compare.

A throwaway keyword-classification task is registered in-process; most tests replace
``finetune``/``evaluate`` with counting fakes (the suite logic is what is under test), and
one test runs the real loop end to end on a micro backbone.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import BaseModel
from torch import nn

from plugformer import hookimpl, plugins
from plugformer.errors import ConfigError
from plugformer.suites.bench import run_suite
from plugformer.suites.compare import compare_runs, format_comparison, paired_bootstrap_p
from plugformer.suites.config import load_suite
from plugformer.suites.report import bootstrap_ci
from plugformer.tasks import Task

WORDS = {"pos": ["good", "great", "fine", "nice"], "neg": ["bad", "awful", "poor", "sad"]}


# --------------------------------------------------------------------------- a toy task


class KeywordExample(BaseModel):
    text: str
    label: str


class KeywordTask(Task):
    """Two labels told apart by keywords: mean-pooled states → linear."""

    name = "keyword"
    Example = KeywordExample
    main_metric = "accuracy"
    version = "1.0"
    labels = ("neg", "pos")

    def encode(self, example: KeywordExample, *, train: bool) -> list[dict[str, Any]]:
        ids = [*self.tokenizer.encode(example.text)[:16], self.tokenizer.eos_id]
        return [{"input_ids": ids, "label": self.labels.index(example.label)}]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.tokenizer.pad_id)  # (B, T)
        for i, f in enumerate(features):
            ids[i, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
        mask = (ids != self.tokenizer.pad_id).long()  # (B, T)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": torch.tensor([f["label"] for f in features]),
        }

    def build_head(self, backbone: Any) -> nn.Module:
        return nn.Linear(backbone.d_model, 2)

    def forward(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        hidden = backbone(batch["input_ids"], batch["attention_mask"])  # (B, T, C)
        return head(hidden.mean(dim=1))  # (B, 2)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs, batch["labels"])

    def predict(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> list[Any]:
        return [
            {"label": self.labels[i]}
            for i in self.forward(backbone, head, batch).argmax(-1).tolist()
        ]

    def metrics(self) -> dict[str, Any]:
        from torchmetrics.classification import MulticlassAccuracy

        return {"accuracy": MulticlassAccuracy(num_classes=2, average="micro")}

    def update_metrics(
        self, metrics: dict[str, Any], predictions: list[Any], examples: list[Any]
    ) -> None:
        pred = torch.tensor([self.labels.index(p["label"]) for p in predictions])
        gold = torch.tensor([self.labels.index(ex.label) for ex in examples])
        metrics["accuracy"].update(pred, gold)

    def metric_info(self) -> dict[str, Any]:
        return {"accuracy": "fraction of correct labels (0-1)"}

    def baselines(self) -> dict[str, Any]:
        return {"always-pos": lambda train, test: [{"label": "pos"} for _ in test]}


RESULTS: list[dict[str, Any]] = []


@hookimpl
def register_tasks(register: Any) -> None:
    register(KeywordTask)


@hookimpl
def on_result(result: dict[str, Any]) -> None:
    RESULTS.append(result)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def toy_plugin(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PLUGFORMER_LOAD_PLUGINS", "")
    plugins.reset()
    module = types.ModuleType("toy_bench_plugin")
    module.register_tasks, module.on_result = register_tasks, on_result  # type: ignore[attr-defined]
    plugins.register_plugin(module, "toy-bench")
    RESULTS.clear()
    yield
    plugins.unregister_plugin("toy-bench")
    plugins.reset()


def _rows(n: int, offset: int = 0) -> list[dict[str, str]]:
    rows = []
    for i in range(offset, offset + n):
        label = "pos" if i % 2 else "neg"
        rows.append(
            {
                "text": f"the film was {WORDS[label][i % 4]} and {WORDS[label][(i + 1) % 4]}",
                "label": label,
            }
        )
    return rows


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository-like folder: data files, a micro backbone checkpoint, two task specs."""
    from plugformer.checkpoint import save_backbone
    from plugformer.testing import micro_backbone, tokenizer_for

    root = tmp_path_factory.mktemp("repo")
    for split, (n, offset) in {"train": (24, 0), "validation": (6, 100), "test": (8, 200)}.items():
        text = "".join(json.dumps(r) + "\n" for r in _rows(n, offset))
        (root / f"{split}.jsonl").write_text(text, encoding="utf-8")
    tok = tokenizer_for(_rows(40))
    save_backbone(
        root / "ckpt", micro_backbone(tok, n_layers=1, d_model=16, max_seq_len=32).model, tok
    )
    data = "\n".join(f'{s} = "{root / s}.jsonl"' for s in ("train", "validation", "test"))
    for name in ("alpha", "beta"):
        (root / "tasks").mkdir(exist_ok=True)
        (root / "tasks" / f"{name}.toml").write_text(
            f'task = "keyword"\n\n[data]\n{data}\n\n[finetune]\nmax_steps = 2\nbatch_size = 8\n',
            encoding="utf-8",
        )
    return root


def write_suite(root: Path, name: str = "suite", **fields: Any) -> Path:
    """A suite file under root/benchmarks/suites; ``fields`` are TOML lines (key → literal)."""
    base = {
        "tasks": '["tasks/alpha.toml"]',
        "seeds": "[0, 1]",
        "backbones": '[{name = "pretrained", ref = "${TOY_CKPT}"}, {name = "scratch", ref = "scratch:${TOY_CKPT}"}]',
    }
    path = root / "benchmarks" / "suites" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(f"{k} = {v}\n" for k, v in {**base, **fields}.items()), encoding="utf-8"
    )
    return path


class Fakes:
    """Counting stand-ins for finetune/evaluate; ``fail_on`` makes that call (1-based) raise."""

    def __init__(self) -> None:
        self.finetunes: list[tuple[str, str, int]] = []
        self.fail_on: int | None = None

    def finetune(self, spec: Any, backbone: str, out_dir: Path) -> dict[str, Any]:
        self.finetunes.append((spec.label, backbone, spec.seed))
        if len(self.finetunes) == self.fail_on:
            raise RuntimeError("killed")
        (Path(out_dir) / "final").mkdir(parents=True)
        history = [{"step": s, "accuracy": 0.5 + 0.1 * s + 0.01 * spec.seed} for s in (1, 2, 3)]
        return {
            "checkpoint": str(Path(out_dir) / "final"),
            "steps": 3,
            "best_step": 3,
            "val_history": history,
            "val_metrics": history[-1],
            "train_examples": 24,
            "wall_seconds": 0.0,
        }

    def evaluate(
        self, spec: Any, checkpoint: Any, split: str = "test", keep_predictions: bool = False
    ) -> dict[str, Any]:
        accuracy = 0.6 + 0.05 * spec.seed + (0.0 if "scratch" in self.finetunes[-1][1] else 0.2)
        return {
            "metrics": {"accuracy": accuracy},
            "main_metric": "accuracy",
            "higher_is_better": True,
            "metric_info": KeywordTask().metric_info(),
            "n_examples": 8,
            "samples": [{"index": 0, "id": None, "example": {}, "prediction": {"label": "pos"}}],
        }


@pytest.fixture()
def fakes(monkeypatch: pytest.MonkeyPatch, workspace: Path) -> Fakes:
    import plugformer.training.finetune

    f = Fakes()
    monkeypatch.setattr(plugformer.training.finetune, "finetune", f.finetune)
    monkeypatch.setattr(plugformer.training.finetune, "evaluate", f.evaluate)
    monkeypatch.setenv("TOY_CKPT", str(workspace / "ckpt"))
    return f


def cell_files(run: Path) -> set[str]:
    return {p.name for p in (run / "cells").glob("*.json")}


def quiet(line: str) -> None:
    """Progress lines go nowhere in tests."""


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
        ({"overrides": "{finetune = {max_stepz = 5}}"}, "did you mean 'finetune.max_steps'"),
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
    assert len(cell_files(run)) == 5 and not list((run / "work").iterdir())


def test_unchanged_rerun_uses_the_cache(workspace: Path, fakes: Fakes) -> None:
    suite, run = write_suite(workspace), workspace / "runs" / "rerun"
    run_suite(suite, run, log=quiet)
    first = json.loads((run / "results.json").read_text())
    lines: list[str] = []
    run_suite(suite, run, log=lines.append)
    assert len(fakes.finetunes) == 4
    assert sum("(cached)" in line for line in lines) == 5
    assert json.loads((run / "results.json").read_text())["summary"] == first["summary"]


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
    import plugformer.suites.bench

    run = workspace / "runs" / "edited"
    run_suite(write_suite(workspace), run, log=quiet)
    real = plugformer.suites.bench.source_hash
    edited = {KeywordTask.__module__: "edited"}
    monkeypatch.setattr(plugformer.suites.bench, "source_hash", lambda m: edited.get(m) or real(m))
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


def test_bootstrap_interval_sanity() -> None:
    assert bootstrap_ci([0.7, 0.7, 0.7]) == (0.7, 0.7)
    assert bootstrap_ci([0.3]) == (0.3, 0.3)
    low, high = bootstrap_ci([0.1, 0.5, 0.9, 0.4])
    assert 0.1 <= low < 0.475 < high <= 0.9
    assert bootstrap_ci([0.1, 0.5, 0.9, 0.4]) == (low, high)  # fixed RNG seed
    assert paired_bootstrap_p([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]) == 1.0
    assert paired_bootstrap_p([0.5, 0.6, 0.7], [0.6, 0.7, 0.8]) < 0.01  # a constant shift
    assert paired_bootstrap_p([0.5], [0.6]) is None


# --------------------------------------------------------------------------- end to end


def test_real_finetune_end_to_end(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOY_CKPT", str(workspace / "ckpt"))
    run = run_suite(write_suite(workspace, seeds="1"), workspace / "runs" / "real", log=quiet)
    cells = json.loads((run / "results.json").read_text())["cells"]
    assert [c["kind"] for c in cells] == ["baseline", "model", "model"]
    for cell in cells[1:]:
        assert 0.0 <= cell["metrics"]["accuracy"] <= 1.0 and cell["finetune"]["val_history"]
    assert len(RESULTS) == 3  # evaluate told plugins of both model cells, the suite of the baseline
    assert not list((run / "work").iterdir())  # task checkpoints are not kept


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
            '[{name = "pretrained", ref = "${TOY_CKPT}"}, '
            '{name = "scratch", ref = "scratch:${TOY_CKPT}", tasks = ["alpha"], '
            "overrides = {finetune = {max_steps = 7, max_minutes = 0.5}}}]"
        ),
    )
    run = run_suite(suite, workspace / "runs" / "per-backbone", log=quiet)
    ckpt, scratch = str(workspace / "ckpt"), f"scratch:{workspace / 'ckpt'}"
    # (alpha and beta are the same spec under two names: beta's cell is alpha's, from the cache)
    assert set(seen) == {("alpha", ckpt), ("alpha", scratch)}
    assert seen[("alpha", ckpt)].max_steps == 3 and seen[("alpha", ckpt)].max_minutes is None
    assert seen[("alpha", scratch)].max_steps == 7  # the backbone's own setting wins
    assert seen[("alpha", scratch)].max_minutes == 0.5
    assert seen[("alpha", scratch)].lr_head == 0.01  # what it does not set comes from the suite
    cells = json.loads((run / "results.json").read_text())["cells"]
    models = sorted((c["spec"], c["column"]) for c in cells if c["kind"] == "model")
    assert models == [("alpha", "pretrained"), ("alpha", "scratch"), ("beta", "pretrained")]


def test_unknown_backbone_override_key_is_named(workspace: Path) -> None:
    suite = write_suite(
        workspace,
        "bad-override",
        backbones='[{name = "p", ref = "x", overrides = {finetune = {max_step = 3}}}]',
    )
    with pytest.raises(ConfigError, match=r"backbones\.p\.overrides\.finetune\.max_step"):
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
    from plugformer.suites.bench import backbone_identity

    assert backbone_identity("scratch:hf:minilm-l6") == {
        "family": "hf",
        "ref": "minilm-l6",
        "scratch": True,
    }
    assert backbone_identity("hf:minilm-l6") == {"family": "hf", "ref": "minilm-l6"}
