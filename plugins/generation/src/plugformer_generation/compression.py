"""The ``compression`` task: a headline written by keeping some of its article's opening words.

Extractive sentence compression as word tagging, on the same ``{prompt, completion}`` pairs
as ``generation`` (news-headlines): the model says, for each of the prompt's first ``window``
words, how likely the headline is to keep it, and the ``keep`` likeliest words, in the
prompt's order, are the headline. Training labels are the oracle compressions
(:func:`~plugformer_generation.extractive.oracle_keep`); the reference headline itself scores
every prediction (ROUGE-L). It is the neural counterpart of the ``compress`` baseline (a
logistic regression over hand-made features of the same words and the same choice of the
``keep`` likeliest), so the two compare directly, and a suite can pool them (:meth:`fuse`).

Data flow::

    {"prompt": "Police said on Monday ...", "completion": "Police arrest ..."}
        ──encode──▶ W <sep> W   (W: the window's words; the second copy's words labelled on
                                 their first sub-word, keep 1 / drop 0, -100 elsewhere)
        ──backbone─▶ (B, T, C) ──TokenHead─▶ (B, T, 2) ──softmax at the labelled positions─▶
        P(keep) per word ──the `keep` likeliest, in order─▶ {"completion", "words", "keep", "kept"}

Why the words twice (``echo``): a causal backbone's state at a word has read only the words
before it, while whether a headline keeps a word depends on what follows too (the compress
baseline reads the next word). The second copy's states have read the whole window once
(echo embeddings, Springer et al. 2024). A bidirectional backbone reads it once.

Built from the core's blocks: :class:`~plugformer.blocks.heads.TokenHead`,
:func:`~plugformer.blocks.encoding.pad_collate`, and the generation plugin's ROUGE-L and
baselines, which tune on validation only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field, StrictStr
from torch import nn

from plugformer import DataError
from plugformer.blocks.encoding import IGNORE, pad_collate
from plugformer.blocks.heads import TokenHead
from plugformer.metric_info import MetricInfo
from plugformer.tasks import (
    SEP,
    Baseline,
    LocatedExample,
    Task,
    TaskOptions,
    example_location,
    score_predictions,
)
from plugformer_generation import __version__
from plugformer_generation.baselines import Lead
from plugformer_generation.compressor import WINDOW, Compressor
from plugformer_generation.extractive import oracle_keep, scored_words, words
from plugformer_generation.metrics import RougeL

__all__ = [
    "CompressionExample",
    "CompressionOptions",
    "CompressionTask",
    "WindowLead",
]

FLOOR = 1e-6
"""Probabilities are clipped to [FLOOR, 1 - FLOOR] before pooling, so that neither system
can veto a word whatever the weight."""


class CompressionExample(LocatedExample):
    """A prompt and (for training and scoring) the reference completion it is compressed to."""

    model_config = ConfigDict(
        extra="ignore", coerce_numbers_to_str=True, use_attribute_docstrings=True
    )

    id: str | None = None
    """Identifier carried into predictions and error messages."""
    prompt: StrictStr = Field(min_length=1)
    """The text whose opening words are kept or dropped (a news article's lead)."""
    completion: StrictStr | None = None
    """The reference (a headline); required for training and scoring, not for prediction."""


class CompressionOptions(TaskOptions):
    """Options of the ``compression`` task."""

    window: int = Field(WINDOW, ge=1)
    """The prompt's opening words that may be kept (the compress baseline's window)."""
    keep: int = Field(10, ge=1)
    """How many words a prediction keeps: the likeliest, in the prompt's order (a fixed length
    serves ROUGE-L's F-measure better than a probability threshold)."""
    echo: bool = True
    """Feed the window twice on a causal backbone and tag the second copy (module docstring)."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout on the token states, before the linear classifier."""


def _logit(p: float) -> float:
    p = min(max(p, FLOOR), 1.0 - FLOOR)
    return math.log(p / (1.0 - p))


class WindowLead(Lead):
    """``lead`` whose predictions are also scored words of the window (its first N words
    kept with certainty), so that :meth:`CompressionTask.fuse` can pool it."""

    def __init__(self, score: Any, window_words: Any) -> None:
        super().__init__(score)
        self.window_words = window_words

    def __call__(
        self, train: Sequence[Any], test: Sequence[Any], validation: Sequence[Any] = ()
    ) -> list[dict[str, Any]]:
        out = []
        for p, ex in zip(super().__call__(train, test, validation), test, strict=True):
            src = self.window_words(ex)
            n = min(len(p.get("completion", "").split()), len(src))
            out.append({**p, "words": src, "keep": [1.0] * n + [0.0] * (len(src) - n), "kept": n})
        return out


class CompressionTask(Task):
    """Extractive compression of a prompt; predictions are ``{"completion", "words", "keep",
    "kept"}`` (the window's words, each one's keep probability and how many were kept, which
    :meth:`fuse` pools)."""

    name = "compression"
    Example = CompressionExample
    Options = CompressionOptions
    main_metric = "rougeL"
    version = __version__
    options: CompressionOptions
    _causal = True  # until check_backbone reads the backbone

    def example_from_input(self, value: str | dict[str, Any]) -> CompressionExample:
        """A string is the prompt."""
        return self.parse_example({"prompt": value} if isinstance(value, str) else value)

    def window_words(self, example: CompressionExample) -> list[str]:
        """The words that may be kept, as the prediction writes them (edge punctuation off)."""
        return words(" ".join(example.prompt.split()[: self.options.window]))

    def pretrain_documents(self, examples: Sequence[CompressionExample]) -> Iterator[str]:
        """``words <sep> kept words``: the window, then its oracle compression (what a
        generative compressor would write after the separator)."""
        for ex in examples:
            if ex.completion is not None:
                src = self.window_words(ex)
                kept = " ".join(src[i] for i in oracle_keep(src, ex.completion))
                if kept:
                    yield f"{' '.join(src)}{SEP} {kept}"

    # ------------------------------------------------------------------ tensors
    def _echo(self) -> bool:
        return self.options.echo and self._causal

    def _pieces(self, src: list[str]) -> list[list[int]]:
        """Each window word's sub-word ids, as many words as fit the length budget in every
        copy with ``<sep>`` and ``<eos>`` (words past it are predicted as dropped)."""
        copies = 2 if self._echo() else 1
        budget = self.length_budget - copies  # room for <eos> (and <sep>)
        pieces: list[list[int]] = []
        used = 0
        for i, word in enumerate(src):
            ids = self.tokenizer.encode(word if i == 0 else " " + word) or [self.tokenizer.pad_id]
            if copies * (used + len(ids)) > budget:
                break
            pieces.append(ids)
            used += len(ids)
        return pieces

    def _word_starts(self, pieces: list[list[int]]) -> list[int]:
        """Positions of the tagged copy's words' first sub-words."""
        pos = sum(map(len, pieces)) + 1 if self._echo() else 0  # past the first copy and <sep>
        starts = []
        for ids in pieces:
            starts.append(pos)
            pos += len(ids)
        return starts

    def encode(self, example: CompressionExample, *, train: bool) -> list[dict[str, Any]]:
        if train and example.completion is None:
            raise DataError(f"{example_location(example)}: no completion to train on")
        src = self.window_words(example)
        pieces = self._pieces(src)
        ids = [t for word in pieces for t in word]
        if self._echo():
            ids = [*ids, self.tokenizer.sep_id, *ids]  # W <sep> W
        labels = [IGNORE] * (len(ids) + 1)  # + <eos>
        if example.completion is not None:
            kept = set(oracle_keep(src, example.completion))
            for i, start in enumerate(self._word_starts(pieces)):
                labels[start] = int(i in kept)
        return [{"input_ids": [*ids, self.tokenizer.eos_id], "labels": labels}]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return pad_collate(features, {"input_ids": self.tokenizer.pad_id, "labels": IGNORE})

    # ------------------------------------------------------------------ model
    def check_backbone(self, backbone: Any) -> None:
        super().check_backbone(backbone)
        self._causal = bool(getattr(backbone, "causal", True))

    def build_head(self, backbone: Any) -> nn.Module:
        self.check_backbone(backbone)
        return TokenHead(backbone.d_model, 2, self.options.dropout)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return F.cross_entropy(
            outputs.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE
        )

    @torch.no_grad()
    def predict(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> list[Any]:
        p_keep = self.forward(backbone, head, batch).float().softmax(-1)[..., 1].tolist()  # (B, T)
        out = []
        for row, ex in enumerate(batch["examples"]):
            src = self.window_words(ex)
            starts = self._word_starts(self._pieces(src))
            keep = [round(p_keep[row][s], 4) for s in starts] + [0.0] * (len(src) - len(starts))
            out.append(scored_words(src, keep, self.options.keep))
        return out

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, Any]:
        return {"rougeL": RougeL()}

    def update_metrics(
        self, metrics: dict[str, Any], predictions: list[Any], examples: list[Any]
    ) -> None:
        missing = next((ex for ex in examples if ex.completion is None), None)
        if missing is not None:
            raise DataError(f"{example_location(missing)}: no completion to score against")
        metrics["rougeL"].update(
            [p.get("completion", "") for p in predictions], [ex.completion for ex in examples]
        )

    def metric_info(self) -> dict[str, Any]:
        return {
            "rougeL": MetricInfo(
                definition="torchmetrics ROUGEScore rougeL F-measure, no stemming"
            ),
            "_task": {"window": self.options.window, "keep": self.options.keep},
        }

    # ------------------------------------------------------------------ baselines
    def baselines(self) -> dict[str, Baseline]:
        """``lead`` and ``compress``, as for headline generation (:mod:`.baselines`,
        :mod:`.compressor`); both choose their settings on validation."""

        def main(predictions: list[dict[str, Any]], examples: Sequence[Any]) -> float:
            return score_predictions(self, predictions, examples)[self.main_metric]

        return {
            "lead": WindowLead(main, self.window_words),
            "compress": Compressor(main, window=self.options.window),
        }

    def fuse(self, a: Any, b: Any, weight: float) -> dict[str, Any]:
        """Each word's keep probabilities pooled log-linearly (``weight`` on ``a``: the
        weighted geometric means of keep and of drop, renormalised), and the likeliest words
        kept, as many as the two kept, weighted alike (so weight 1 gives ``a`` and 0 gives
        ``b``). Both predictions need ``words``, ``keep`` and ``kept`` over the same window
        (the model's and the baselines' have them)."""
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be between 0 and 1, got {weight}")
        if a.get("words") != b.get("words") or not all("keep" in p for p in (a, b)):
            raise ValueError("fuse needs two predictions with 'keep' over the same 'words'")
        z = [
            weight * _logit(x) + (1 - weight) * _logit(y)
            for x, y in zip(a["keep"], b["keep"], strict=True)
        ]
        pooled = [1.0 / (1.0 + math.exp(-v)) for v in z]
        kept = round(weight * a["kept"] + (1 - weight) * b["kept"])
        return scored_words(a["words"], pooled, kept)
