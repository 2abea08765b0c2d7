"""Hostile input, checkpoints: crafted or broken checkpoints are refused before anything in them
is used (nothing is executed), and evaluate names what it was given. Every case gives exit 2
and exactly one ``plugformer: error:`` line naming the file (and line where there is one)."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from plugformer.cli.main import main
from tests.cli_helpers import cli, main_code, toml
from tests.conftest import micro_config

# --------------------------------------------------------------------------- crafted checkpoints


class _Payload:
    """Unpickling this would create a marker file (as an attacker's code would run)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["pickle-payload", "truncated", "garbage", "not-a-dict"])
def test_resume_refuses_crafted_last_ckpt(
    kind: str, corpus_file: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    last = out / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    marker = tmp_path / "PWNED"
    if kind == "pickle-payload":
        torch.save({"state_dict": {}, "global_step": 1, "x": _Payload(marker)}, last)
    elif kind == "truncated":
        buf = io.BytesIO()
        torch.save({"state_dict": {"w": torch.ones(100)}, "global_step": 1}, buf)
        last.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif kind == "garbage":
        last.write_bytes(b"\x00\xffnot a checkpoint" * 10)
    else:
        torch.save([1, 2, 3], last)
    cfg = toml(tmp_path / "c.toml", micro_config(corpus_file, out))
    code, line = cli(capsys, "pretrain", str(cfg), "--resume")
    assert code == 2 and str(last) in line
    assert not marker.exists(), "the pickle payload was executed"
    if kind == "pickle-payload":
        assert "GLOBAL" in line and "system" in line


def test_weights_come_only_from_safetensors(micro_checkpoint: Path, tmp_path: Path, capsys) -> None:
    """A pickle dropped where the weights belong is rejected as corrupt, never unpickled."""
    ck = tmp_path / "ck"
    shutil.copytree(micro_checkpoint, ck)
    marker = tmp_path / "PWNED"
    torch.save({"x": _Payload(marker)}, ck / "model.safetensors")
    code, line = cli(capsys, "generate", str(ck), "hello", "--max-new-tokens", "2")
    assert code == 2 and "model.safetensors" in line and "corrupt" in line
    assert not marker.exists()


@pytest.mark.parametrize(
    ("manifest", "expect"),
    [
        ({"format_version": 99, "kind": "backbone"}, "newer than this plugformer reads"),
        ({"format_version": "1", "kind": "backbone"}, "format"),
        ({"kind": "backbone"}, "lacks format_version"),
        ([1, 2], "lacks format_version"),
        ("{not json", "corrupt manifest"),
        (b"\xff\xfe\x00", "corrupt manifest"),
    ],
)
def test_ckpt_inspect_bad_manifests(
    manifest, expect: str, micro_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    ck = tmp_path / "ck"
    shutil.copytree(micro_checkpoint, ck)
    target = ck / "plugformer.json"
    if isinstance(manifest, bytes):
        target.write_bytes(manifest)
    elif isinstance(manifest, str):
        target.write_text(manifest)
    else:
        target.write_text(json.dumps(manifest))
    code, line = cli(capsys, "ckpt", "inspect", str(ck))
    assert code == 2 and expect in line and "plugformer.json" in line


def test_ckpt_inspect_verifies_the_weights(micro_checkpoint: Path, tmp_path: Path, capsys) -> None:
    """Before: inspect passed a truncated model.safetensors and a manifest whose shape
    disagreed with the weights, which every loader then refused."""
    ck = tmp_path / "ck"
    shutil.copytree(micro_checkpoint, ck)
    assert main_code(capsys, "ckpt", "inspect", str(ck)) == 0
    weights = ck / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    code, line = cli(capsys, "ckpt", "inspect", str(ck))
    assert code == 2 and "model.safetensors" in line
    assert main_code(capsys, "ckpt", "inspect", "--manifest-only", str(ck)) == 0


def test_ckpt_inspect_missing_and_file(tmp_path: Path, capsys) -> None:
    code, line = cli(capsys, "ckpt", "inspect", str(tmp_path / "nope"))
    assert code == 2 and "no such checkpoint" in line
    (tmp_path / "f").write_text("x")
    code, line = cli(capsys, "ckpt", "inspect", str(tmp_path / "f"))
    assert code == 2 and "not a file" in line


def test_evaluate_names_what_it_was_given_instead_of_a_task_checkpoint(
    micro_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    """A missing path, a folder that is no checkpoint, and a backbone checkpoint each get their
    own line (a backbone's used to read "stores no spec; give ... --data FILE" with --data given)."""
    data = tmp_path / "test.jsonl"
    data.write_text('{"text": "fine", "label": "pos"}\n')
    code, line = cli(capsys, "evaluate", str(tmp_path / "nope"))
    assert code == 2 and "no such checkpoint directory" in line
    code, line = cli(capsys, "evaluate", str(tmp_path))
    assert code == 2 and "not a checkpoint (no plugformer.json)" in line
    code, line = cli(capsys, "evaluate", str(micro_checkpoint), "--data", str(data))
    assert code == 2 and "a backbone checkpoint" in line and "fine-tune it first" in line


@pytest.mark.parametrize("given", ["movie-review-sentences", "mine.jsonl"])
def test_evaluate_a_spec_on_other_data_takes_a_dataset_name_or_a_file(
    given: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """`evaluate SPEC --checkpoint CKPT --data NAME` read NAME as a file ("no such file"); a
    dataset name is now scored as the dataset's split, a file as that split, each whole (the
    spec's max_test is for its own data)."""
    import plugformer.training.finetune as ft

    seen: dict[str, Any] = {}

    def fake_run(spec: Any, checkpoint: Path, split: str, options: Any) -> dict[str, Any]:
        seen.update(data=spec.data, split=split)
        return {"metrics": {"accuracy": 1.0}}

    monkeypatch.setattr(ft, "evaluate", fake_run)
    monkeypatch.chdir(tmp_path)
    if given.endswith(".jsonl"):
        Path(given).write_text('{"text": "fine", "label": "pos"}\n')
    out = tmp_path / "r.json"
    main(["evaluate", "movie-reviews", "--checkpoint", "ck", "--data", given, "--out", str(out)])
    data = seen["data"]
    if given.endswith(".jsonl"):
        assert (data.dataset, data.test) == (None, given)
    else:
        assert (data.dataset, data.test) == (given, None)
    assert data.max_test is None and seen["split"] == "test"
