"""Tests of the token-position helpers of :mod:`plugformer_qa.windows`."""

from __future__ import annotations

import random

from plugformer_qa.windows import TokenSpans, token_span


def test_token_spans_by_binary_search_equal_a_scan_of_every_token() -> None:
    """``TokenSpans`` (two binary searches on rising offsets) finds what ``token_span`` (a scan
    of every token) finds, for spans inside, across, between and outside tokens, and zero-width
    tokens; offsets that do not rise are scanned."""
    rng = random.Random(0)
    for _ in range(200):
        offsets, at = [], rng.randint(0, 3)
        for _ in range(rng.randint(0, 12)):
            start = at + rng.choice([0, 0, 1])  # adjacent or after a space
            at = start + rng.choice([0, 1, 2, 3])  # zero-width tokens too
            offsets.append((start, at))
        spans = TokenSpans(offsets)
        assert spans.rising
        for _ in range(20):
            a = rng.randint(0, at + 2)
            b = a + rng.randint(1, 6)
            assert spans.span(a, b) == token_span(offsets, a, b), (offsets, a, b)
    shuffled = [(5, 8), (0, 4), (9, 12)]
    assert not TokenSpans(shuffled).rising
    assert TokenSpans(shuffled).span(3, 6) == token_span(shuffled, 3, 6) == (0, 1)
