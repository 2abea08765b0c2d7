"""The checkpoint format refuses wrong, corrupt or newer directories with one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from plugformer.checkpoint import load_backbone, read_manifest
from plugformer.errors import CheckpointError


def copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "ckpt"
    shutil.copytree(src, dst)
    return dst


def test_missing_and_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_manifest(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="not a plugformer checkpoint"):
        read_manifest(tmp_path)


def test_a_run_directory_points_to_its_checkpoint(micro_checkpoint: Path, tmp_path: Path) -> None:
    """Before: ``--backbone scratch:runs/tiny`` (the pretraining run, not ``runs/tiny/final``)
    said only "not a plugformer checkpoint (no plugformer.json)"."""
    shutil.copytree(micro_checkpoint, tmp_path / "run" / "final")
    with pytest.raises(CheckpointError, match=r"run directory: its checkpoint is .*run/final"):
        read_manifest(tmp_path / "run")


def test_newer_format_is_refused(micro_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = copy(micro_checkpoint, tmp_path)
    m = json.loads((ckpt / "plugformer.json").read_text())
    m["format_version"] = 99
    (ckpt / "plugformer.json").write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="newer than this plugformer reads"):
        load_backbone(ckpt)


def test_corrupt_weights_and_tokenizer_mismatch(micro_checkpoint: Path, tmp_path: Path) -> None:
    ckpt = copy(micro_checkpoint, tmp_path)
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="corrupt weights"):
        load_backbone(ckpt)
    ckpt2 = copy(micro_checkpoint, tmp_path / "b")
    tok = json.loads((ckpt2 / "tokenizer.json").read_text())
    tok["added_tokens"][5]["content"] = "<other>"
    (ckpt2 / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(CheckpointError, match="tokenizer"):
        load_backbone(ckpt2)


def test_save_is_atomic(micro_checkpoint: Path, tmp_path: Path) -> None:
    from plugformer.checkpoint import save_backbone

    loaded = load_backbone(micro_checkpoint)

    class Boom(Exception):
        pass

    class BadTokenizer:
        def save(self, path: Path) -> None:
            raise Boom

        hash = "x"

    with pytest.raises(Boom):
        save_backbone(tmp_path / "out", loaded.model, BadTokenizer())
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no temporary leftovers
