"""Hostile and broken input through the command line: every case gives exit 2 and exactly
one ``plugformer: error:`` line naming the file (and line where there is one); nothing in a
crafted checkpoint is executed; archives cannot write outside their target."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from plugformer.cli.main import main
from plugformer.data import sources
from plugformer.errors import DataError
from tests.conftest import micro_config


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``plugformer ARGS`` in-process; (exit code, the single error line)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("plugformer:")]
    assert len(lines) == 1, err[-3000:]
    return int(exit_info.value.code or 0), lines[0]


def toml(path: Path, cfg: dict) -> Path:
    lines = [f"{k} = {json.dumps(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    for table, values in cfg.items():
        if isinstance(values, dict):
            lines += [f"[{table}]", *(f"{k} = {json.dumps(v)}" for k, v in values.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


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


# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"[model\nx=1", "invalid TOML"),
        (b"\xff\xfe[model]", "not UTF-8"),
        (b"[model]\nd_model = 'wide'", "model.d_model"),
        (b"[trainer]\nmax_step = 10", "did you mean 'trainer.max_steps'"),
        (b"[model]\nn_heads = 3\nd_model = 16", "must divide"),
        (b"model = 5", "model"),
        (b"[trainer]\nbatch_size = -1", "trainer.batch_size"),
        (b"[model]\npreset = 'huge'", "unknown preset"),
        (b"x = " + b"[" * 5000 + b"]" * 5000, ""),  # deep nesting: an error, not a crash
    ],
)
def test_config_validate_bad_files(content: bytes, expect: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    code, line = cli(capsys, "config", "validate", str(path))
    assert code == 2 and str(path) in line and expect in line


def test_config_missing_file_and_bad_override(tmp_path: Path, capsys) -> None:
    code, line = cli(capsys, "config", "validate", str(tmp_path / "nope.toml"))
    assert code == 2 and "no such config file" in line
    # paths that exist but are no file are named for what they are, not "no such file"
    code, line = cli(capsys, "config", "validate", str(tmp_path))
    assert code == 2 and "is a directory" in line
    code, line = cli(capsys, "config", "validate", "/dev/null")
    assert code == 2 and "not a regular file" in line
    good = toml(tmp_path / "ok.toml", {"seed": 1})
    code, line = cli(capsys, "config", "validate", str(good), "--set", "seed")
    assert code == 2 and "KEY=VALUE" in line
    code, line = cli(capsys, "config", "validate", str(good), "--set", "seed.x=1")
    assert code == 2 and "not a table" in line
    # A rule over a whole table that names the field: the --set that set it is blamed (it
    # named the file before, which has no preset).
    code, line = cli(
        capsys, "config", "validate", str(good), "--kind", "pretrain", "--set", "model.preset=huge"
    )
    assert code == 2 and line.startswith("plugformer: error: --set model.preset=huge: "), line


# --------------------------------------------------------------------------- pretraining corpora

BAD_CORPORA = {
    # the column is the end of line 2, not "column 1" of the newline after it
    "badjson.jsonl": (
        b'{"text": "fine"}\n{"text": "oops"\n',
        ":2: invalid JSON (Expecting ',' delimiter at column 16)",
    ),
    "notobj.jsonl": (b'{"text": "fine"}\n["a"]\n', ":2: expected a JSON object"),
    "notext.jsonl": (b'{"body": "fine"}\n', ":1: expected a string field 'text'"),
    "texttype.jsonl": (b'{"text": 12}\n', ":1: expected a string field 'text'"),
    "utf8.jsonl": (b'{"text": "ok"}\n{"text": "\xc3\x28"}\n', ":2: invalid UTF-8"),
    "utf8.txt": (b"fine text\n\n\xff\xfe broken", "not UTF-8"),
    "empty.txt": (b"", "no documents"),
    "blank.txt": (b"\n\n  \n", "no documents"),
    "empty.jsonl": (b"", "empty file"),
    "tiny.txt": (b"a\n\nb", "corpus"),
}


@pytest.mark.parametrize("name", sorted(BAD_CORPORA))
def test_pretrain_bad_corpus(name: str, tmp_path: Path, capsys) -> None:
    content, expect = BAD_CORPORA[name]
    corpus = tmp_path / name
    corpus.write_bytes(content)
    cfg = micro_config(corpus, tmp_path / "run", max_steps=2)
    code, line = cli(capsys, "pretrain", str(toml(tmp_path / "c.toml", cfg)))
    assert code == 2 and expect in line, line
    assert name in line or "corpus" in line


def test_pretrain_unknown_corpus_source(tmp_path: Path, capsys) -> None:
    cfg = micro_config(tmp_path / "no-such-file.txt", tmp_path / "run", max_steps=2)
    code, line = cli(capsys, "pretrain", str(toml(tmp_path / "c.toml", cfg)))
    assert code == 2 and "no-such-file.txt" in line


def test_pretrain_huge_line_jsonl(tmp_path: Path, capsys) -> None:
    from plugformer.data.readers import MAX_LINE_BYTES

    corpus = tmp_path / "huge.jsonl"
    with open(corpus, "w") as f:
        f.write('{"text": "ok"}\n{"text": "')
        f.write("a" * (MAX_LINE_BYTES + 10))
        f.write('"}\n')
    cfg = micro_config(corpus, tmp_path / "run", max_steps=2)
    code, line = cli(capsys, "pretrain", str(toml(tmp_path / "c.toml", cfg)))
    assert code == 2 and "huge.jsonl:2: line longer than" in line


# --------------------------------------------------------------------------- fine-tuning data

BAD_EXAMPLES = {
    "badjson.jsonl": (
        b'{"text": "good", "label": "positive"}\n{"text": "x", "label": "negative"\n',
        ":2: invalid JSON",
    ),
    "array.jsonl": (
        b'{"text": "good", "label": "positive"}\n[1, 2]\n',
        ":2: expected a JSON object",
    ),
    "wrongtype.jsonl": (
        b'{"text": ["a"], "label": "positive"}\n{"text": "b", "label": "negative"}\n',
        ":1:",
    ),
    "utf8.jsonl": (
        b'{"text": "ok", "label": "positive"}\n{"text": "\xff", "label": "negative"}\n',
        ":2: invalid UTF-8",
    ),
    "empty.jsonl": (b"", "empty file"),
    "missingcol.csv": (b"sentence,label\nhello,positive\nbye,negative\n", ":2: field 'text'"),
    "ragged.csv": (b"text,label\na,positive\nb\n", ":3: expected 2 columns"),
    "headeronly.tsv": (b"text\tlabel\n", "empty file"),
    "quote.csv": (b'text,label\n"unterminated,positive\n', ":2: unterminated quote"),
    "emptytext.tsv": (b"text\tlabel\n\tpositive\nok\tnegative\n", ":2:"),
    "data.xml": (b"<a/>", "unknown format"),
}


@pytest.mark.parametrize("name", sorted(BAD_EXAMPLES))
def test_finetune_bad_data(name: str, micro_checkpoint: Path, tmp_path: Path, capsys) -> None:
    pytest.importorskip("plugformer_sentiment")
    content, expect = BAD_EXAMPLES[name]
    data = tmp_path / name
    data.write_bytes(content)
    code, line = cli(
        capsys, "finetune", "sentiment", "--data", str(data), "--backbone", str(micro_checkpoint),
        "--out", str(tmp_path / "ft"), "--set", "finetune.max_steps=1",
    )  # fmt: skip
    assert code == 2 and name in line and (expect in line or expect.lower() in line.lower()), line


def test_a_directory_given_as_data_is_named_as_one(tmp_path: Path) -> None:
    """Before: ``--data DIR`` said "unknown format ''" (a folder has no suffix)."""
    from plugformer.data import readers

    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match=r"train: is a directory \(expected a \.jsonl"):
        list(readers.read_records(tmp_path / "train"))


def test_a_csv_quote_never_closed_is_refused_naming_where_it_opened(tmp_path: Path) -> None:
    """Before: Python's lenient csv read an unterminated quote as a field holding the rest of
    the file (the rows after it vanished, or a misleading column count was reported)."""
    from plugformer.data import readers

    path = tmp_path / "d.csv"
    path.write_text('text,label\ngood,pos\n"never closed, pos\nbad,neg\nfine,pos\n')
    with pytest.raises(DataError) as exc:
        list(readers.read_records(path))
    assert str(exc.value) == (
        f"{path}:3: unterminated quote: the quoted field that starts on this line is never closed"
    )
    tsv = tmp_path / "d.tsv"
    tsv.write_text('text\tlabel\ngood\tpos\nbad\t"neg\n')
    with pytest.raises(DataError, match=r"d\.tsv:3: unterminated quote"):
        list(readers.read_records(tsv))
    # valid quoting still reads: commas, doubled quotes and newlines inside quotes, CRLF, a
    # stray quote inside an unquoted field, a closing quote at the very end of the file
    path.write_bytes(
        b'text,label\r\n"a, b",pos\r\n"two\r\nlines ""q""",neg\r\nit"s,pos\r\n"end",neg'
    )
    assert [(w.rsplit(":", 1)[1], r["text"]) for w, r in readers.read_records(path)] == [
        ("2", "a, b"),
        ("4", 'two\r\nlines "q"'),
        ("5", 'it"s'),
        ("6", "end"),
    ]


