"""The toy world of the benchmark-suite tests in this folder.

A throwaway keyword-classification task registered in-process by an autouse fixture, a
repository-like workspace (data files, a micro backbone checkpoint, two task specs), a suite
file writer, and counting fakes for ``finetune``/``evaluate`` (the suite logic is what is
under test; one test runs the real loop end to end on the micro backbone).
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
