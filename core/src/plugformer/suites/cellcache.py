"""Verified bench cell files: a cached cell is used only if it is the cell asked for, intact.

A cell file (``cells/<key>.json``) is written with a content hash (``"sha256"``, over the
record's canonical JSON without that field). Reading checks, in order: the file parses as a
JSON object; its ``key``, ``kind`` and ``task`` are the cell's; it has the fields a report
reads (``metrics`` of numbers holding ``main_metric``); the hash matches; the test predictions
it logged (``predictions/<key>.jsonl``) are there, with the sha256 the cell recorded for them
(a cut or edited predictions file made ``rescore.py`` fail, and made the cell's metrics
unreproducible from its own predictions). A file that fails
is reported by name with the reason and recomputed (issue 20: a cell copied over another was
shown under the wrong row; a truncated one stopped the suite with a bare JSONDecodeError).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from plugformer.fileio import atomic_write_json, sha256_file

__all__ = ["content_hash", "read_cell", "write_cell"]

HASH_FIELD = "sha256"
PREDICTION_FIELDS = ("predictions_file", "validation_predictions_file")
"""A cell's logged predictions, as paths relative to the run directory."""
PREDICTION_HASHES = "predictions_sha256"
"""The sha256 of each logged predictions file, by the field that names it."""


def _canonical(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as it reads back from JSON (paths and the like become strings)."""
    body = {k: v for k, v in record.items() if k != HASH_FIELD}
    return json.loads(json.dumps(body, default=str))


def content_hash(record: Mapping[str, Any]) -> str:
    """sha256 of the record's canonical JSON (sorted keys), without the hash field itself."""
    text = json.dumps(_canonical(record), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_cell(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write a finished cell atomically, with its content hash; returns the record as written,
    which is what :func:`read_cell` gives back on a later run (so a report made from either is
    the same, byte for byte). The predictions files it names (written before it, relative to
    the run directory, ``path``'s grandparent) are hashed into it."""
    run_dir = path.parent.parent
    hashes = {
        field: sha256_file(run_dir / record[field])
        for field in PREDICTION_FIELDS
        if isinstance(record.get(field), str) and (run_dir / record[field]).is_file()
    }
    if hashes:
        record = {**record, PREDICTION_HASHES: hashes}
    written = {**_canonical(record), HASH_FIELD: content_hash(record)}
    atomic_write_json(path, written)
    return written


def _problem(data: Any, key: str, kind: str, task: str) -> str | None:
    """Why ``data`` is not a valid record of the cell (key, kind, task), or ``None``."""
    if not isinstance(data, dict):
        return f"not a JSON object ({type(data).__name__})"
    for field, want in (("key", key), ("kind", kind), ("task", task)):
        if data.get(field) != want:
            return f"{field} is {data.get(field)!r}, expected {want!r} (a file of another cell?)"
    metrics, main = data.get("metrics"), data.get("main_metric")
    if not isinstance(metrics, dict) or not metrics:
        return "no 'metrics' object"
    bad = [k for k, v in metrics.items() if isinstance(v, bool) or not isinstance(v, int | float)]
    if bad:
        return f"metric {bad[0]!r} is not a number"
    if not isinstance(main, str) or main not in metrics:
        return f"main_metric {main!r} is not among its metrics"
    if not isinstance(data.get("higher_is_better"), bool):
        return "'higher_is_better' is not true/false"
    if HASH_FIELD not in data:
        return "no content hash (written by an older plugformer, or edited)"
    if data[HASH_FIELD] != content_hash(data):
        return "content hash mismatch (edited or corrupted)"
    return None


def _lost_predictions(data: Mapping[str, Any], run_dir: Path) -> str | None:
    """Why a cell's logged test (or validation) predictions are not there as it wrote them (or
    ``None``): a cell whose file was deleted had been taken from the cache, and results.json
    named a file that did not exist; one whose file was cut short fed ``rescore.py`` half a
    JSON line."""
    hashes = data.get(PREDICTION_HASHES) or {}
    for field in PREDICTION_FIELDS:
        name = data.get(field)
        if name is None:  # a cell that logs none
            continue
        if not isinstance(name, str) or not (run_dir / name).is_file():
            return f"its predictions file {name!r} is missing"
        if field in hashes and sha256_file(run_dir / name) != hashes[field]:
            return f"its predictions file {name!r} is not the one it wrote (cut or edited)"
    return None


def read_cell(
    path: Path, key: str, kind: str, task: str, warn: Callable[[str], None]
) -> dict[str, Any] | None:
    """The verified record of a cached cell, or ``None`` (absent, or bad: ``warn`` says why)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = f"unreadable ({type(exc).__name__}: {exc})"
    else:
        reason = _problem(data, key, kind, task) or _lost_predictions(data, path.parent.parent)
        if reason is None:
            return data
    warn(f"warning: cached cell {path} is invalid: {reason}; recomputing it")
    return None