def test_reader_huge_line_names_file_and_line(tmp_path: Path, monkeypatch) -> None:
    from plugformer.data import readers

    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 64)
    path = tmp_path / "x.tsv"
    path.write_text("text\tlabel\n" + "a" * 100 + "\tpos\n")
    with pytest.raises(DataError, match=r"x\.tsv:2: line longer than 64 bytes"):
        list(readers.read_records(path))


# --------------------------------------------------------------------------- archives


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize(
    ("members", "expect"),
    [
        ([(_info("/etc/evil"), b"x")], "unsafe member path"),
        ([(_info("a/../../evil"), b"x")], "unsafe member path"),
        ([(_info("C:/evil"), b"x")], "unsafe member path"),
        ([(_info("a\\..\\..\\evil"), b"x")], "unsafe member path"),
        ([(_info("hard", tarfile.LNKTYPE, "../../etc/passwd"), None)], "leaves the target"),
        ([(_info("sym", tarfile.SYMTYPE, "/etc/passwd"), None)], "leaves the target"),
        ([(_info("d/sym", tarfile.SYMTYPE, "../../x"), None)], "leaves the target"),
        ([(_info("dev", tarfile.CHRTYPE), None)], "device or fifo"),
        ([(_info("fifo", tarfile.FIFOTYPE), None)], "device or fifo"),
    ],
)
def test_tar_extraction_refuses_escapes(members, expect: str, tmp_path: Path) -> None:
    data = _tar(members)
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(DataError, match=expect):
        sources.safe_extract_tar(data, dest)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_symlink_then_write_through_it_is_refused(tmp_path: Path) -> None:
    """The classic two-step escape: a link to '..' then a file written 'through' it."""
    data = _tar([(_info("up", tarfile.SYMTYPE, ".."), None), (_info("up/evil"), b"x")])
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(DataError):
        sources.safe_extract_tar(data, dest)
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("name", ["/abs/evil", "../evil", "a/../../evil", "C:\\evil"])
def test_zip_read_members_refuses_unsafe_names(name: str) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, "x")
    with pytest.raises(DataError, match="unsafe member path"):
        sources.read_members(buf.getvalue(), "*")


