"""The ``sentiment`` task: classify a text into one of a few named labels.

Data flow::

    {"text": "a great film", "label": "positive"}
        ──encode──▶ {"input_ids": text tokens + <eos>, "label": 1}
        ──collate─▶ input_ids (B, T) right-padded, attention_mask (B, T), labels (B,)
        ──backbone─▶ hidden (B, T, C) ──pool──▶ (B, C) ──dropout, linear──▶ logits (B, K)

Labels keep their names end to end: ``prepare`` learns them from the training data (sorted)
unless ``options.labels`` fixes the order, predictions name them, and task checkpoints store
them (``state_dict``). Pooling ``auto`` reads the last real token (the appended ``<eos>``,
which has attended to the whole text) of a causal backbone and the mean of all real tokens
of a bidirectional one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from torch import nn
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassMatthewsCorrCoef,
)

from plugformer import SEP, DataError, PlugformerError, Task
from plugformer.tasks import Baseline, TaskOptions
from plugformer_sentiment import __version__
from plugformer_sentiment.baselines import Majority, TfidfLogreg, prediction

__all__ = ["ClassificationHead", "SentimentExample", "SentimentOptions", "SentimentTask"]

DEFAULT_MAX_LEN = 128
"""Token budget used before the task has seen a backbone (``check_backbone`` sets the real one)."""
NO_LABELS_YET = "task 'sentiment' has no labels yet: call prepare(train) or load_state_dict first"


class SentimentExample(BaseModel):
    """One text and its label. Unknown fields (``rating``, extra CSV columns) are ignored."""

    model_config = ConfigDict(
        extra="ignore", coerce_numbers_to_str=True, use_attribute_docstrings=True
    )

    id: str | None = None
    """Identifier (optional); numbers are read as strings."""
    text: str = Field(min_length=1)
    """The text to classify."""
    label: str | None = None
    """Label name, e.g. ``"positive"``; integer labels become names (``1``, ``1.0`` and
    ``"1.0"`` all → ``"1"``). Needed for training and scoring, absent for prediction-only
    inputs; an empty cell is an error, not a class of its own."""

    _where: str = PrivateAttr("")  # file:line, set by Task.parse_example

    @field_validator("label", mode="before")
    @classmethod
    def _one_name_per_label(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("a label is a name or an integer, not true/false")
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise ValueError("empty label (leave the label column out for prediction inputs)")
            try:
                number = float(value)
            except ValueError:
                return value
            return str(int(number)) if number.is_integer() and "e" not in value.lower() else value
        return value


class SentimentOptions(TaskOptions):
    """Options of the ``sentiment`` task (``[options]`` of a task spec)."""

    pooling: Literal["auto", "last", "mean"] = "auto"
    """How token states become one vector: ``last`` real token, ``mean`` of real tokens, or
    ``auto`` (``last`` for a causal backbone, ``mean`` for a bidirectional one)."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout on the pooled vector, before the linear classifier."""
    class_weights: bool = False
    """Weight the cross-entropy by inverse label frequency (``n / (K * n_label)``)."""
    labels: list[str] | None = None
    """Fixed label names in output order; default: the training labels, sorted (numerically
    when all are integers). Training labels outside this list are an error."""

    @field_validator("labels", mode="before")
    @classmethod
    def _names_as_strings(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _labels_distinct(self) -> SentimentOptions:
        if self.labels is not None:
            if len(self.labels) < 2:
                raise ValueError("labels: give at least two label names")
            if len(set(self.labels)) != len(self.labels):
                raise ValueError(f"labels: names must be distinct, got {self.labels}")
        return self


class ClassificationHead(nn.Module):
    """Pooled hidden states → dropout → linear: hidden (B, T, C) → logits (B, K)."""

    def __init__(
        self, d_model: int, num_labels: int, pooling: Literal["last", "mean"], dropout: float
    ) -> None:
        super().__init__()
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, num_labels)

    def forward(self, hidden: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        mask = batch["attention_mask"]  # (B, T), 1 = real token; right-padded
        if self.pooling == "last":
            last = mask.sum(dim=1) - 1  # (B,)
            pooled = hidden[torch.arange(hidden.size(0), device=hidden.device), last]  # (B, C)
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)  # (B, C)
        return self.classifier(self.dropout(pooled))  # (B, K)


def _where(example: SentimentExample) -> str:
    """Where an example came from (file:line), else its id."""
    return example._where or f"example {example.id or '(no id)'}"


def _sorted_labels(names: Sequence[str]) -> list[str]:
    if all(n.lstrip("-").isdigit() for n in names):
        return sorted(names, key=int)
    return sorted(names)


