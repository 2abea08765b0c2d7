"""Issue 20, "Reliability, round two", finding 7: inputs and configs. One test (or a few) per
finding of the hostile-user attack, each reproducing the attack: data files are read as meant (a
byte-order mark, labels written as floats), and a bad label or config value is one error naming
the file and line or the field. Findings 3, 4, 6 and 7 are in the four test_reliability_*.py
files; signals (1) are in test_signals.py; QA memory (5) and the SQuAD metric (8) in
plugins/qa/tests; bench cells (2) in bench/test_cache.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from plugformer.config import TaskSpec, parse_model
from plugformer.errors import DataError


def _sentiment() -> Any:
    from plugformer.training.finetune import build_task

    return build_task("sentiment", {}, None)


def test_a_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("text,label\na fine film,pos\na dull film,neg\n".encode("utf-8-sig"))
    examples = _sentiment().read_file(path)
    assert [e.text for e in examples] == ["a fine film", "a dull film"]


def test_an_empty_label_cell_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\ngood,pos\nbad,\n")
    with pytest.raises(DataError, match=rf"{path}:3: field 'label': .*empty label"):
        _sentiment().read_file(path)


def test_integer_labels_written_as_floats_are_one_class(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [("good", 1), ("fine", "1.0"), ("bad", 0), ("awful", 0.0), ("ok", " 1 ")]
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    task = _sentiment()
    task.prepare(task.read_file(path))
    assert task.labels == ["0", "1"]


@pytest.mark.parametrize(
    ("value", "got"),
    [(5, "a number (5)"), (2.5, "a number (2.5)"), (True, "a boolean (true)"),
     (["a"], "a list"), (None, "null")],
)  # fmt: skip
def test_a_text_that_is_no_string_is_refused_naming_file_line_and_field(
    value: Any, got: str, tmp_path: Path
) -> None:
    """Before: ``{"text": 5}`` was read as the text "5" (pydantic's coerce_numbers_to_str,
    meant for ids and labels). Ids and labels still take numbers."""
    from plugformer.training.finetune import build_task

    path = tmp_path / "d.jsonl"
    rows = [{"id": 1, "text": "good", "label": 1}, {"text": value, "label": "pos"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    expect = f"{path}:2: field 'text': expected a string, got {got}"
    with pytest.raises(DataError) as exc:
        _sentiment().read_file(path)
    assert str(exc.value) == expect
    with pytest.raises(DataError) as exc:  # the core's declarative classification too
        build_task("classification", {}, None).read_file(path)
    assert str(exc.value) == expect
    path.write_text(json.dumps(rows[0]) + "\n")
    (example,) = _sentiment().read_file(path)
    assert (example.id, example.text, example.label) == ("1", "good", "1")


def test_label_errors_name_file_and_line(tmp_path: Path) -> None:
    from plugformer.training.finetune import build_task

    path = tmp_path / "d.csv"
    path.write_text("text,label\ngood,pos\nbad,neg\nodd,maybe\n")
    task = build_task("sentiment", {"labels": ["neg", "pos"]}, None)
    with pytest.raises(DataError, match=rf"{path}:4: training labels \['maybe'\]"):
        task.prepare(task.read_file(path))


def test_an_unseen_label_at_scoring_time_names_file_and_line(tmp_path: Path) -> None:
    """Before: `evaluate --data` on a file with a label the checkpoint never saw said
    "example (no id): label 'maybe' is not one of ['neg', 'pos']", naming no file or line."""
    from plugformer.training.finetune import build_task

    train, test = tmp_path / "train.csv", tmp_path / "test.jsonl"
    train.write_text("text,label\ngood,pos\nbad,neg\n")
    test.write_text('{"text": "fine", "label": "pos"}\n{"text": "hm", "label": "maybe"}\n')
    task = build_task("sentiment", {}, None)
    task.prepare(task.read_file(train))
    examples = task.read_file(test)
    with pytest.raises(DataError, match=rf"^{test}:2: label 'maybe' is not one of"):
        task.update_metrics(task.metrics(), [{"label": "pos"}] * 2, examples)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("seed = 1979-05-27", "date"),
        ("seed = 4294967296", "seed"),
        ("[optim]\nbetas = [nan, 0.95]", "betas"),
        ("[optim]\nbetas = [0.9, inf]", "betas"),
        ("[trainer]\nmax_steps = true", "max_steps"),
        ("[optim]\nlr = inf", "lr"),
        ("out_dir = 2026-12-01T10:00:00", "date"),
    ],
)
def test_bad_config_values_fail_validation_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    """Before: TOML dates, seeds beyond 2**32 and NaN betas passed `config validate` and then
    crashed the run with "unexpected error"; `max_steps = true` was taken as 1."""
    from plugformer.cli.main import main

    path = tmp_path / "c.toml"
    path.write_text(
        f'{line}\n[data]\ncorpus = ["x.txt"]\n'
        if not line.startswith("[")
        else f'[data]\ncorpus = ["x.txt"]\n{line}\n'
    )
    with pytest.raises(SystemExit) as exc:
        main(["config", "validate", str(path), "--kind", "pretrain"])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    lines = [ln for ln in err.splitlines() if ln.startswith("plugformer:")]
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0], err


def test_a_task_spec_seed_beyond_32_bits_is_refused() -> None:
    from plugformer.errors import ConfigError

    with pytest.raises(ConfigError, match="seed"):
        parse_model(TaskSpec, {"task": "sentiment", "data": {"dataset": "x"}, "seed": 2**32})


@pytest.mark.parametrize(
    ("option", "value", "field"),
    [
        ("--top-p", "95", "top_p"),
        ("--top-p", "nan", "top_p"),
        ("--temperature", "nan", "temperature"),
        ("--temperature", "-1", "temperature"),
        ("--top-k", "0", "top_k"),
        ("--max-new-tokens", "0", "max_new_tokens"),
        ("--repetition-penalty", "0", "repetition_penalty"),
    ],
)
def test_generate_refuses_bad_sampling_settings_in_one_line(
    micro_checkpoint: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, field: str
) -> None:
    """Before: ``--temperature nan`` ended in "unexpected error: probability tensor contains
    either inf, nan or element < 0"; ``--top-p 95`` (meant as 0.95), a negative temperature or
    a zero repetition penalty decoded garbage with exit 0."""
    from plugformer.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["generate", str(micro_checkpoint), "The", option, value])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"{field} = " in lines[0] and "expected" in lines[0], err


def test_generate_with_a_prompt_that_fills_the_context_is_one_line(
    micro_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a prompt as long as the context printed the prompt back, exit 0, no word; more
    new tokens than the context leaves were cut short as silently."""
    from plugformer.checkpoint import load_backbone
    from plugformer.cli.main import main

    context = load_backbone(micro_checkpoint).model.max_seq_len
    with pytest.raises(SystemExit) as exc:
        main(["generate", str(micro_checkpoint), "the " * (2 * context)])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"context of {context} tokens" in lines[0], err

    main(["generate", str(micro_checkpoint), "The", "--max-new-tokens", str(10 * context)])
    assert "leaves room for" in capsys.readouterr().err
