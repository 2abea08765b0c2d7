"""``SpanSelectionTask``: extract the answer to a question as a span of a context.

Data flow (one window per example; the context is cut to the length budget)::

    {"question": q, "context": c, "answer": a, "answer_start": i}
        ──encode──▶ q <sep> c <eos>; start/end = the answer's first and last context token
                    (0, the first position, when the answer falls outside the window)
        ──backbone─▶ (B, T, C) ──linear──▶ start, end logits (B, T)
        ──predict─▶ best start ≤ end within the context (at most ``max_answer_tokens``) → text

Metrics: SQuAD ``exact_match`` (main) and token ``f1``. Baseline: the context's first words.
A bidirectional backbone suits this task best; a causal one works (every position has read
the question).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field, StrictStr
from torch import nn

from plugformer.blocks.encoding import pad_collate
from plugformer.blocks.heads import TokenHead
from plugformer.blocks.metrics import MeanOf, normalise_answer, on_device, token_f1
from plugformer.errors import DataError
from plugformer.metric_info import MetricInfo
from plugformer.tasks import SEP, Baseline, LocatedExample, Task, TaskOptions, example_location

__all__ = ["SpanExample", "SpanOptions", "SpanSelectionTask"]


class SpanExample(LocatedExample):
    """A question, a context and (for training and scoring) the answer span."""

    model_config = ConfigDict(
        extra="ignore", coerce_numbers_to_str=True, use_attribute_docstrings=True
    )

    id: str | None = None
    """Identifier (optional)."""
    question: StrictStr = Field(min_length=1)
    """The question (a string: a number is refused, not read as one)."""
    context: StrictStr = Field(min_length=1)
    """The passage holding the answer."""
    answer: StrictStr | None = None
    """The answer text, a substring of ``context``."""
    answer_start: int | None = Field(None, ge=0)
    """Character offset of ``answer`` in ``context`` (default: its first occurrence)."""


class SpanOptions(TaskOptions):
    """Options of a span-selection task."""

    max_answer_tokens: int = Field(30, ge=1)
    """Longest answer considered when decoding."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout on the token states."""


class SpanSelectionTask(Task):
    """Extractive span selection; predictions are ``{"answer": text}``."""

    Example = SpanExample
    Options = SpanOptions
    main_metric = "exact_match"
    options: SpanOptions

    def example_from_input(self, value: str | dict[str, Any]) -> Any:
        if isinstance(value, str):
            raise DataError(f"task {self.name!r} needs --field question=... --field context=...")
        return self.parse_example(value, "<input>")

    def pretrain_documents(self, examples: Sequence[Any]) -> Iterator[str]:
        """``question <sep> context <sep> answer``: the window ``encode`` reads, then the answer."""
        for ex in examples:
            if ex.answer is not None:
                yield f"{ex.question}{SEP}{ex.context}{SEP}{ex.answer}"

    def _window(self, example: Any) -> tuple[list[int], list[tuple[int, int]], int]:
        """(ids, context offsets per context token, index of the first context token)."""
        tok = self.tokenizer
        question = tok.encode(example.question)[: self.length_budget // 2]
        ctx_ids, offsets = tok.encode_with_offsets(example.context)
        room = self.length_budget - len(question) - 2
        ctx_ids, offsets = ctx_ids[:room], offsets[:room]
        return [*question, tok.sep_id, *ctx_ids, tok.eos_id], offsets, len(question) + 1

    def encode(self, example: Any, *, train: bool) -> list[dict[str, Any]]:
        ids, offsets, first = self._window(example)
        feature: dict[str, Any] = {"input_ids": ids}
        if example.answer is not None:
            start = example.answer_start
            if start is None:
                start = example.context.find(example.answer)
            if start < 0 or example.context[start : start + len(example.answer)] != example.answer:
                raise DataError(
                    f"{example_location(example)}: answer {example.answer!r} is not in its context"
                )
            end = start + len(example.answer)
            inside = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
            s, e = (first + inside[0], first + inside[-1]) if inside else (0, 0)
            feature.update(start=s, end=e)
        elif train:
            raise DataError(f"{example_location(example)}: no answer to train on")
        return [feature]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return pad_collate(features, {"input_ids": self.tokenizer.pad_id})

    def build_head(self, backbone: Any) -> nn.Module:
        self.check_backbone(backbone)
        return TokenHead(backbone.d_model, 2, self.options.dropout)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        mask = batch["attention_mask"] == 0  # (B, T)
        start, end = outputs.float().masked_fill(mask.unsqueeze(-1), -1e4).unbind(-1)  # (B, T) each
        return (F.cross_entropy(start, batch["start"]) + F.cross_entropy(end, batch["end"])) / 2

    @torch.no_grad()
    def predict(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> list[Any]:
        logits = self.forward(backbone, head, batch).float()  # (B, T, 2)
        out = []
        for row, ex in enumerate(batch["examples"]):
            _, offsets, first = self._window(ex)
            n = len(offsets)
            start = logits[row, first : first + n, 0]  # (n,)
            end = logits[row, first : first + n, 1]  # (n,)
            scores = start[:, None] + end[None, :]  # (n, n)
            allowed = torch.ones(n, n, dtype=torch.bool, device=scores.device).triu()
            allowed &= ~torch.ones_like(allowed).triu(self.options.max_answer_tokens)
            best = int(scores.masked_fill(~allowed, -1e9).argmax()) if n else 0
            s, e = divmod(best, max(n, 1))
            text = ex.context[offsets[s][0] : offsets[e][1]].strip() if n else ""
            out.append({"answer": text})
        return out

    def metrics(self) -> dict[str, Any]:
        return {"exact_match": MeanOf(), "f1": MeanOf()}

    def update_metrics(
        self, metrics: dict[str, Any], predictions: list[Any], examples: list[Any]
    ) -> None:
        missing = next((ex for ex in examples if ex.answer is None), None)
        if missing is not None:
            raise DataError(f"{example_location(missing)}: no answer to score against")
        pairs = [(p["answer"], ex.answer) for p, ex in zip(predictions, examples, strict=True)]
        em = [float(normalise_answer(p) == normalise_answer(g)) for p, g in pairs]
        f1 = [token_f1(p, g) for p, g in pairs]
        metrics["exact_match"].update(on_device(metrics["exact_match"], em))
        metrics["f1"].update(on_device(metrics["f1"], f1))

    def metric_info(self) -> dict[str, Any]:
        return {
            "exact_match": MetricInfo(
                definition="fraction of answers equal to the gold after SQuAD normalisation"
            ),
            "f1": MetricInfo(definition="mean SQuAD token-overlap F1 of answer and gold"),
        }

    def baselines(self) -> dict[str, Baseline]:
        def first_words(train: list[Any], test: list[Any]) -> list[Any]:
            lengths = sorted(len((ex.answer or "").split()) for ex in train) or [1]
            k = max(1, lengths[len(lengths) // 2])
            return [{"answer": " ".join(ex.context.split()[:k])} for ex in test]

        return {"first-words": first_words}