class SentimentTask(Task):
    """Text classification with named labels (sentiment polarity, or any other label set)."""

    name = "sentiment"
    Example = SentimentExample
    Options = SentimentOptions
    main_metric = "accuracy"
    version = __version__

    options: SentimentOptions

    def __init__(
        self, options: SentimentOptions | dict[str, Any] | None = None, tokenizer: Any = None
    ) -> None:
        super().__init__(options, tokenizer)
        self.labels: list[str] = list(self.options.labels or [])
        self.label_counts: list[int] = []
        self.max_len = self.options.max_length or DEFAULT_MAX_LEN

    # ------------------------------------------------------------------ data
    def prepare(self, train_examples: Sequence[SentimentExample]) -> None:
        counts = Counter(ex.label for ex in train_examples)
        if None in counts:
            first = next(ex for ex in train_examples if ex.label is None)
            raise DataError(
                f"{_where(first)}: no label (task 'sentiment': {counts[None]} training "
                "example(s) have no label)"
            )
        if self.options.labels:
            unknown = sorted(set(counts) - set(self.options.labels))
            if unknown:
                first = next(ex for ex in train_examples if ex.label in unknown)
                raise DataError(
                    f"{_where(first)}: training labels {unknown} are not in options.labels "
                    f"{self.options.labels}"
                )
        else:
            self.labels = _sorted_labels(list(counts))
        if len(self.labels) < 2:
            raise DataError(
                f"task 'sentiment' needs at least two labels; the training data has {self.labels}"
            )
        self.label_counts = [counts.get(name, 0) for name in self.labels]

    def state_dict(self) -> dict[str, Any]:
        return {"labels": self.labels, "label_counts": self.label_counts}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.labels = list(state["labels"])
        self.label_counts = list(state.get("label_counts", []))

    def example_from_input(self, value: str | dict[str, Any]) -> SentimentExample:
        return self.parse_example({"text": value} if isinstance(value, str) else value, "<input>")

    def _label_index(self, label: str | None, example: SentimentExample | None = None) -> int:
        if not self.labels:
            raise PlugformerError(NO_LABELS_YET)
        where = _where(example) if example is not None else "prediction"
        if label is None:
            raise DataError(f"{where}: no label to train on or score against")
        try:
            return self.labels.index(label)
        except ValueError:
            raise DataError(
                f"{where}: label {label!r} is not one of {self.labels} "
                "(set options.labels to list every label)"
            ) from None

    # ------------------------------------------------------------------ tensors
    def encode(self, example: SentimentExample, *, train: bool) -> list[dict[str, Any]]:
        ids = [*self.tokenizer.encode(example.text)[: self.max_len - 1], self.tokenizer.eos_id]
        feature: dict[str, Any] = {"input_ids": ids}
        if train or example.label is not None:
            feature["label"] = self._label_index(example.label, example)
        return [feature]

    def pretrain_documents(self, examples: Sequence[SentimentExample]) -> Iterator[str]:
        """``text <sep> label``: the label name as a word after the text, so that the language
        model learns to say what the classifier will be asked."""
        for ex in examples:
            if ex.label is not None:
                yield f"{ex.text}{SEP}{ex.label}"

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        width = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), width), self.tokenizer.pad_id)  # (B, T)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)  # (B, T)
        for i, f in enumerate(features):
            input_ids[i, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
            attention_mask[i, : len(f["input_ids"])] = 1
        batch: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if all("label" in f for f in features):
            batch["labels"] = torch.tensor([f["label"] for f in features], dtype=torch.long)  # (B,)
        return batch

    # ------------------------------------------------------------------ model
    def check_backbone(self, backbone: Any) -> None:
        super().check_backbone(backbone)
        self.max_len = self.max_length(backbone)

    def build_head(self, backbone: Any) -> ClassificationHead:
        self.check_backbone(backbone)
        if not self.labels:
            raise PlugformerError(NO_LABELS_YET)
        pooling = self.options.pooling
        if pooling == "auto":
            pooling = "last" if backbone.causal else "mean"
        return ClassificationHead(backbone.d_model, len(self.labels), pooling, self.options.dropout)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        weight = None
        if self.options.class_weights and self.label_counts:
            total, k = sum(self.label_counts), len(self.label_counts)
            inverse = [total / (k * n) if n else 1.0 for n in self.label_counts]
            weight = torch.tensor(inverse, device=outputs.device)  # (K,)
        return F.cross_entropy(outputs.float(), batch["labels"], weight=weight)

    @torch.no_grad()
    def predict(
        self, backbone: Any, head: nn.Module, batch: dict[str, Any]
    ) -> list[dict[str, Any]]:
        logits = self.forward(backbone, head, batch)  # (B, K): one feature per example
        return [prediction(p, self.labels) for p in logits.float().softmax(dim=-1).tolist()]

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, Any]:
        if not self.labels:
            raise PlugformerError(NO_LABELS_YET)
        k = len(self.labels)
        return {
            "accuracy": MulticlassAccuracy(num_classes=k, average="micro"),
            "macro_f1": MulticlassF1Score(num_classes=k, average="macro"),
            "mcc": MulticlassMatthewsCorrCoef(num_classes=k),
        }

    def update_metrics(
        self, metrics: dict[str, Any], predictions: list[Any], examples: list[Any]
    ) -> None:
        preds = [self._label_index(p["label"]) for p in predictions]
        gold = [self._label_index(ex.label, ex) for ex in examples]
        for metric in metrics.values():  # tensors on the metric's device (the core moves metrics)
            metric.update(
                torch.tensor(preds, device=metric.device), torch.tensor(gold, device=metric.device)
            )

    def metric_info(self) -> dict[str, Any]:
        return {
            "accuracy": "fraction of examples whose predicted label is the gold label (0-1)",
            "macro_f1": "unweighted mean over labels of per-label F1 (0-1)",
            "mcc": "Matthews correlation coefficient, multiclass (-1 to 1)",
            "labels": self.labels,
        }

    def baselines(self) -> dict[str, Baseline]:
        """``majority`` and ``tfidf-logreg`` (its features and C chosen on validation)."""
        return {"majority": Majority(self.labels), "tfidf-logreg": TfidfLogreg(self.labels)}
