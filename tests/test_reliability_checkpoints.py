"""Issue 20, "Reliability, round two", finding 3: manifests. One test (or a few) per finding of the
hostile-user attack, each reproducing the attack: a checkpoint whose manifest, tokenizer,
weights or head was tampered with is refused. Findings 3, 4, 6 and 7 are in the four
test_reliability_*.py files; signals (1) are in test_signals.py; QA memory (5) and the SQuAD
metric (8) in plugins/qa/tests; bench cells (2) in bench/test_cache.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from plugformer.checkpoint import load_backbone, save_backbone, save_task
from plugformer.config import ModelConfig, TaskSpec, parse_model
from plugformer.errors import CheckpointError
from plugformer.inference.predictor import load
from plugformer.manifest import entry_hashes
from plugformer.models.families import LoadedBackbone
from plugformer.models.gpt import GPT
from plugformer.tokenizer import train_tokenizer
from tests.conftest import TEXTS


def _backbone(tmp: Path, tok: Any) -> Path:
    torch.manual_seed(0)
    model = GPT(ModelConfig(preset="micro", vocab_size=tok.vocab_size))
    return save_backbone(tmp / "bb", model, tok)


def _edit(path: Path, fn: Any, rehash: bool = True) -> None:
    """Edit the manifest; ``rehash`` updates its entry hashes too, as a careful forger would,
    so the checks behind them are reached."""
    manifest = json.loads((path / "plugformer.json").read_text())
    fn(manifest)
    if rehash:
        manifest.update(entry_hashes(manifest))
    (path / "plugformer.json").write_text(json.dumps(manifest))


def test_a_removed_tokenizer_hash_is_refused(tmp_path: Path, tok: Any) -> None:
    """Before: the tokenizer hash was checked only when present; with it removed, a swapped
    tokenizer gave an IndexError or silently different predictions."""
    ckpt = _backbone(tmp_path, tok)
    _edit(ckpt, lambda m: m.pop("tokenizer_sha256"))
    with pytest.raises(CheckpointError, match="tokenizer_sha256"):
        load_backbone(ckpt)


def test_a_swapped_tokenizer_of_the_same_size_is_refused(tmp_path: Path, tok: Any) -> None:
    ckpt = _backbone(tmp_path, tok)
    other = train_tokenizer([t.upper() for t in TEXTS] * 4, vocab_size=300, min_frequency=1)
    assert other.vocab_size == tok.vocab_size and other.hash != tok.hash
    other.save(ckpt / "tokenizer.json")
    _edit(ckpt, lambda m: m.pop("tokenizer_sha256"))  # the attack removed the hash as well
    with pytest.raises(CheckpointError):
        load_backbone(ckpt)
    _edit(ckpt, lambda m: m.update(tokenizer_sha256=tok.hash))
    with pytest.raises(CheckpointError, match=r"tokenizer\.json does not match"):
        load_backbone(ckpt)


def test_edited_weights_are_refused_by_their_hash(tmp_path: Path, tok: Any) -> None:
    ckpt = _backbone(tmp_path, tok)
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="weights_sha256"):
        load_backbone(ckpt)


def test_an_enlarged_model_config_is_refused_before_any_allocation(
    tmp_path: Path, tok: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the model was built from model_config first (an enlarged config allocated ~2 GB),
    and only then did the weights fail to load."""
    import plugformer.models.gpt as model_mod

    ckpt = _backbone(tmp_path, tok)
    _edit(ckpt, lambda m: m["model_config"].update(d_model=4096, n_layers=32, n_heads=32))
    built: list[str] = []

    class Spy(model_mod.GPT):
        def __init__(self, cfg: Any) -> None:
            built.append(torch.empty(()).device.type)  # "meta" inside a meta-device context
            super().__init__(cfg)

    monkeypatch.setattr(model_mod, "GPT", Spy)
    with pytest.raises(CheckpointError, match=r"do not match the manifest's model_config"):
        load_backbone(ckpt)
    assert built == ["meta"]  # only the shape check's meta-device model was built


