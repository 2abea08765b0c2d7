"""A third-party backbone family, as docs/plugins.md#backbone-families shows it: a tiny causal
conv LM that pretrains, saves, loads and has a ``scratch:`` twin with no core change; its own
``[model.options]``; and one-line refusals, before any work, of what it cannot do (decode) or
of a family that does not meet the contract."""

from __future__ import annotations

import inspect
import json
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from plugformer import hookimpl, plugins
from plugformer.config import ModelConfig, PretrainConfig, parse_model
from plugformer.errors import PlugformerError
from plugformer.models.families import BackboneFamily, LoadedBackbone
from tests.conftest import micro_config

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


# --------------------------------------------------------------------------- the family the docs show


class ConvOptions(BaseModel):
    """``[model.options]`` of the convfam family."""

    model_config = ConfigDict(extra="forbid")
    kernel_size: int = Field(3, ge=1)


class ConvLM(nn.Module):
    """Embeddings, then causal 1-D convolutions: a decoder without incremental decoding."""

    family = "convfam"  # the family that builds, loads and freezes it
    causal = True

    def __init__(self, cfg: ModelConfig, options: ConvOptions) -> None:
        super().__init__()
        self.config = cfg  # config.model_dump() is the checkpoint's model_config
        self.d_model, self.max_seq_len = cfg.d_model, cfg.max_seq_len
        self.pad = options.kernel_size - 1
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.convs = nn.ModuleList(
            nn.Conv1d(cfg.d_model, cfg.d_model, options.kernel_size) for _ in range(cfg.n_layers)
        )
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def forward(self, input_ids, attention_mask=None, cache=None, positions=None):
        x = self.wte(input_ids).transpose(1, 2)  # (B, C, T)
        for conv in self.convs:
            x = x + torch.relu(conv(nn.functional.pad(x, (self.pad, 0))))  # (B, C, T)
        return x.transpose(1, 2)  # (B, T, C)

    def lm_logits(self, hidden):
        return self.head(hidden)  # (B, T, V)


class ConvFamily(BackboneFamily):
    name = "convfam"
    Options = ConvOptions

    def resolve(self, ref: str, **_: Any) -> LoadedBackbone:
        from plugformer.checkpoint import load_backbone

        return load_backbone(ref)  # a checkpoint directory of this family

    def build(self, model_config: dict[str, Any]) -> ConvLM:
        cfg = ModelConfig.model_validate({**model_config, "family": self.name})
        return ConvLM(cfg, self.read_options(model_config))

    def layers(self, model: ConvLM) -> tuple[list[Any], list[Any]]:
        return [model.wte], list(model.convs)


# --------------------------------------------------------------------------- helpers


def register_family(name: str, family: Any) -> None:
    plugin = types.ModuleType(f"pt_{name}_family")

    @hookimpl
    def register_backbones(register):
        register(name, family)

    plugin.register_backbones = register_backbones
    plugins.register_plugin(plugin, f"{name}-family")


@pytest.fixture
def convfam() -> Any:
    register_family("convfam", ConvFamily())
    yield
    plugins.unregister_plugin("convfam-family")


def conv_config(corpus: Path, out: Path, **model: Any) -> dict[str, Any]:
    raw = micro_config(corpus, out, max_steps=3, val_every=3, checkpoint_every=3)
    raw["model"] = {"family": "convfam", "n_layers": 2, "d_model": 16, "max_seq_len": 32, **model}
    return raw


