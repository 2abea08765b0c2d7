"""Pretraining through Lightning: learning, determinism, exact resume, checkpoints."""

from __future__ import annotations

from pathlib import Path

import lightning
import pytest
import torch
from safetensors.torch import load_file

from plugformer import hookimpl
from plugformer.checkpoint import load_backbone
from plugformer.config import PretrainConfig, parse_model
from plugformer.plugins import register_plugin, unregister_plugin
from plugformer.training.pretrain import pretrain, read_metrics_csv
from tests.conftest import micro_config


def run(corpus: Path, out: Path, resume: bool = False, **trainer: object) -> dict:
    return pretrain(
        parse_model(PretrainConfig, micro_config(corpus, out, **trainer)), resume=resume
    )


def losses(out: Path) -> list[tuple[int, float]]:
    return [
        (int(r["step"]), float(r["train_loss"]))
        for r in read_metrics_csv(out)
        if r.get("train_loss")
    ]


def test_loss_falls_and_beats_unigram(corpus_file: Path, tmp_path: Path) -> None:
    summary = run(corpus_file, tmp_path / "a", max_steps=60)
    curve = losses(tmp_path / "a")
    assert curve[-1][1] < 0.85 * curve[0][1]
    assert summary["val_bpb"] < summary["unigram_val_bpb"]
    assert (tmp_path / "a" / "final" / "plugformer.json").is_file()


def test_same_seed_same_weights(corpus_file: Path, tmp_path: Path) -> None:
    run(corpus_file, tmp_path / "a", max_steps=8)
    run(corpus_file, tmp_path / "b", max_steps=8)
    a = load_file(str(tmp_path / "a" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "final" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class Killed(BaseException):
    """A kill, not a plugin bug: a BaseException, so the plugin-callback guard (which
    switches off callbacks that raise an Exception) lets it end the run."""


class KillAt(lightning.Callback):
    """Dies at the start of a step, as a killed run would (after the last checkpoint)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Killed


class KillPlugin:
    """A throwaway plugin: adds the killing callback through the register_callbacks hook."""

    @hookimpl
    def register_callbacks(self, stage: str, config: object) -> list:
        return [KillAt(20)] if stage == "pretrain" else []


def test_resume_reproduces_the_uninterrupted_run(corpus_file: Path, tmp_path: Path) -> None:
    run(corpus_file, tmp_path / "full", max_steps=30)
    cut = tmp_path / "cut"
    register_plugin(KillPlugin(), "killer")
    with pytest.raises(Killed):
        run(corpus_file, cut, max_steps=30)
    unregister_plugin("killer")
    assert not (cut / "final").exists()
    run(corpus_file, cut, resume=True, max_steps=30)
    full = dict(losses(tmp_path / "full"))
    resumed = dict(losses(cut))
    assert full.keys() == resumed.keys()
    for step in full:
        assert resumed[step] == pytest.approx(full[step], abs=1e-6), step
    a = load_file(str(tmp_path / "full" / "final" / "model.safetensors"))
    b = load_file(str(cut / "final" / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_save_load_gives_identical_logits(micro_checkpoint: Path) -> None:
    a = load_backbone(micro_checkpoint)
    b = load_backbone(micro_checkpoint)
    x = torch.tensor([a.tokenizer.encode("It is a truth universally acknowledged")])
    assert torch.equal(a.model.lm_logits(a.model(x)), b.model.lm_logits(b.model(x)))
    assert a.manifest["kind"] == "backbone" and a.manifest["tokenizer_sha256"] == a.tokenizer.hash


def test_corpus_cache_is_reused(corpus_file: Path, tmp_path: Path) -> None:
    from plugformer.data.cache import plugformer_home

    run(corpus_file, tmp_path / "a", max_steps=2)
    caches = list((plugformer_home() / "tokens").iterdir())
    run(corpus_file, tmp_path / "b", max_steps=2, batch_size=4)
    assert list((plugformer_home() / "tokens").iterdir()) == caches


def test_a_damaged_token_cache_is_rebuilt(tmp_path: Path, capsys) -> None:
    """Before: a truncated train.bin (or a meta.json cut short) in $PLUGFORMER_HOME/tokens stopped
    every pretraining run on that corpus with "unexpected error: ValueError: mmap length is
    greater than file size"; the cache is derived data, so it is rebuilt with a warning."""
    import numpy as np

    from plugformer.data.corpus import Document, build_token_cache
    from plugformer.tokenizer import train_tokenizer

    texts = [
        f"the {w} film was {v} indeed" for w in ("good", "bad", "odd") for v in ("thin", "rich")
    ]
    tok = train_tokenizer(texts * 4, vocab_size=300, min_frequency=1)
    docs = [Document(str(i), t) for i, t in enumerate(texts * 3)]
    first = build_token_cache(docs, tok, 0.2, tmp_path)
    train = np.array(first.tokens("train"))
    (first.dir / "train.bin").write_bytes((first.dir / "train.bin").read_bytes()[:7])
    again = build_token_cache(docs, tok, 0.2, tmp_path)
    assert np.array_equal(np.array(again.tokens("train")), train)
    assert "train.bin holds 7 bytes" in capsys.readouterr().err
    (first.dir / "meta.json").write_text("{")
    assert np.array_equal(
        np.array(build_token_cache(docs, tok, 0.2, tmp_path).tokens("train")), train
    )
    assert "unreadable" in capsys.readouterr().err
    # Overwritten ids, the size kept: an IndexError deep in the model before, no file named
    ids = np.memmap(first.dir / "train.bin", dtype=first.meta["dtype"], mode="r+")
    ids[3] = 65535
    ids.flush()
    del ids
    assert np.array_equal(
        np.array(build_token_cache(docs, tok, 0.2, tmp_path).tokens("train")), train
    )
    assert f"train.bin holds token id 65535, past the vocabulary's {tok.vocab_size}" in (
        capsys.readouterr().err
    )
    build_token_cache(docs, tok, 0.2, tmp_path)
    assert capsys.readouterr().err == ""  # an intact cache is reused silently


def test_masked_lm_pretraining_learns(corpus_file: Path, tmp_path: Path) -> None:
    cfg = micro_config(corpus_file, tmp_path / "mlm", max_steps=80)
    cfg["objective"] = "mlm"
    summary = pretrain(parse_model(PretrainConfig, cfg))
    curve = losses(tmp_path / "mlm")
    k = 5
    assert sum(v for _, v in curve[-k:]) / k < 0.8 * sum(v for _, v in curve[:k]) / k
    loaded = load_backbone(summary["checkpoint"])
    assert loaded.model.causal is False
