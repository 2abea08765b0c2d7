"""Backbone families: a family registered in-process goes through fine-tune → save → load →
predict with no core change; freeze_layers and scratch work for every family; checkpoints
load through the family their manifest names."""

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
from plugformer.config import TaskSpec
from plugformer.errors import CheckpointError
from plugformer.inference.predictor import load
from plugformer.models.backbones import resolve_backbone
from plugformer.models.families import BackboneFamily, LoadedBackbone, freeze_layers, kind_of
from plugformer.testing import tokenizer_for


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_freeze_layers_on_hf_minilm_freezes_embeddings_and_the_lowest_blocks() -> None:
    pytest.importorskip("transformers")
    model = resolve_backbone("hf:minilm-l6").model
    bert = model.hf_model
    total = trainable(model)
    freeze_layers(model, 2)
    frozen = sum(p.numel() for p in bert.embeddings.parameters()) + sum(
        p.numel() for layer in bert.encoder.layer[:2] for p in layer.parameters()
    )
    assert frozen > 0 and trainable(model) == total - frozen
    assert all(p.requires_grad for p in bert.encoder.layer[2].parameters())
    assert kind_of(model) == "encoder"


# --------------------------------------------------------------------------- a toy family


class ToyConfig(BaseModel):
    vocab_size: int
    d_model: int = 16
    n_layers: int = 2

    max_seq_len: int = 64


class Toy(nn.Module):
    """A toy architecture: embeddings and a stack of GRUs (causal by construction)."""

    family = "toy"
    causal = True

    def __init__(self, cfg: ToyConfig) -> None:
        super().__init__()
        self.config, self.d_model, self.max_seq_len = cfg, cfg.d_model, cfg.max_seq_len
        self.emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(
            nn.GRU(cfg.d_model, cfg.d_model, batch_first=True) for _ in range(cfg.n_layers)
        )
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def forward(self, input_ids, attention_mask=None, cache=None, positions=None):
        x = self.emb(input_ids)  # (B, T, C)
        for gru in self.layers:
            x = x + gru(x)[0]  # (B, T, C)
        return x

    def lm_logits(self, hidden):
        return self.head(hidden)


class ToyFamily(BackboneFamily):
    name = "toy"
    tokenizer: Any = None

    def resolve(self, ref: str, seed: int = 0, **_: Any) -> LoadedBackbone:
        torch.manual_seed(seed)
        model = self.build({"vocab_size": self.tokenizer.vocab_size, "n_layers": int(ref)})
        return LoadedBackbone(model, self.tokenizer, {"weights_sha256": "toy"}, None)

    def build(self, model_config: dict[str, Any]) -> Toy:
        return Toy(ToyConfig.model_validate(model_config))

    def layers(self, model: Toy) -> tuple[list[Any], list[Any]]:
        return [model.emb], list(model.layers)


ROWS = [
    {"text": f"a {w} film, truly {w}", "label": lab}
    for w, lab in [("great", "pos"), ("lovely", "pos"), ("awful", "neg"), ("dreadful", "neg")]
] * 6


@pytest.fixture
def toy_family() -> ToyFamily:
    family = ToyFamily()
    family.tokenizer = tokenizer_for(ROWS, vocab_size=300)
    plugin = types.ModuleType("pt_toy_family")

    @hookimpl
    def register_backbones(register):
        register("toy", family)

    plugin.register_backbones = register_backbones
    plugins.register_plugin(plugin, "toy-family")
    return family


@pytest.mark.slow
def test_a_plugin_family_finetunes_saves_loads_and_predicts(
    toy_family: ToyFamily, tmp_path: Path
) -> None:
    pytest.importorskip("plugformer_sentiment")
    from plugformer.training.finetune import finetune

    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n", encoding="utf-8")
    spec = TaskSpec.model_validate(
        {
            "task": "sentiment",
            "data": {"train": str(data)},
            "finetune": {"max_steps": 3, "batch_size": 8, "progress": False, "freeze_layers": 1},
        }
    )
    summary = finetune(spec, backbone="toy:2", out_dir=tmp_path / "run")
    manifest = json.loads((Path(summary["checkpoint"]) / "plugformer.json").read_text())
    assert manifest["family"] == "toy"
    predictor = load(summary["checkpoint"])
    assert isinstance(predictor.backbone, Toy) and len(predictor.backbone.layers) == 2
    (pred,) = predictor.predict(["a great film"])
    assert pred["label"] in ("pos", "neg")
    # scratch: works for the plugin's family too: same architecture, other weights
    twin = resolve_backbone(f"scratch:{summary['checkpoint']}", seed=5).model
    assert isinstance(twin, Toy)
    assert not torch.equal(twin.emb.weight, predictor.backbone.emb.weight)
    # without the plugin, the checkpoint says which family it needs
    plugins.unregister_plugin("toy-family")
    with pytest.raises(CheckpointError, match="family 'toy'"):
        load(summary["checkpoint"])


def test_freeze_layers_through_the_family(toy_family: ToyFamily) -> None:
    model = toy_family.resolve("3").model
    freeze_layers(model, 1)
    assert not model.emb.weight.requires_grad
    assert [all(not p.requires_grad for p in g.parameters()) for g in model.layers] == [
        True,
        False,
        False,
    ]
    assert model.head.weight.requires_grad


def test_native_freeze_and_scratch_twin(micro_checkpoint: Path) -> None:
    loaded = resolve_backbone(str(micro_checkpoint))
    model = loaded.model
    freeze_layers(model, 1)
    assert not model.wte.weight.requires_grad
    assert not any(p.requires_grad for p in model.blocks[0].parameters())
    assert all(p.requires_grad for p in model.blocks[1].parameters())
    twin = resolve_backbone(f"scratch:{micro_checkpoint}", seed=1)
    assert twin.manifest["scratch"] and twin.model.config == model.config
    assert not torch.equal(twin.model.wte.weight, model.wte.weight)