def write_toml(path: Path, raw: dict[str, Any]) -> Path:
    """A pretraining config file (only the keys these tests use)."""
    lines = []
    for section, table in raw.items():
        if not isinstance(table, dict):
            continue
        lines.append(f"[{section}]")
        nested = {k: v for k, v in table.items() if isinstance(v, dict)}
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items() if k not in nested]
        for key, sub in nested.items():
            lines.append(f"[{section}.{key}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in sub.items()]
    lines.insert(0, f"out_dir = {json.dumps(raw['out_dir'])}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from plugformer.cli.main import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.err.strip()


# --------------------------------------------------------------------------- pretraining


@pytest.mark.slow
def test_a_plugin_family_pretrains_saves_loads_and_has_a_scratch_twin(
    convfam: Any, corpus_file: Path, tmp_path: Path
) -> None:
    from plugformer.checkpoint import load_backbone
    from plugformer.models.backbones import resolve_backbone
    from plugformer.training.pretrain import pretrain

    raw = conv_config(corpus_file, tmp_path / "run", options={"kernel_size": 2})
    summary = pretrain(parse_model(PretrainConfig, raw))
    final = Path(summary["checkpoint"])
    manifest = json.loads((final / "plugformer.json").read_text())
    assert manifest["family"] == "convfam"
    assert manifest["model_config"]["options"] == {"kernel_size": 2}  # round trip
    loaded = load_backbone(final)
    assert isinstance(loaded.model, ConvLM) and loaded.model.convs[0].kernel_size == (2,)
    # no num_params: the count falls back to the parameters'
    assert summary["n_params"] == sum(p.numel() for p in loaded.model.parameters())
    twin = resolve_backbone(f"scratch:convfam:{final}", seed=3).model
    assert isinstance(twin, ConvLM) and not torch.equal(twin.wte.weight, loaded.model.wte.weight)


class Bare(nn.Module):
    """A model without lm_logits and without a family attribute."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config, self.wte = cfg, nn.Embedding(cfg.vocab_size, cfg.d_model)

    def forward(self, input_ids, attention_mask=None, cache=None, positions=None):
        return self.wte(input_ids)  # (B, T, C)


class BareFamily(ConvFamily):
    name = "barefam"

    def build(self, model_config: dict[str, Any]) -> Bare:
        return Bare(ModelConfig.model_validate({**model_config, "family": self.name}))


def test_pretrain_refuses_a_model_that_lacks_what_it_needs_before_writing(
    corpus_file: Path, tmp_path: Path
) -> None:
    from plugformer.training.pretrain import pretrain

    register_family("barefam", BareFamily())
    raw = conv_config(corpus_file, tmp_path / "run")
    raw["model"]["family"] = "barefam"
    with pytest.raises(PlugformerError) as err:
        pretrain(parse_model(PretrainConfig, raw))
    assert str(err.value) == (
        "backbone family 'barefam': its model lacks lm_logits, family (needed to pretrain; "
        "see docs/plugins.md#backbone-families)"
    )
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------- the register contract


def test_a_callable_family_must_return_a_loaded_backbone() -> None:
    from plugformer.models.backbones import resolve_backbone

    cfg = ModelConfig(family="convfam", vocab_size=300, n_layers=1, d_model=8, max_seq_len=16)
    register_family("bare", lambda ref, **_: ConvLM(cfg, ConvOptions()))
    with pytest.raises(PlugformerError) as err:
        resolve_backbone("bare:x")
    assert str(err.value).startswith(
        "backbone family 'bare' returned a ConvLM from resolve, expected a "
        "plugformer.models.families.LoadedBackbone"
    )


def test_the_hookspec_and_the_guide_document_the_family_form() -> None:
    from plugformer import hookspecs

    doc = hookspecs.register_backbones.__doc__ or ""
    assert "-> Backbone`" not in doc
    assert "BackboneFamily" in doc and "LoadedBackbone" in doc
    assert "docs/plugins.md#backbone-families" in doc
    guide = DOCS.read_text(encoding="utf-8")
    section = guide.split("\n## Backbone families\n", 1)[1].split("\n## ", 1)[0]
    for example in (ConvOptions, ConvLM, ConvFamily):  # the guide's example is this file's
        assert inspect.getsource(example) in section, example.__name__
    scope: dict[str, Any] = {}
    exec(section.split("```python\n", 1)[1].split("```", 1)[0], scope)  # and it runs as shown
    assert scope["ConvFamily"]().name == "convfam" and "register_backbones" in scope


# --------------------------------------------------------------------------- decoding


@pytest.fixture
def conv_checkpoint(convfam: Any, tok: Any, tmp_path: Path) -> Path:
    from plugformer.checkpoint import save_backbone

    cfg = ModelConfig(family="convfam", vocab_size=tok.vocab_size, n_layers=1, d_model=8)
    return save_backbone(tmp_path / "conv", ConvFamily().build(cfg.model_dump()), tok)


def test_generation_refuses_a_family_that_cannot_decode_before_training(
    conv_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("plugformer_generation")
    from plugformer.config import TaskSpec
    from plugformer.training.finetune import finetune

    line = (
        "backbone family 'convfam' cannot decode (its model needs new_cache and lm_logits, "
        "or incremental(); see docs/plugins.md#backbone-families)"
    )
    data = tmp_path / "train.jsonl"
    data.write_text(json.dumps({"prompt": "a b", "completion": "c"}) + "\n", encoding="utf-8")
    spec = TaskSpec.model_validate(
        {"task": "generation", "data": {"train": str(data)}, "finetune": {"max_steps": 2}}
    )
    with pytest.raises(PlugformerError) as err:
        finetune(spec, backbone=str(conv_checkpoint), out_dir=tmp_path / "ft")
    assert str(err.value) == line
    assert not (tmp_path / "ft" / "checkpoints").exists()
    code, err_text = run_cli(["generate", str(conv_checkpoint), "the film"], capsys)
    assert code != 0 and err_text.endswith(f"{conv_checkpoint}: {line}")
    assert "Traceback" not in err_text


# --------------------------------------------------------------------------- config checks


def test_a_mistyped_family_is_named_by_validate_and_pretrain_before_writing(
    convfam: Any, corpus_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = conv_config(corpus_file, tmp_path / "run")
    raw["model"]["family"] = "convfm"
    path = write_toml(tmp_path / "X.toml", raw)
    want = f"{path}: model.family: unknown backbone family 'convfm' (did you mean 'convfam'?; "
    for args in (["config", "validate", str(path), "--kind", "pretrain"], ["pretrain", str(path)]):
        code, err = run_cli(args, capsys)
        assert code != 0 and want in err and "installed: " in err, err
        assert err.count("\n") == 0 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_family_options_are_validated_where_the_config_is(
    convfam: Any, corpus_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = conv_config(corpus_file, tmp_path / "run", options={"kernel_size": 0})
    path = write_toml(tmp_path / "X.toml", raw)
    code, err = run_cli(["config", "validate", str(path), "--kind", "pretrain"], capsys)
    assert code != 0 and f"{path}: model.options.kernel_size: " in err, err
    code, err = run_cli(
        ["config", "validate", str(path), "--set", "model.options.kernelsize=2"], capsys
    )
    assert code != 0 and "unknown key 'model.options.kernelsize'" in err, err
    assert "did you mean 'model.options.kernel_size'" in err
    code, err = run_cli(
        ["config", "validate", str(path), "--set", "model.options.kernel_size=2"], capsys
    )
    assert code == 0, err
    # the native family takes no options: refused when validated and when built
    raw = conv_config(corpus_file, tmp_path / "run", family="native", options={"kernel_size": 2})
    path = write_toml(tmp_path / "N.toml", raw)
    code, err = run_cli(["config", "validate", str(path)], capsys)
    assert code != 0 and f"{path}: unknown key 'model.options.kernel_size'" in err, err
    from plugformer.models.families import get_family

    cfg = ModelConfig(preset="micro", vocab_size=300, options={"kernel_size": 2})
    with pytest.raises(PlugformerError, match="backbone family 'native': unknown key 'options"):
        get_family("native").build(cfg.model_dump())


def test_a_checkpoint_saved_before_model_options_still_loads(tok: Any, tmp_path: Path) -> None:
    from plugformer.checkpoint import MANIFEST, load_backbone, save_backbone
    from plugformer.models.gpt import GPT

    model = GPT(ModelConfig(preset="micro", vocab_size=tok.vocab_size))
    path = save_backbone(tmp_path / "old", model, tok)
    manifest = json.loads((path / MANIFEST).read_text())
    del manifest["model_config"]["options"]  # as written before [model.options] existed
    del manifest["model_config_sha256"]  # ... and before model_config was hashed
    (path / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    loaded = load_backbone(path)
    assert loaded.model.config.options == {}
    assert torch.equal(loaded.model.wte.weight, model.wte.weight)
