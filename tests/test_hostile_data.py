"""Hostile input, data: corpora and task data that are missing, malformed, huge or oddly encoded,
and archives that would write outside their target. Every case gives exit 2 and exactly one
``plugformer: error:`` line naming the file (and line where there is one)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from plugformer.data import sources
from plugformer.errors import DataError
from tests.cli_helpers import cli, toml
from tests.conftest import micro_config

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
    # text after a closing quote: the lenient reader dropped the quotes without a word
    "strayquote.csv": (b'text,label\n"bad" film,negative\nok,positive\n', ":2: ',' expected"),
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


def test_pretraining_corpus_files_are_read_by_format_or_refused_by_name(tmp_path: Path) -> None:
    """Before: a CSV corpus was read as plain text (its header a paragraph), a .parquet file
    as text, a missing x.tsv was "unknown dataset", a folder "cannot write"."""
    from plugformer.data.corpus import load_documents

    csv_file = tmp_path / "c.csv"
    csv_file.write_text('id,text\n1,"first, with a comma"\n2,second\n')
    docs = load_documents([str(csv_file)])
    assert [d.text for d in docs] == ["first, with a comma", "second"]
    (tmp_path / "p.parquet").write_bytes(b"PAR1")
    for src, expect in (
        (tmp_path, "is a folder"),
        (tmp_path / "p.parquet", ".parquet files are not read"),
        (tmp_path / "x.tsv", "x.tsv: no such file"),
    ):
        with pytest.raises(DataError, match=expect):
            load_documents([str(src)])
