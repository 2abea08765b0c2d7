"""``TaggingTask``: one label per word (named entities, parts of speech), scored by span F1.

Data flow::

    {"tokens": ["Mr.", "Bennet", "replied"], "tags": ["O", "B-PER", "O"]}
        ──encode──▶ sub-word ids of every word + <eos>; a word's label sits on its first
                    sub-word, -100 elsewhere (words past the length budget are dropped)
        ──backbone─▶ (B, T, C) ──linear──▶ logits (B, T, K) ──argmax at first sub-words──▶ tags

Words cut off by the budget are predicted ``O``. Metrics: entity ``span_f1`` (BIO spans,
seqeval's micro F1; the main metric) and per-word ``accuracy``. Baseline: each word's most
frequent training tag (``O`` for unseen words).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field, model_validator
from torch import nn

from plugformer.blocks.encoding import IGNORE, pad_collate
from plugformer.blocks.heads import TokenHead
from plugformer.blocks.labels import LabelSet
from plugformer.blocks.metrics import MeanOf, SpanF1, bio_spans, on_device
from plugformer.errors import DataError
from plugformer.metric_info import MetricInfo
from plugformer.tasks import SEP, Baseline, LocatedExample, Task, TaskOptions, example_location

__all__ = ["TaggingExample", "TaggingOptions", "TaggingTask"]


class TaggingExample(LocatedExample):
    """Words and (for training and scoring) one tag per word."""

    model_config = ConfigDict(extra="ignore", use_attribute_docstrings=True)

    id: str | None = None
    """Identifier (optional)."""
    tokens: list[str] = Field(min_length=1)
    """The words of the sentence."""
    tags: list[str] | None = None
    """One tag per word (BIO: ``B-PER``, ``I-PER``, ``O``); absent for prediction-only inputs."""

    @model_validator(mode="after")
    def _aligned(self) -> TaggingExample:
        if self.tags is not None and len(self.tags) != len(self.tokens):
            raise ValueError(f"{len(self.tags)} tags for {len(self.tokens)} tokens")
        return self


class TaggingOptions(TaskOptions):
    """Options of a tagging task."""

    labels: list[str] | None = None
    """Fixed tag names; default: the training tags, sorted."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout on the token states, before the linear classifier."""


