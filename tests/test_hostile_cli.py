"""Hostile input, the command line: predict's inputs (files, stdin), specs that cannot validate,
new-plugin names, bad arguments. Every case gives exit 2 and exactly one ``plugformer: error:``
line naming the file (and line where there is one)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from plugformer.cli.main import main
from tests.cli_helpers import cli, main_code


def _sentiment_spec(tmp_path: Path, steps: int) -> Any:
    """A sentiment spec on eight tiny training rows (no validation data), ``steps`` steps."""
    from plugformer.config import TaskSpec

    rows = [{"text": f"a {w} film", "label": w[0]} for w in ("good", "bad") * 4]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = TaskSpec(
        task="sentiment",
        data={"train": str(tmp_path / "train.jsonl")},
        finetune={"max_steps": steps, "batch_size": 4, "progress": False},
    )
    return spec


def test_predict_input_errors_name_file_and_line(
    micro_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    """Before: ``predict --input`` errors named no line ("input '{...': invalid JSON",
    "<input>: field 'text': Field required")."""
    from plugformer.training.finetune import finetune

    spec = _sentiment_spec(tmp_path, steps=2)
    ckpt = finetune(spec, str(micro_checkpoint), tmp_path / "run")["checkpoint"]
    capsys.readouterr()
    bad_json = tmp_path / "in.jsonl"
    bad_json.write_text('{"text": "great film"}\n{"text": \n')
    code, line = cli(capsys, "predict", ckpt, "--input", str(bad_json))
    assert code == 2 and f"{bad_json}:2: invalid JSON object" in line
    missing = tmp_path / "in2.jsonl"
    missing.write_text('{"text": "fine"}\n\n{"txt": "x"}\n')
    code, line = cli(capsys, "predict", ckpt, "--input", str(missing))
    assert code == 2 and f"{missing}:3: field 'text'" in line
    assert capsys.readouterr().out == ""  # nothing predicted before the refusal
    # Before: a byte that is not UTF-8 was "unexpected error: UnicodeDecodeError", exit 1.
    latin1 = tmp_path / "in3.txt"
    latin1.write_bytes("a fine film\nun film tr\xe8s dr\xf4le\n".encode("latin-1"))
    code, line = cli(capsys, "predict", ckpt, "--input", str(latin1))
    assert code == 2 and f"{latin1}:2: not UTF-8 text" in line
    # Before: an empty --input file said "nothing to predict" without naming it.
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    code, line = cli(capsys, "predict", ckpt, "--input", str(empty))
    assert code == 2 and f"{empty}: no inputs" in line


def test_a_spec_without_validation_says_so_and_reports_its_last_step(
    micro_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    """Before: no line said there was no validation, Lightning's warning leaked, and the
    summary claimed best_step 0."""
    import warnings

    from plugformer.training.finetune import finetune

    spec = _sentiment_spec(tmp_path, steps=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = finetune(spec, str(micro_checkpoint), tmp_path / "run")
    assert summary["best_step"] == summary["steps"] == 3
    assert "no validation data: the last step's weights are kept" in capsys.readouterr().err
    assert not [w for w in caught if "val_dataloader" in str(w.message)]


def test_new_plugin_takes_the_distribution_name_too(tmp_path: Path, capsys) -> None:
    """Before: ``new-plugin plugformer-foo`` wrote plugformer-plugformer-foo."""
    assert main_code(capsys, "new-plugin", "plugformer-foo", "--dir", str(tmp_path)) == 0
    assert (tmp_path / "plugformer-foo").is_dir()
    assert not (tmp_path / "plugformer-plugformer-foo").exists()
    # A name whose distribution is installed (a first-party plugin) would replace it.
    code, line = cli(capsys, "new-plugin", "sentiment", "--dir", str(tmp_path))
    assert code == 2 and "plugformer-sentiment is already installed" in line
    assert not (tmp_path / "plugformer-sentiment").exists()


def test_a_bad_argument_is_one_line(tmp_path: Path, capsys) -> None:
    """Before: click's usage errors printed three lines (usage, hint, error)."""
    code, line = cli(capsys, "predict", str(tmp_path), "--input", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "nope.jsonl" in line and "No such file" in line
    assert "plugformer predict --help" in line
    code, line = cli(capsys, "pretrian")
    assert code == 2 and "No such command 'pretrian'" in line


def test_predict_strips_crlf_and_a_byte_order_mark_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Before: ``printf 'bad movie\\r\\n' | plugformer predict CKPT`` predicted ``'bad movie\\r'``."""
    import types

    import plugformer

    seen: list[Any] = []
    task = types.SimpleNamespace(
        name="fake", options=types.SimpleNamespace(columns={}), read_input=seen.append
    )
    predictor = types.SimpleNamespace(task=task, predict=lambda xs: ["pos" for _ in xs])
    monkeypatch.setattr(plugformer, "load", lambda *a, **k: predictor)
    stdin = types.SimpleNamespace(
        isatty=lambda: False, buffer=io.BytesIO("\ufeffbad movie\r\ngood movie\r\n".encode())
    )
    monkeypatch.setattr("sys.stdin", stdin)
    main(["predict", "ckpt"])
    assert seen == ["bad movie", "good movie"]
    assert capsys.readouterr().out.splitlines() == ['"pos"', '"pos"']


def test_debug_after_the_command_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: ``plugformer config validate X --debug`` said "No such option '--debug'"."""
    from plugformer.errors import ConfigError

    monkeypatch.setenv("PLUGFORMER_DEBUG", "")  # restored after: --debug sets it
    with pytest.raises(ConfigError, match="no-such-config"):  # raised, not one line
        main(["config", "validate", "no-such-config", "--debug"])