def _sentiment_checkpoint(tmp_path: Path, tok: Any) -> Path:
    """A sentiment task checkpoint on a random micro backbone (labels pos / neg)."""
    from plugformer.training.finetune import build_task

    torch.manual_seed(0)
    model = GPT(ModelConfig(preset="micro", vocab_size=tok.vocab_size))
    task = build_task("sentiment", {}, tok)
    task.prepare([task.parse_example({"text": "a", "label": lab}) for lab in ("pos", "neg")])
    spec = parse_model(TaskSpec, {"task": "sentiment", "data": {"dataset": "x"}})
    ckpt = save_task(
        tmp_path / "t", LoadedBackbone(model, tok, {}), task.build_head(model), task, spec, {}
    )
    return ckpt


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: m["task"].update(name=5), "task.name"),
        (lambda m: m["task"].update(options="fast"), "task.options"),
        (lambda m: m["task"].update(state=[1]), "task.state"),
        (lambda m: m.pop("task"), "a task checkpoint needs"),
        (lambda m: m.update(format_version="1"), "format_version"),
        (lambda m: m.update(kind="model"), "kind"),
    ],
)
def test_manifest_fields_are_type_checked(tmp_path: Path, tok: Any, edit: Any, field: str) -> None:
    """Before: a wrong type in a manifest's task fields ended in AttributeError/KeyError/TypeError."""
    ckpt = _sentiment_checkpoint(tmp_path, tok)
    assert load(ckpt).predict(["a good film"])[0]["label"] in ("pos", "neg")
    _edit(ckpt, edit)
    with pytest.raises(CheckpointError, match=field.replace(".", r"\.")):
        load(ckpt)


def test_a_damaged_head_is_refused(tmp_path: Path, tok: Any) -> None:
    """Before: head.safetensors had no hash; a bit-flipped head loaded and predicted garbage."""
    ckpt = _sentiment_checkpoint(tmp_path, tok)
    head = bytearray((ckpt / "head.safetensors").read_bytes())
    head[-1] ^= 0x40  # the exponent of the last weight: still a valid safetensors file
    (ckpt / "head.safetensors").write_bytes(bytes(head))
    with pytest.raises(CheckpointError, match=r"head\.safetensors does not match"):
        load(ckpt)


def test_an_invalid_model_config_value_is_one_line_naming_the_field(
    tmp_path: Path, tok: Any
) -> None:
    """Before: pydantic's own message, four lines ending in a URL."""
    ckpt = _backbone(tmp_path, tok)
    _edit(ckpt, lambda m: m["model_config"].update(max_seq_len=-1))
    with pytest.raises(CheckpointError, match=r"invalid model_config in manifest: ") as info:
        load_backbone(ckpt)
    assert "\n" not in str(info.value) and "model_config.max_seq_len" in str(info.value)


def test_a_manifest_edited_to_another_head_count_is_refused(tmp_path: Path, tok: Any) -> None:
    """Before: ``n_heads`` changes no tensor's shape, so a manifest edited to another head count
    loaded the weights into a different model without a word. ``model_config`` is hashed."""
    ckpt = _backbone(tmp_path, tok)
    assert json.loads((ckpt / "plugformer.json").read_text())["model_config"]["n_heads"] != 1
    _edit(ckpt, lambda m: m["model_config"].update(n_heads=1), rehash=False)
    with pytest.raises(
        CheckpointError, match=r"'model_config' does not match .*model_config_sha256"
    ):
        load_backbone(ckpt)


def test_an_edited_task_state_is_refused(tmp_path: Path, tok: Any) -> None:
    """Before: swapping a sentiment checkpoint's labels loaded, and every prediction came out
    inverted; so did another pooling. ``task`` is hashed."""
    ckpt = _sentiment_checkpoint(tmp_path, tok)
    state = json.loads((ckpt / "plugformer.json").read_text())["task"]["state"]
    assert sorted(state["labels"]) == ["neg", "pos"]
    _edit(ckpt, lambda m: m["task"]["state"].update(labels=state["labels"][::-1]), False)
    with pytest.raises(CheckpointError, match=r"'task' does not match .*task_sha256") as info:
        load(ckpt)
    assert "\n" not in str(info.value)


def test_identical_saves_write_identical_bytes(tmp_path: Path, tok: Any) -> None:
    """Before: the weights' safetensors metadata held two keys, written in a random order, so
    identical runs wrote different ``model.safetensors`` bytes and weights hashes."""
    hashes = {
        json.loads((_backbone(tmp_path / str(i), tok) / "plugformer.json").read_text())[
            "weights_sha256"
        ]
        for i in range(4)
    }
    assert len(hashes) == 1


def test_an_unknown_model_config_key_gets_a_did_you_mean(tmp_path: Path, tok: Any) -> None:
    """Before: the unknown key was named without the field it was likely meant for."""
    ckpt = _backbone(tmp_path, tok)

    def misspell(m: dict[str, Any]) -> None:
        m["model_config"]["n_head"] = m["model_config"].pop("n_heads")

    _edit(ckpt, misspell)
    with pytest.raises(CheckpointError, match=r"unknown key 'model_config\.n_head'") as info:
        load_backbone(ckpt)
    assert "did you mean 'model_config.n_heads'?" in str(info.value)