@pytest.mark.parametrize(
    "blob", [b"", b"PK\x03\x04garbage", b"\x1f\x8b\x08garbage", b"not an archive" * 50]
)
def test_corrupt_archives_are_data_errors(blob: bytes, tmp_path: Path) -> None:
    with pytest.raises(DataError):
        sources.read_members(blob, "*")
    with pytest.raises(DataError):
        sources.safe_extract_tar(blob, tmp_path)


def test_a_missing_data_file_is_not_called_an_unknown_dataset(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Before: `finetune TASK --data missing.jsonl` said "unknown dataset 'missing.jsonl'"."""
    missing = tmp_path / "missing.jsonl"
    code, line = cli(capsys, "finetune", "sentiment", "--data", str(missing))
    assert code == 2 and line == f"plugformer: error: {missing}: no such file"
    code, line = cli(capsys, "finetune", "sentiment", "--data", "movie-review-sentencez")
    assert code == 2 and "no such file" not in line  # a bare name is still a dataset name


def test_a_spec_whose_data_file_is_missing_names_the_spec_and_field(
    capsys: pytest.CaptureFixture[str], micro_checkpoint: Path, tmp_path: Path
) -> None:
    """Before: "plugformer: error: gone.jsonl: no such file", naming neither the spec nor which
    of its data fields gave the path."""
    spec = tmp_path / "reviews.toml"
    spec.write_text('task = "sentiment"\n[data]\ntrain = "gone.jsonl"\n')
    code, line = cli(
        capsys,
        "finetune",
        str(spec),
        "--backbone",
        str(micro_checkpoint),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and line == (
        f"plugformer: error: spec 'reviews': data.train: {tmp_path / 'gone.jsonl'}: no such file"
    )


def test_a_bad_set_override_is_named_as_the_override(tmp_path: Path, capsys) -> None:
    """Before: ``--set model.nope=1`` was reported as an unknown key of the config file."""
    good = toml(tmp_path / "ok.toml", {"seed": 1})
    code, line = cli(capsys, "config", "validate", str(good), "--set", "model.nope=1")
    assert code == 2 and line.endswith("--set model.nope=1: unknown key 'model.nope'")
    code, line = cli(capsys, "config", "validate", str(good), "--set", "seed=abc")
    assert code == 2 and "--set seed=abc: seed:" in line
    bad = toml(tmp_path / "bad.toml", {"seed": 1, "model": {"nope": 1}})
    code, line = cli(capsys, "config", "validate", str(bad), "--set", "seed=2")
    assert code == 2 and f"{bad}: unknown key 'model.nope'" in line  # the file's own error
    # A typo in the section (the first part of the key) is the override's too.
    code, line = cli(capsys, "config", "validate", str(good), "--set", "trainr.max_steps=20")
    assert code == 2 and "--set trainr.max_steps=20: unknown key 'trainr'" in line, line


def test_config_validate_checks_a_specs_task_and_options(tmp_path: Path, capsys) -> None:
    """Before: a spec with a misspelt option or an unknown task was "valid", and finetune then
    refused it."""
    spec = toml(
        tmp_path / "s.toml", {"task": "sentiment", "data": {"dataset": "movie-review-sentences"}}
    )
    assert main_code(capsys, "config", "validate", str(spec)) == 0
    bad = toml(
        tmp_path / "o.toml",
        {"task": "sentiment", "data": {"dataset": "x"}, "options": {"poolin": "mean"}},
    )
    code, line = cli(capsys, "config", "validate", str(bad))
    assert code == 2 and "options of task 'sentiment'" in line and "poolin" in line
    unknown = toml(tmp_path / "t.toml", {"task": "sentimnt", "data": {"dataset": "x"}})
    code, line = cli(capsys, "config", "validate", str(unknown))
    assert code == 2 and f"{unknown}: unknown task 'sentimnt'" in line  # names the file
    bounded = toml(
        tmp_path / "m.toml",
        {"task": "sentiment", "data": {"dataset": "x"}, "options": {"max_length": -1}},
    )
    code, line = cli(capsys, "config", "validate", str(bounded))
    assert code == 2 and "max_length" in line and "greater than or equal to 1" in line, line


def test_config_validate_checks_that_a_specs_data_exists(tmp_path: Path, capsys) -> None:
    """Before: a spec naming an unknown dataset or a missing data file was "valid" (the schema
    only), and finetune then refused it. Now validate finds both, as finetune does, in one line
    naming the spec file and the field, and fetches nothing."""
    typo = toml(tmp_path / "d.toml", {"task": "sentiment", "data": {"dataset": "movie-reviewz"}})
    code, line = cli(capsys, "config", "validate", str(typo))
    assert code == 2 and line.startswith(
        f"plugformer: error: {typo}: data.dataset: unknown dataset 'movie-reviewz'"
    ), line
    # data files are relative to the spec file, as finetune reads them
    gone = toml(tmp_path / "f.toml", {"task": "sentiment", "data": {"train": "gone.jsonl"}})
    code, line = cli(capsys, "config", "validate", str(gone))
    assert code == 2 and line == (
        f"plugformer: error: {gone}: data.train: {tmp_path / 'gone.jsonl'}: no such file"
    )
    code, line = cli(capsys, "config", "validate", str(gone), "--set", "data.test=nope.csv")
    assert code == 2 and "data.train" in line  # the file's own first
    (tmp_path / "gone.jsonl").write_text('{"text": "fine", "label": "pos"}\n')
    assert main_code(capsys, "config", "validate", str(gone)) == 0
    code, line = cli(capsys, "config", "validate", str(gone), "--set", "data.test=nope.csv")
    assert code == 2 and line == f"plugformer: error: {gone}: data.test: nope.csv: no such file"
    # a suite's specs are checked the same way
    suite = tmp_path / "suite.toml"
    suite.write_text(f'tasks = ["{typo}"]\nbackbones = [{{name = "a", ref = "nowhere"}}]\n')
    code, line = cli(capsys, "config", "validate", str(suite))
    assert code == 2 and f"{typo}: data.dataset: unknown dataset" in line, line
    # a registered dataset is looked up, not fetched
    from plugformer.data.cache import plugformer_home

    known = toml(tmp_path / "k.toml", {"task": "sentiment", "data": {"dataset": "vader-nyt"}})
    assert main_code(capsys, "config", "validate", str(known)) == 0
    assert not (plugformer_home() / "data").exists() and not any(plugformer_home().glob("*"))


def test_finetune_and_bench_name_the_spec_file_of_a_bad_option(
    tmp_path: Path, capsys, micro_checkpoint: Path
) -> None:
    """Before: finetune said only "options of task 'sentiment': …", not which file, and a suite
    found the error when it built the cell."""
    bad = toml(
        tmp_path / "o.toml",
        {"task": "sentiment", "data": {"dataset": "x"}, "options": {"poolin": "mean"}},
    )
    code, line = cli(capsys, "finetune", str(bad), "--backbone", "scratch:nowhere")
    assert code == 2 and line.endswith(
        f"{bad}: options of task 'sentiment': unknown key 'poolin' (did you mean 'pooling'?)"
    )
    good = toml(tmp_path / "g.toml", {"task": "sentiment", "data": {"dataset": "x"}})
    code, line = cli(capsys, "finetune", str(good), "--set", "options.pooling=meen")
    assert code == 2 and "--set options.pooling=meen: pooling: Input should be" in line
    suite = tmp_path / "suite.toml"
    suite.write_text(
        f'tasks = ["{bad}"]\nbackbones = [{{name = "b", ref = "{micro_checkpoint}"}}]\n'
    )
    code, line = cli(capsys, "bench", str(suite), "--out", str(tmp_path / "runs"))
    assert code == 2 and f"{bad}: options of task 'sentiment'" in line
    suite.write_text(
        f'tasks = ["{good}"]\nbackbones = [{{name = "b", ref = "{micro_checkpoint}"}}]\n'
        '[overrides]\noptions = {pooling = "meen"}\n'
    )
    code, line = cli(capsys, "bench", str(suite), "--out", str(tmp_path / "runs"))
    assert code == 2 and f"{suite}: its overrides on g.toml: options of task" in line
    assert not (tmp_path / "runs").exists()


def main_code(capsys, *args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        capsys.readouterr()
        return int(exc.code or 0)
    capsys.readouterr()
    return 0


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


def test_a_csv_header_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    """Before: the last of two same-named columns silently won."""
    from plugformer.data import readers

    for name, body in [("a.csv", "text,text\nx,y\n"), ("b.tsv", "text\tlabel\ttext\nx\tpos\ty\n")]:
        path = tmp_path / name
        path.write_text(body)
        with pytest.raises(DataError) as exc:
            list(readers.read_records(path))
        assert str(exc.value) == f"{path}:1: column 'text' appears twice"


def test_a_txt_file_with_crlf_and_a_byte_order_mark_reads_clean_texts(tmp_path: Path) -> None:
    """Before: every text kept its ``\\r`` and the first its byte-order mark."""
    from plugformer.data import readers

    path = tmp_path / "d.txt"
    path.write_bytes("bad movie\r\n\r\ngood movie\r\n".encode("utf-8-sig"))
    texts = [r["text"] for _, r in readers.read_records(path)]
    assert texts == ["bad movie", "good movie"]


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


def test_a_plugformer_home_that_is_a_file_is_one_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Before: "downloading ..." and then ``unexpected error: NotADirectoryError``."""
    home = tmp_path / "home"
    home.write_text("")
    monkeypatch.setenv("PLUGFORMER_HOME", str(home))
    code, line = cli(capsys, "data", "get", "shakespeare")
    assert code == 2 and f"PLUGFORMER_HOME={home}: {home} is a file" in line
    monkeypatch.setenv("PLUGFORMER_HOME", str(home / "sub"))
    code, line = cli(capsys, "data", "get", "shakespeare")
    assert code == 2 and f"PLUGFORMER_HOME={home / 'sub'}: {home} is a file" in line


def test_pretraining_into_a_plugformer_home_that_is_a_file_is_one_error(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pretraining writes its token cache under PLUGFORMER_HOME: checked as a download is."""
    from plugformer.config import PretrainConfig, parse_model
    from plugformer.errors import DataError
    from plugformer.training.pretrain import pretrain
    from tests.conftest import micro_config

    home = tmp_path / "home"
    home.write_text("")
    monkeypatch.setenv("PLUGFORMER_HOME", str(home))
    cfg = micro_config(corpus_file, tmp_path / "run", max_steps=2)
    with pytest.raises(DataError, match=rf"PLUGFORMER_HOME={home}: {home} is a file"):
        pretrain(parse_model(PretrainConfig, cfg))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_plugformer_home_is_one_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: ``unexpected error: PermissionError`` halfway through a download."""
    from plugformer.data.cache import writable_home

    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o500)
    monkeypatch.setenv("PLUGFORMER_HOME", str(home))
    try:
        with pytest.raises(DataError, match=rf"PLUGFORMER_HOME={home}: .* is not writable"):
            writable_home()
    finally:
        home.chmod(0o700)
