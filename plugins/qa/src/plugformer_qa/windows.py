"""Context windows as token positions, shared by encoding and decoding: where the windows
over a long context start (:func:`window_starts`), which tokens a character span covers
(:func:`token_span`, :class:`TokenSpans` for many spans of one text), and a slice of a
collated batch's windows (:func:`window_rows`), and the passage of a pretraining document
(:func:`passage_around`).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["TokenSpans", "passage_around", "token_span", "window_rows", "window_starts"]


def window_starts(n_tokens: int, span: int, stride: int) -> list[int]:
    """Starts of windows of ``span`` tokens, ``stride`` apart, covering ``n_tokens`` (at least one)."""
    starts = [0]
    while starts[-1] + span < n_tokens:
        starts.append(starts[-1] + stride)
    return starts


def passage_around(
    offsets: Sequence[tuple[int, int]], char_start: int, char_end: int, span: int, key: str
) -> tuple[int, int]:
    """Characters ``[a, b)`` of a window of at most ``span`` tokens of a passage (token
    ``offsets``) that holds the answer at ``[char_start, char_end)`` whole. Where the window
    starts among those that hold it is drawn from ``key`` (the example's id), reproducibly,
    so that the answer's place in the window teaches nothing. An answer longer than the span
    keeps its first tokens."""
    n = len(offsets)
    if n <= span:
        return 0, offsets[-1][1] if n else 0
    first, last = token_span(offsets, char_start, char_end) or (0, 0)
    low, high = max(0, last - span + 1), min(first, n - span)
    if high < low:  # the answer alone is longer than the span
        low = high = first
    draw = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    start = low + draw % (high - low + 1)
    return offsets[start][0], offsets[min(start + span, n) - 1][1]


def token_span(
    offsets: Sequence[tuple[int, int]], char_start: int, char_end: int
) -> tuple[int, int] | None:
    """First and last token overlapping characters ``[char_start, char_end)``, if any."""
    hits = [t for t, (s, e) in enumerate(offsets) if s < char_end and e > char_start]
    return (hits[0], hits[-1]) if hits else None


def _rising(values: list[int]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(values))


class TokenSpans:
    """:func:`token_span` for many character spans of one text's token ``offsets``.

    A tokenizer's offsets rise with the token (starts and ends alike), so the tokens ending
    after ``char_start`` are a suffix and those starting before ``char_end`` a prefix: two
    binary searches find the span. Scanning every token for every span had cost an entity QA
    cell's encoding seconds (tens of candidates per context, hundreds of tokens each). Offsets
    that do not rise are scanned as before.
    """

    def __init__(self, offsets: Sequence[tuple[int, int]]) -> None:
        self.offsets = offsets
        self.starts = [s for s, _ in offsets]
        self.ends = [e for _, e in offsets]
        self.rising = _rising(self.starts) and _rising(self.ends)

    def span(self, char_start: int, char_end: int) -> tuple[int, int] | None:
        if not self.rising:
            return token_span(self.offsets, char_start, char_end)
        first = bisect.bisect_right(self.ends, char_start)  # first token with end > char_start
        last = bisect.bisect_left(self.starts, char_end) - 1  # last with start < char_end
        return (first, last) if first <= last else None


def window_rows(batch: dict[str, Any], n: int, lo: int, hi: int) -> dict[str, Any]:
    """Rows ``lo:hi`` of the per-window entries of a collated batch (tensors and lists of n)."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if key in ("examples", "example_index"):
            continue
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.size(0) == n:
            out[key] = value[lo:hi]
        elif isinstance(value, list) and len(value) == n:
            out[key] = value[lo:hi]
        else:
            out[key] = value
    return out
