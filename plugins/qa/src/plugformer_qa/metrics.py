"""SQuAD v1.1 scoring: the official answer normalisation, token F1 and exact match, and the
torchmetrics metric the ``qa`` task reports them through (one score per metric name)."""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Any

import torch
from torchmetrics.text import SQuAD

__all__ = ["SQuADScore", "normalize_text", "squad_f1"]


class SQuADScore(SQuAD):
    """torchmetrics' SQuAD metric reporting one of its two scores (``"f1"`` or ``"exact_match"``),
    so that each score is a metric of its own under its own name."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key

    def update(self, preds: Any, target: Any) -> None:
        """torchmetrics' update, but with the official v1.1 F1 (see :func:`squad_f1`)."""
        golds = {t["id"]: t["answers"]["text"] for t in target}
        for p in preds:
            answers = golds[p["id"]]
            self.f1_score += max(squad_f1(p["prediction_text"], g) for g in answers)
            self.exact_match += max(
                float(normalize_text(p["prediction_text"]) == normalize_text(g)) for g in answers
            )
            self.total += 1

    def compute(self) -> torch.Tensor:
        return super().compute()[self.key]


def normalize_text(text: str) -> str:
    """The official v1.1 normalisation: lower case, no punctuation, no a/an/the, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


_PUNCTUATION = frozenset(string.punctuation)


def squad_f1(prediction: str, gold: str) -> float:
    """Token F1 exactly as the official SQuAD v1.1 script (``evaluate-v1.1.py``) defines it.

    Both normalise to nothing ("the" against "the"): no common token, so 0 — torchmetrics
    scores that 1 (its SQuAD v2 no-answer rule), which v1.1 does not have.
    """
    pred, ref = normalize_text(prediction).split(), normalize_text(gold).split()
    same = sum((Counter(pred) & Counter(ref)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)
