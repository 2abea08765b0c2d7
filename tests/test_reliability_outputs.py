"""Issue 20, "Reliability, round two", finding 4: output directories. One test (or a few) per
finding of the hostile-user attack, each reproducing the attack: an output directory held by
another run, not writable or holding a stale tokenizer; what a run refused early leaves behind;
the permissions of what is written. Findings 3, 4, 6 and 7 are in the four test_reliability_*.py
files; signals (1) are in test_signals.py; QA memory (5) and the SQuAD metric (8) in
plugins/qa/tests; bench cells (2) in bench/test_cache.py."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from plugformer.config import TaskSpec, parse_model
from plugformer.errors import PlugformerError
from plugformer.tokenizer import train_tokenizer
from tests.conftest import TEXTS


def test_a_second_run_into_a_held_directory_is_refused(tmp_path: Path, tok: Any) -> None:
    """Before: two runs into one out_dir both exited 0, with one run's weights beside the
    other's summary and a metrics.csv mixing both."""
    from plugformer.outdir import claim
    from plugformer.training.finetune import finetune

    spec = parse_model(TaskSpec, {"task": "sentiment", "data": {"train": "nowhere.csv"}})
    with claim(tmp_path / "out", "test"):
        with pytest.raises(PlugformerError, match=r"in use by another run \(pid \d+"):
            finetune(spec, "scratch:whatever", tmp_path / "out")
    with claim(tmp_path / "out", "test"):  # released when the first run ended
        pass


