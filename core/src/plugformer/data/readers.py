"""Example readers: JSONL, CSV, TSV and plain text files → validated example dicts.

Every error names the file and line (``data.jsonl:17: ...``). Limits guard against hostile
input: a line longer than :data:`MAX_LINE_BYTES` is refused, bytes must be UTF-8.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from plugformer.errors import DataError

__all__ = ["MAX_LINE_BYTES", "read_records"]

MAX_LINE_BYTES = 8 * 1024 * 1024
"""A single line (one example) may not exceed this."""


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    with f:
        lineno = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(f"{path}:{lineno}: line longer than {MAX_LINE_BYTES} bytes")
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid UTF-8 at byte {exc.start}") from None


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in _lines(path):
        if lineno == 1:
            line = line.removeprefix("\ufeff")  # a UTF-8 byte-order mark
        if not line.strip():
            continue
        try:
            # without its newline, so that an error at the end of the line is not "column 1"
            # of a second line
            obj = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}:{lineno}: invalid JSON ({exc.msg} at column {exc.colno})"
            ) from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def _unclosed_quote(lines: list[str], start: int, delimiter: str) -> int | None:
    """The line (1-based) whose ``"`` opens a field that is never closed, in the record that
    starts on line ``start`` and may run to the end of ``lines``; ``None`` when it ends.

    Python's ``csv`` reads such a quote leniently: the rest of the file becomes one field.
    This follows its rules (a quote opens a field only at the field's start; ``""`` inside
    is a quote; a quote closes the field, whatever follows it)."""
    opened, quoted, at_start, closing = 0, False, True, False
    for lineno in range(start, len(lines) + 1):
        for ch in lines[lineno - 1]:
            if closing:  # the previous character was a quote inside a quoted field
                closing = False
                if ch == '"':  # "" : a quote in the text
                    continue
                quoted = False
            if quoted:
                closing = ch == '"'
            elif ch in "\r\n":
                return None  # the record ends on this line
            elif ch == '"' and at_start:
                opened, quoted, at_start = lineno, True, False
            else:
                at_start = ch == delimiter
    return opened if quoted and not closing else None


def _read_delimited(path: Path, delimiter: str) -> Iterator[tuple[int, dict[str, Any]]]:
    text = "".join(line for _, line in _lines(path))
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark (Excel's CSV export)
    lines = io.StringIO(text, newline="").readlines()  # the lines csv counts in line_num
    # strict: text after a closing quote ('"bad" film') is an error, where the lenient
    # reader silently dropped the quotes ('bad film')
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    start = 1  # the line the next record starts on

    def unclosed_quote() -> None:
        opened = _unclosed_quote(lines, start, delimiter)
        if opened is not None:
            raise DataError(
                f"{path}:{opened}: unterminated quote: the quoted field that starts on this "
                "line is never closed"
            )

    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: empty file (expected a header row)") from None
    except csv.Error as exc:
        unclosed_quote()  # e.g. the field limit, reached by reading the rest of the file
        raise DataError(f"{path}:1: {exc}") from None
    if reader.line_num == len(lines):  # only the last record can run into the end of the file
        unclosed_quote()
    start = reader.line_num + 1
    header = [h.strip() for h in header]
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path}:1: column {name!r} appears twice")
        seen.add(name)
    try:
        for row in reader:
            if reader.line_num == len(lines):
                unclosed_quote()
            start = reader.line_num + 1
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path}:{reader.line_num}: expected {len(header)} columns {header}, got {len(row)}"
                )
            yield reader.line_num, dict(zip(header, row, strict=True))
    except csv.Error as exc:
        unclosed_quote()
        hint = ""
        if "expected after" in str(exc):
            hint = (
                "; a field that starts with a quote must end with it, inner quotes doubled "
                '(the text "bad" film is written """bad"" film")'
            )
        raise DataError(f"{path}:{reader.line_num}: {exc}{hint}") from None


def _read_text(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for lineno, line in _lines(path):
        if lineno == 1:
            line = line.removeprefix("\ufeff")  # a UTF-8 byte-order mark
        if line.strip():
            yield lineno, {"id": str(lineno), "text": line.rstrip("\r\n")}


def read_records(
    path: str | Path, columns: Mapping[str, str] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(where, record)`` for each row; ``where`` is ``"file:line"`` for error messages.

    ``columns`` maps example field → column name in the file, e.g. ``{"text": "sentence"}``.
    The format follows the suffix: .jsonl/.ndjson (one JSON object per line), .csv, .tsv,
    .txt (one text per line). Other formats come from plugins (the ``read_examples`` hook).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():  # before the suffix: a folder has none, and "unknown format ''" misleads
        raise DataError(f"{path}: is a directory (expected a .jsonl, .csv, .tsv or .txt file)")
    if suffix in (".jsonl", ".ndjson"):
        rows = _read_jsonl(path)
    elif suffix == ".csv":
        rows = _read_delimited(path, ",")
    elif suffix == ".tsv":
        rows = _read_delimited(path, "\t")
    elif suffix == ".txt":
        rows = _read_text(path)
    else:
        raise DataError(f"{path}: unknown format {suffix!r} (expected .jsonl, .csv, .tsv or .txt)")
    rename = {v: k for k, v in (columns or {}).items()}
    empty = True
    for lineno, rec in rows:
        empty = False
        if rename:
            missing = [col for col in rename if col not in rec]
            if missing:
                raise DataError(
                    f"{path}:{lineno}: missing column {missing[0]!r} (have {sorted(rec)})"
                )
            rec = {rename.get(k, k): v for k, v in rec.items()}
        yield f"{path}:{lineno}", rec
    if empty:
        raise DataError(f"{path}: empty file (no examples)")
