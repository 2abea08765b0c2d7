"""Decoding for the ``qa`` task: the best span of each window
(:func:`~plugformer_qa.head.best_spans`) → one answer per example, as characters of its
context.

An evaluation batch holds every window of each of its examples (``batch["example_index"]``
names a window's example). :func:`decode_spans` keeps each example's best-scoring window
span; :func:`decode_candidates` (``answer_candidates = "entities"``) chooses among the
context's candidate entities instead, still by the model's start + end logits. Nothing here
runs the model: :meth:`~plugformer_qa.task.QATask.predict` scores the windows, a few at a
time, and hands their spans over.

Answers map back through the tokenizer's character offsets (leading and trailing whitespace
of the span is dropped), so a prediction is always an exact substring of the context. A span
that starts or ends inside a word (a sub-word token) is widened to the whole word
(``snap_to_words``, :func:`tidy`), since SQuAD scoring compares whole words. Decoding never
returns the ``<sep>`` that labels windows without the answer: SQuAD v1.1 questions always
have one.

A prediction is ``{"answer": text, "answer_start": char offset, "score": float}``; an
example without any context token gets ``{"answer": "", "answer_start": None, "score": None}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from plugformer_qa.baselines import candidate_spans
from plugformer_qa.schema import QAExample
from plugformer_qa.windows import TokenSpans

__all__ = ["decode_candidates", "decode_spans", "tidy"]


def tidy(context: str, start: int, end: int, *, snap_to_words: bool) -> tuple[int, int]:
    """Drop surrounding whitespace of ``context[start:end]``; widen to whole words if asked."""
    while start < end and context[start].isspace():
        start += 1
    while end > start and context[end - 1].isspace():
        end -= 1
    if snap_to_words and start < end:
        while start > 0 and context[start - 1].isalnum() and context[start].isalnum():
            start -= 1
        while end < len(context) and context[end - 1].isalnum() and context[end].isalnum():
            end += 1
    return start, end


def decode_spans(
    scores: torch.Tensor,
    starts: torch.Tensor,
    ends: torch.Tensor,
    batch: dict[str, Any],
    *,
    snap_to_words: bool,
) -> list[dict[str, Any]]:
    """One prediction per example: its best-scoring window span (``scores``, ``starts`` and
    ``ends`` are (B,), one per window, token positions of the window's input)."""
    examples = batch["examples"]
    best: list[tuple[float, int, int, int] | None] = [None] * len(examples)
    spans = zip(scores.tolist(), starts.tolist(), ends.tolist(), strict=True)
    for f, ((score, i, j), e) in enumerate(
        zip(spans, batch["example_index"].tolist(), strict=True)
    ):
        if score > float("-inf") and (best[e] is None or score > best[e][0]):
            best[e] = (score, f, i, j)
    predictions = []
    for example, found in zip(examples, best, strict=True):
        if found is None:
            predictions.append({"answer": "", "answer_start": None, "score": None})
            continue
        score, f, i, j = found
        offset, offsets = int(batch["context_offset"][f]), batch["offsets"][f]
        char_start, char_end = offsets[i - offset][0], offsets[j - offset][1]
        char_start, char_end = tidy(
            example.context, char_start, char_end, snap_to_words=snap_to_words
        )
        answer = example.context[char_start:char_end]
        predictions.append({"answer": answer, "answer_start": char_start, "score": score})
    return predictions


def decode_candidates(
    scores: torch.Tensor,
    starts: torch.Tensor,
    ends: torch.Tensor,
    logits: list[torch.Tensor],
    batch: dict[str, Any],
    *,
    snap_to_words: bool,
    prior_of: Callable[[QAExample], Mapping[str, float]],
    prior_weight: float = 0.0,
) -> list[dict[str, Any]]:
    """The best-scoring candidate entity of each example (``answer_candidates =
    "entities"``): a candidate occurrence scores ``start[i] + end[j]`` over its first and
    last token in a window that holds it whole, plus ``prior_weight`` times its text's
    prior score (``prior_of(example)[text]``, ``candidate_prior``); the best over
    occurrences and windows wins. ``logits`` holds each window's start and end logits, a
    (2, T) tensor per window. Examples without a candidate decode as :func:`decode_spans`."""
    predictions = decode_spans(scores, starts, ends, batch, snap_to_words=snap_to_words)
    examples, owner = batch["examples"], batch["example_index"].tolist()
    best: list[tuple[float, int, int] | None] = [None] * len(examples)
    spans = [candidate_spans(ex.context, ex.question) for ex in examples]
    priors = [prior_of(ex) if prior_weight else {} for ex in examples]
    for f, e in enumerate(owner):
        if not spans[e]:
            continue
        offset, offsets = int(batch["context_offset"][f]), batch["offsets"][f]
        start_logits, end_logits = logits[f].tolist()  # (T,), (T,) as lists
        window = TokenSpans(offsets)
        for char_start, char_end in spans[e]:
            tokens = window.span(char_start, char_end)
            if tokens is None:
                continue
            i, j = tokens
            # Only an occurrence this window holds whole: none cut at either edge.
            if offsets[i][0] > char_start or offsets[j][1] < char_end:
                continue
            text = examples[e].context[char_start:char_end]
            score = start_logits[offset + i] + end_logits[offset + j]
            score += prior_weight * priors[e].get(text, 0.0)
            if best[e] is None or score > best[e][0]:
                best[e] = (score, char_start, char_end)
    for e, found in enumerate(best):
        if found is not None:
            score, char_start, char_end = found
            answer = examples[e].context[char_start:char_end]
            predictions[e] = {"answer": answer, "answer_start": char_start, "score": score}
    return predictions
