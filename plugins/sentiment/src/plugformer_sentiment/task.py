"""The ``sentiment`` task: classify a text into one of a few named labels.

Built on the core's :class:`~plugformer.blocks.ClassificationTask` (one text field), which
supplies encoding within the backbone's length budget, batching, the pooled linear head, the
(optionally class-weighted) loss, decoding and the metrics::

    {"text": "a great film", "label": "positive"}
        ──encode──▶ {"input_ids": text tokens + <eos>, "labels": 1}
        ──collate─▶ input_ids (B, T) right-padded, attention_mask (B, T), labels (B,)
        ──backbone─▶ hidden (B, T, C) ──pool──▶ (B, C) ──dropout, linear──▶ logits (B, K)

Labels keep their names end to end: ``prepare`` learns them from the training data (sorted)
unless ``options.labels`` fixes the order, predictions name them, and task checkpoints store
them (``state_dict``). Pooling ``auto`` reads the last real token of a causal backbone and
the mean of all real tokens of a bidirectional one. This module adds the example model (with
its documented fields), the ``text <sep> label`` pretraining documents and the baselines.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, PrivateAttr, StrictStr, field_validator

from plugformer.blocks import ClassificationOptions, ClassificationTask, PooledHead
from plugformer.tasks import Baseline, LocatedExample
from plugformer_sentiment import __version__
from plugformer_sentiment.baselines import Majority, TfidfLogreg

__all__ = ["ClassificationHead", "SentimentExample", "SentimentOptions", "SentimentTask"]

ClassificationHead = PooledHead
"""The pooled linear head (kept under its old name)."""


class SentimentExample(LocatedExample):
    """One text and its label. Unknown fields (``rating``, extra CSV columns) are ignored."""

    model_config = ConfigDict(
        extra="ignore", coerce_numbers_to_str=True, use_attribute_docstrings=True
    )

    id: str | None = None
    """Identifier (optional); numbers are read as strings."""
    text: StrictStr = Field(min_length=1)
    """The text to classify (a string: a number is refused, not read as one)."""
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
        if isinstance(value, float):
            if value.is_integer():
                return str(int(value))
            # NaN (a JSON NaN, an empty pandas cell) or 1.5 would become a class of its own
            raise ValueError(f"a label is a name or an integer, not {value!r}")
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


class SentimentOptions(ClassificationOptions):
    """Options of the ``sentiment`` task (``[options]`` of a task spec): pooling, dropout,
    class_weights, labels, metrics (see :class:`~plugformer.blocks.ClassificationOptions`)."""


class SentimentTask(ClassificationTask):
    """Text classification with named labels (sentiment polarity, or any other label set)."""

    name = "sentiment"
    Example = SentimentExample
    Options = SentimentOptions
    main_metric = "accuracy"
    version = __version__

    def baselines(self) -> dict[str, Baseline]:
        """``majority`` and ``tfidf-logreg`` (its features and C chosen on validation)."""
        return {"majority": Majority(self.labels), "tfidf-logreg": TfidfLogreg(self.labels)}
