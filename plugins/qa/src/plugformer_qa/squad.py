"""SQuAD v1.1 JSON files → flat example records (pure Python: no torch).

The file shape (Rajpurkar et al., 2016)::

    {"version": "1.1",
     "data": [{"title": ..., "paragraphs": [{"context": ...,
               "qas": [{"id": ..., "question": ..., "answers": [{"text", "answer_start"}]}]}]}]}

Each question becomes one record ``{"id", "title", "context", "question", "answers"}`` — the
task's example format — paired with its location in the document for error messages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plugformer import DataError

__all__ = ["flatten_squad", "read_squad"]


def _field(obj: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    value = obj.get(key)
    if not isinstance(value, kind):
        raise DataError(
            f"{where}: field {key!r} must be a {kind.__name__}, got {type(value).__name__}"
        )
    return value


def flatten_squad(document: dict[str, Any], source: str) -> list[tuple[str, dict[str, Any]]]:
    """``(where, record)`` for every question of a parsed SQuAD document."""
    located = []
    for a, article in enumerate(_field(document, "data", list, source)):
        title = article.get("title") if isinstance(article, dict) else None
        for p, paragraph in enumerate(_field(article, "paragraphs", list, f"{source}: data[{a}]")):
            where = f"{source}: data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", str, where)
            for q, qa in enumerate(_field(paragraph, "qas", list, where)):
                if not isinstance(qa, dict):
                    raise DataError(
                        f"{where}.qas[{q}]: expected a JSON object, got {type(qa).__name__}"
                    )
                record = {"title": title, "context": context, **qa}
                located.append((f"{where}.qas[{q}]", record))
    return located


def read_squad(path: str | Path) -> list[tuple[str, dict[str, Any]]] | None:
    """The located records of a SQuAD v1.1 file, or ``None`` if it is not SQuAD-shaped JSON
    (not JSON at all, or no top-level ``"data"`` list), so other readers may try it."""
    try:
        document = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: invalid UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        return None
    return flatten_squad(document, str(path))