class TaggingTask(Task):
    """Word tagging; predictions are ``{"tags": [...]}`` (one per input word)."""

    Example = TaggingExample
    Options = TaggingOptions
    main_metric = "span_f1"
    options: TaggingOptions

    def __init__(self, options: Any = None, tokenizer: Any = None) -> None:
        super().__init__(options, tokenizer)
        self.label_set = LabelSet(self.name, self.options.labels, minimum=1)

    @property
    def labels(self) -> list[str]:
        """The tag names, in output order."""
        return self.label_set.names

    def prepare(self, train_examples: Sequence[TaggingExample]) -> None:
        missing = next((ex for ex in train_examples if ex.tags is None), None)
        if missing is not None:
            raise DataError(
                f"{example_location(missing)}: no tags (training needs them; if the file names "
                "them otherwise, map the column: --set options.columns.tags=COLUMN)"
            )
        pairs = [(t, example_location(ex)) for ex in train_examples for t in ex.tags or []]
        self.label_set.learn([t for t, _ in pairs], [where for _, where in pairs])

    def state_dict(self) -> dict[str, Any]:
        return self.label_set.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.label_set.load_state_dict(state)

    def example_from_input(self, value: str | dict[str, Any]) -> TaggingExample:
        """A string is split into words on white space."""
        return self.parse_example({"tokens": value.split()} if isinstance(value, str) else value)

    def pretrain_documents(self, examples: Sequence[TaggingExample]) -> Iterator[str]:
        """``words <sep> word/TAG …``: the sentence, then each word with its tag."""
        for ex in examples:
            if ex.tags is not None:
                tagged = " ".join(f"{w}/{t}" for w, t in zip(ex.tokens, ex.tags, strict=True))
                yield f"{' '.join(ex.tokens)}{SEP}{tagged}"

    # ------------------------------------------------------------------ tensors
    def encode(self, example: TaggingExample, *, train: bool) -> list[dict[str, Any]]:
        ids: list[int] = []
        labels: list[int] = []
        budget = self.length_budget - 1  # room for <eos>
        for i, word in enumerate(example.tokens):
            pieces = self.tokenizer.encode(word if i == 0 else " " + word) or [
                self.tokenizer.pad_id
            ]
            if len(ids) + len(pieces) > budget:
                break
            gold = example.tags[i] if example.tags is not None else None
            first = (
                self.label_set.index(gold, example.id, where=example_location(example))
                if gold is not None
                else IGNORE
            )
            ids += pieces
            labels += [first] + [IGNORE] * (len(pieces) - 1)
        if train and example.tags is None:
            raise DataError(f"{example_location(example)}: no tags to train on")
        return [{"input_ids": [*ids, self.tokenizer.eos_id], "labels": [*labels, IGNORE]}]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return pad_collate(features, {"input_ids": self.tokenizer.pad_id, "labels": IGNORE})

    # ------------------------------------------------------------------ model
    def build_head(self, backbone: Any) -> nn.Module:
        self.check_backbone(backbone)
        return TokenHead(backbone.d_model, len(self.label_set.require()), self.options.dropout)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return F.cross_entropy(
            outputs.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE
        )

    @torch.no_grad()
    def predict(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> list[Any]:
        best = self.forward(backbone, head, batch).argmax(-1).tolist()  # (B, T)
        out = []
        for row, ex in enumerate(batch["examples"]):
            starts = self._word_starts(ex)
            tags = [self.label_set.names[best[row][p]] if p is not None else "O" for p in starts]
            out.append({"tags": tags})
        return out

    def _word_starts(self, example: TaggingExample) -> list[int | None]:
        """Position of each word's first sub-word (``None`` past the length budget)."""
        pos, out, budget = 0, [], self.length_budget - 1
        for i, word in enumerate(example.tokens):
            n = len(self.tokenizer.encode(word if i == 0 else " " + word)) or 1
            out.append(pos if pos + n <= budget and (not out or out[-1] is not None) else None)
            pos += n
        return out

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, Any]:
        return {"span_f1": SpanF1(), "accuracy": MeanOf()}

    def update_metrics(
        self, metrics: dict[str, Any], predictions: list[Any], examples: list[Any]
    ) -> None:
        gold = [ex.tags for ex in examples]
        missing = next((ex for ex in examples if ex.tags is None), None)
        if missing is not None:
            raise DataError(f"{example_location(missing)}: no tags to score against")
        predicted = [p["tags"] for p in predictions]
        metrics["span_f1"].update(predicted, gold)
        hits = [
            float(a == b)
            for p, g in zip(predicted, gold, strict=True)
            for a, b in zip(p, g, strict=True)
        ]
        metrics["accuracy"].update(on_device(metrics["accuracy"], hits))

    def example_statistics(self, predictions: Sequence[Any], examples: Sequence[Any]) -> Any:
        """Per sentence: (spans right, spans predicted, gold spans) for span F1, whose corpus
        value is ``2·Σright / (Σpredicted + Σgold)``; (words right, words) for accuracy."""
        from plugformer.resampling import ExampleStatistics

        rows = []
        for p, ex in zip(predictions, examples, strict=True):
            if self.main_metric == "span_f1":
                ps, gs = bio_spans(p["tags"]), bio_spans(ex.tags)
                rows.append([float(len(ps & gs)), float(len(ps)), float(len(gs))])
            else:
                hits = sum(a == b for a, b in zip(p["tags"], ex.tags, strict=True))
                rows.append([float(hits), float(len(ex.tags))])
        return ExampleStatistics("f1" if self.main_metric == "span_f1" else "ratio", rows)

    def metric_info(self) -> dict[str, Any]:
        return {
            "span_f1": MetricInfo(definition="micro F1 of BIO entity spans (exact words and type)"),
            "accuracy": MetricInfo(definition="fraction of words tagged correctly"),
            "_task": {"labels": self.label_set.names},
        }

    def baselines(self) -> dict[str, Baseline]:
        def word_majority(train: list[Any], test: list[Any]) -> list[Any]:
            seen: dict[str, Counter[str]] = defaultdict(Counter)
            for ex in train:
                for w, t in zip(ex.tokens, ex.tags or [], strict=False):
                    seen[w][t] += 1
            pick = {w: c.most_common(1)[0][0] for w, c in seen.items()}
            return [{"tags": [pick.get(w, "O") for w in ex.tokens]} for ex in test]

        return {"word-majority": word_majority}