def test_a_run_that_fails_before_writing_leaves_no_directory(tmp_path: Path) -> None:
    """Before: a finetune refused for bad input (unknown task, missing data) left OUT/ holding
    only .plugformer.lock."""
    from plugformer.training.finetune import finetune

    spec = parse_model(TaskSpec, {"task": "no-such-task", "data": {"train": "nowhere.csv"}})
    with pytest.raises(PlugformerError):
        finetune(spec, "scratch:whatever", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept").mkdir()  # a directory the user made is left alone
    with pytest.raises(PlugformerError):
        finetune(spec, "scratch:whatever", tmp_path / "kept")
    assert (tmp_path / "kept").is_dir()


def test_finetune_into_a_file_is_one_line(tmp_path: Path) -> None:
    """Before: `finetune --out` a file or an unwritable path ended in "unexpected error"."""
    from plugformer.training.finetune import finetune

    (tmp_path / "file").write_text("x")
    spec = parse_model(TaskSpec, {"task": "sentiment", "data": {"train": "nowhere.csv"}})
    with pytest.raises(PlugformerError, match="not a directory"):
        finetune(spec, "scratch:x", tmp_path / "file")
    with pytest.raises(PlugformerError, match="file"):
        finetune(spec, "scratch:x", tmp_path / "file" / "below")


def test_a_stale_tokenizer_in_out_dir_is_not_reused(corpus_file: Path, tmp_path: Path) -> None:
    """Before: a fresh pretraining run silently reused any out_dir/tokenizer.json, even of
    another vocabulary size or corpus."""
    from plugformer.config import PretrainConfig
    from plugformer.data.corpus import load_documents
    from plugformer.errors import ConfigError
    from plugformer.training.pretrain import _prepare_tokenizer
    from tests.conftest import micro_config

    out = tmp_path / "run"
    out.mkdir()
    stale = train_tokenizer(TEXTS * 4, vocab_size=280, min_frequency=1)
    stale.save(out / "tokenizer.json")
    cfg = parse_model(PretrainConfig, micro_config(corpus_file, out))
    docs = load_documents(cfg.data.corpus)
    fresh = _prepare_tokenizer(cfg, out, docs)
    assert fresh.hash != stale.hash and fresh.vocab_size != 280
    assert _prepare_tokenizer(cfg, out, docs).hash == fresh.hash  # its own is reused
    cfg.tokenizer.vocab_size = 300
    with pytest.raises(ConfigError, match="--resume"):  # a resumed run must not retrain it
        _prepare_tokenizer(cfg, out, docs, resume=True)


def test_evaluate_prints_its_metrics_when_the_checkpoint_is_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: `evaluate` computed the metrics, failed writing eval_test.json beside a read-only
    checkpoint and never printed them."""
    import plugformer.training.finetune as ft
    from plugformer.cli.main import main

    monkeypatch.setattr(
        ft, "evaluate", lambda spec, ckpt, split="test", **kw: {"metrics": {"accuracy": 0.75}}
    )
    (tmp_path / "ro").write_text("a file: nothing can be written below it")
    spec = tmp_path / "s.toml"
    spec.write_text('task = "sentiment"\n[data]\ndataset = "x"\n')
    main(["evaluate", str(spec), "--checkpoint", str(tmp_path / "ro" / "ckpt")])  # exits 0
    out = capsys.readouterr()
    assert json.loads(out.out) == {"accuracy": 0.75}
    assert "not saved" in out.err
    # Written where the user did not say: the file is named on stderr (stdout stays the JSON).
    (tmp_path / "ok").mkdir()
    main(["evaluate", str(spec), "--checkpoint", str(tmp_path / "ok" / "ckpt")])
    out = capsys.readouterr()
    assert json.loads(out.out) == {"accuracy": 0.75}
    assert f"result written to {tmp_path / 'ok' / 'eval_test.json'}" in out.err
    # Other data or settings never overwrite the checkpoint's own result (before: they did).
    (tmp_path / "other.jsonl").write_text('{"text": "a", "label": "pos"}\n')
    ckpt = ["evaluate", str(spec), "--checkpoint", str(tmp_path / "ok" / "ckpt")]
    main([*ckpt, "--data", str(tmp_path / "other.jsonl")])
    assert f"{tmp_path / 'ok' / 'eval_test-other.json'}" in capsys.readouterr().err
    main([*ckpt, "--set", "options.max_length=16"])
    assert "eval_test-set-" in capsys.readouterr().err


def test_outputs_are_readable_by_others_under_a_normal_umask(tmp_path: Path) -> None:
    """Before: atomic writes left files 0600 and directories 0700 (mkstemp/mkdtemp modes)."""
    from plugformer.fileio import atomic_dir, atomic_write_json

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "r.json", {"a": 1})
        with atomic_dir(tmp_path / "d") as d:
            atomic_write_json(d / "x.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "d" / "x.json").stat().st_mode) == 0o644


def test_checkpoint_weights_are_readable_by_others_under_a_normal_umask(tmp_path: Path) -> None:
    """Before: safetensors' save_file creates 0600 files, so model/head weights stayed private."""
    import torch
    from safetensors.torch import save_file

    from plugformer.fileio import atomic_dir

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "ckpt") as d:
            save_file({"w": torch.zeros(2)}, str(d / "model.safetensors"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ckpt" / "model.safetensors").stat().st_mode) == 0o644


def _classification_spec(tmp_path: Path) -> Any:
    rows = [
        f"{w} film {i},{'pos' if w == 'good' else 'neg'}"
        for i in range(16)
        for w in ("good", "bad")
    ]
    (tmp_path / "train.csv").write_text("text,label\n" + "\n".join(rows) + "\n")
    return parse_model(
        TaskSpec,
        {
            "task": "classification",
            "data": {"train": str(tmp_path / "train.csv")},
            "options": {"text_fields": ["text"]},
            "finetune": {"max_steps": 2, "batch_size": 8},
        },
    )


def test_a_head_that_does_not_fit_its_task_names_the_task_and_leaves_nothing(
    tmp_path: Path, micro_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: "unexpected error: TypeError: Linear.forward() takes 2 positional arguments but
    3 were given", and OUT/finetune_logs/ left behind."""
    from torch import nn

    from plugformer.default_plugins.declarative import Classification
    from plugformer.errors import PluginError
    from plugformer.training.finetune import finetune

    spec = _classification_spec(tmp_path)
    monkeypatch.setattr(Classification, "build_head", lambda self, backbone: nn.Linear(8, 2))
    with pytest.raises(PluginError) as err:
        finetune(spec, str(micro_checkpoint), tmp_path / "out")
    message = str(err.value)
    assert message.startswith("task 'classification' (plugformer") and "\n" not in message
    assert "failed on its first training batch: TypeError:" in message
    assert not (tmp_path / "out").exists()


def test_a_head_that_forgets_to_pool_is_told_the_shape_it_owes(
    tmp_path: Path, micro_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: "unexpected error: RuntimeError: Expected target size [8, 2], got [8]"."""
    from plugformer.blocks.heads import TokenHead
    from plugformer.default_plugins.declarative import Classification
    from plugformer.errors import PluginError
    from plugformer.training.finetune import finetune

    spec = _classification_spec(tmp_path)

    def unpooled(self: Any, backbone: Any) -> TokenHead:
        return TokenHead(backbone.d_model, 2)

    monkeypatch.setattr(Classification, "build_head", unpooled)
    with pytest.raises(
        PluginError,
        match=r"head returned logits of shape \(8, \d+, 2\); "
        r"expected \(8, 2\)",
    ):
        finetune(spec, str(micro_checkpoint), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_symlinked_output_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    """Before: the rename replaced the link with a file; its target kept the old result."""
    from plugformer.fileio import atomic_write_json

    target, link = tmp_path / "target.json", tmp_path / "link.json"
    target.write_text("{}")
    link.symlink_to(target)
    atomic_write_json(link, {"accuracy": 0.5})
    assert link.is_symlink() and json.loads(target.read_text()) == {"accuracy": 0.5}


def test_an_output_that_is_not_a_regular_file_is_written_in_place(tmp_path: Path) -> None:
    """Before: ``--out /dev/null`` (or ``/dev/stdout``, a FIFO) was replaced by a regular
    file — as root, the device itself. A FIFO stands in for the device here."""
    import threading

    from plugformer.fileio import atomic_write_text

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    atomic_write_text(fifo, "metrics\n")
    reader.join(timeout=10)
    assert got == ["metrics\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still the pipe, not a file


def test_a_long_but_valid_file_name_can_be_written(tmp_path: Path) -> None:
    """Before: the temporary sibling's name (the name + random part + ``.tmp``) passed 255
    bytes, so a 240-character name was refused as too long."""
    from plugformer.fileio import atomic_dir, atomic_write_text

    for name in ("a" * 240 + ".json", "é" * 120 + ".json"):
        atomic_write_text(tmp_path / name, "x")
        assert (tmp_path / name).read_text() == "x"
    with atomic_dir(tmp_path / ("d" * 250)) as tmp:
        (tmp / "f").write_text("y")
    assert (tmp_path / ("d" * 250) / "f").read_text() == "y"


def _plugformer_cli() -> list[str]:
    import sys

    return [sys.executable, "-c", "from plugformer.cli.main import main; main()"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_standard_output_is_one_error_not_an_unexpected_one() -> None:
    """Before: `plugformer tasks --json > /dev/full` printed "unexpected error: OSError"."""
    import subprocess

    with open("/dev/full", "w") as full:
        res = subprocess.run(
            [*_plugformer_cli(), "tasks", "--json"], stdout=full, stderr=subprocess.PIPE, text=True
        )
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "plugformer: error: cannot write the output: No space left on device"
    ]


def test_an_os_error_on_a_path_says_what_was_wrong_with_it() -> None:
    """Before: every OSError that reached the CLI was "cannot write PATH", also a config or a
    checkpoint that could not be *read* and a folder given where a file was expected."""
    import errno

    from plugformer.cli.main import _os_error

    def err(code: int, path: str | None = "/x/y") -> str:
        return _os_error(OSError(code, os.strerror(code), path))

    assert err(errno.EISDIR) == "/x/y: expected a file, found a folder"
    assert err(errno.ENOENT) == "/x/y: no such file"
    assert err(errno.EACCES) == "cannot read or write /x/y: Permission denied"
    assert err(errno.ENOSPC) == "cannot write /x/y: No space left on device"
    assert err(errno.ENOSPC, None) == "cannot write the output: No space left on device"


def test_a_reader_that_goes_away_stops_the_output_quietly() -> None:
    """`plugformer tasks --json | head -c 1`: the pipe closes before the output is written;
    the command stops with click's exit status for a broken pipe, 1, and nothing on stderr
    (no "unexpected error", no "Exception ignored" from the interpreter's last flush)."""
    import subprocess

    proc = subprocess.Popen(
        [*_plugformer_cli(), "tasks", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the child has started: its first write finds no reader
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert err == ""
