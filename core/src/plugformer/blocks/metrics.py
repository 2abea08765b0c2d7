"""Standard metrics and baselines of the task bases, with their :class:`MetricInfo`.

Metrics are torchmetrics objects updated batch by batch; helpers build the update tensors on
the metric's own device (the core moves metrics with the model: a task must never build CPU
tensors for a GPU metric).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from plugformer.metric_info import MetricInfo

__all__ = [
    "CLASSIFICATION_INFO",
    "MeanOf",
    "SpanF1",
    "bio_spans",
    "classification_metrics",
    "majority_baseline",
    "normalise_answer",
    "on_device",
    "token_f1",
]

CLASSIFICATION_INFO = {
    "accuracy": MetricInfo(
        definition="fraction of examples whose predicted label is the gold label"
    ),
    "macro_f1": MetricInfo(definition="unweighted mean over labels of per-label F1"),
    "mcc": MetricInfo(definition="Matthews correlation coefficient, multiclass", range=(-1.0, 1.0)),
}


def on_device(metric: Any, values: Sequence[int] | Sequence[float]) -> torch.Tensor:
    """``values`` as a tensor on ``metric``'s device."""
    return torch.tensor(list(values), device=metric.device)


def classification_metrics(num_labels: int, names: Sequence[str]) -> dict[str, Metric]:
    """Fresh multiclass metrics by name (``accuracy``, ``macro_f1``, ``mcc``)."""
    from torchmetrics.classification import (
        MulticlassAccuracy,
        MulticlassF1Score,
        MulticlassMatthewsCorrCoef,
    )

    factories: dict[str, Callable[[], Metric]] = {
        "accuracy": lambda: MulticlassAccuracy(num_classes=num_labels, average="micro"),
        "macro_f1": lambda: MulticlassF1Score(num_classes=num_labels, average="macro"),
        "mcc": lambda: MulticlassMatthewsCorrCoef(num_classes=num_labels),
    }
    return {n: factories[n]() for n in names}


def bio_spans(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """Entity spans ``(start, end_exclusive, type)`` of a BIO (or IOB1) tag sequence; plain
    labels without a ``B-``/``I-`` prefix (other than ``O``) are one-word spans."""
    spans: set[tuple[int, int, str]] = set()
    start, kind = None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, typ = tag.partition("-") if "-" in tag else ("B" if tag != "O" else "O", "", tag)
        if prefix == "I" and kind == typ and start is not None:
            continue
        if start is not None:
            spans.add((start, i, kind or ""))
            start, kind = None, None
        if prefix in ("B", "I") and tag != "O":
            start, kind = i, typ
    return spans


class SpanF1(Metric):
    """Micro span F1 (seqeval's entity F1): a span counts when its words and type both match."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for name in ("tp", "n_pred", "n_gold"):
            self.add_state(name, default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, predicted: Sequence[Sequence[str]], gold: Sequence[Sequence[str]]) -> None:
        for p, g in zip(predicted, gold, strict=True):
            ps, gs = bio_spans(p), bio_spans(g)
            self.tp += len(ps & gs)
            self.n_pred += len(ps)
            self.n_gold += len(gs)

    def compute(self) -> torch.Tensor:
        denom = self.n_pred + self.n_gold
        return 2 * self.tp / denom if denom > 0 else torch.tensor(0.0, device=self.tp.device)


class MeanOf(Metric):
    """Mean of per-example scores (exact match, token F1, …); the scores are kept, so a
    report can resample the examples (:mod:`plugformer.resampling`)."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("scores", default=[], dist_reduce_fx="cat")

    def update(self, scores: torch.Tensor) -> None:
        self.scores.append(scores.float().flatten())

    def example_values(self) -> list[float]:
        """Every score so far, in update order."""
        return dim_zero_cat(self.scores).tolist() if self.scores else []

    def compute(self) -> torch.Tensor:
        if not self.scores:
            return torch.tensor(0.0)
        return dim_zero_cat(self.scores).mean()


def normalise_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def token_f1(predicted: str, gold: str) -> float:
    """SQuAD token-overlap F1 of two answers after ``normalise_answer``."""
    p, g = normalise_answer(predicted).split(), normalise_answer(gold).split()
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g:
        return float(p == g)
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def majority_baseline(
    label_of: Callable[[Any], Any], predict: Callable[[Any], Any]
) -> Callable[[list[Any], list[Any]], list[Any]]:
    """A baseline predicting the most frequent training value of ``label_of(example)``
    (ties: the first seen) as ``predict(value)`` for every test example."""

    def majority(train: list[Any], test: list[Any]) -> list[Any]:
        counts = Counter(label_of(ex) for ex in train if label_of(ex) is not None)
        top = max(counts, key=lambda v: counts[v]) if counts else None
        return [predict(top) for _ in test]

    return majority
