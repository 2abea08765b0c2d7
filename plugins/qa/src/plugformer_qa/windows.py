"""Context windows as token positions, shared by encoding and decoding: where the windows
over a long context start (:func:`window_starts`), which tokens a character span covers
(:func:`token_span`), and a slice of a collated batch's windows (:func:`window_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["token_span", "window_rows", "window_starts"]


def window_starts(n_tokens: int, span: int, stride: int) -> list[int]:
    """Starts of windows of ``span`` tokens, ``stride`` apart, covering ``n_tokens`` (at least one)."""
    starts = [0]
    while starts[-1] + span < n_tokens:
        starts.append(starts[-1] + stride)
    return starts


def token_span(
    offsets: Sequence[tuple[int, int]], char_start: int, char_end: int
) -> tuple[int, int] | None:
    """First and last token overlapping characters ``[char_start, char_end)``, if any."""
    hits = [t for t, (s, e) in enumerate(offsets) if s < char_end and e > char_start]
    return (hits[0], hits[-1]) if hits else None


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
