"""Logged samples: every test prediction of an evaluation, beside its input and gold example.

Suites write one JSONL file per cell (``predictions/<cell key>.jsonl``), as
lm-evaluation-harness's ``--log_samples`` does, so that anyone can re-score a result with the
reference tools (``sacrebleu`` on translation outputs, the official SQuAD script on QA) or
read what a system got wrong. Each line::

    {"index": 0, "id": "Gen.1.1", "example": {...the validated example...}, "prediction": ...}
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["read_samples", "sample_records", "write_samples"]


def sample_records(examples: Sequence[Any], predictions: Sequence[Any]) -> list[dict[str, Any]]:
    """One record per example, in order: its index, id (if it has one), fields and prediction."""
    if len(examples) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions for {len(examples)} examples")
    out = []
    for i, (ex, pred) in enumerate(zip(examples, predictions, strict=True)):
        fields = ex.model_dump(mode="json") if hasattr(ex, "model_dump") else ex
        out.append(
            {"index": i, "id": getattr(ex, "id", None), "example": fields, "prediction": pred}
        )
    return out


def write_samples(path: str | Path, records: Sequence[dict[str, Any]]) -> Path:
    """Write records as JSONL, atomically."""
    from plugformer.fileio import atomic_write_text

    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    atomic_write_text(path, text)
    return Path(path)


def read_samples(path: str | Path) -> list[dict[str, Any]]:
    """The records of a samples file."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
