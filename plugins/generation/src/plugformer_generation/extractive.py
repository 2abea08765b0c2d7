"""Extractive targets: the words of a reference completion that its prompt holds, in order.

With the option ``extractive = true`` a headline is decoded as a compression of its article
(each new token one of the prompt's, after the last one copied:
:func:`plugformer.inference.decoding.monotonic_copy`). It trains on what such a decoder can
write: the longest common subsequence of the article's words and the headline's (the oracle
of deletion-based compression, as extractive summarisers label their training sentences),
written as the article has the words. The reference itself still scores every prediction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

__all__ = ["key", "oracle_compression", "oracle_keep", "scored_words", "top_words", "words"]

_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_EDGE = "\"'“”‘’.,;:!?()[]{}«»—–-"


def key(word: str) -> str:
    """How ROUGE compares words: lower case, letters and digits only."""
    return _NOT_ALNUM.sub("", word.lower())


def words(prompt: str) -> list[str]:
    """The prompt's words as an extractive output writes them: edge punctuation stripped."""
    return [w.strip(_EDGE) for w in prompt.split()]


def oracle_keep(prompt_words: list[str], reference: str) -> list[int]:
    """Indices of the ``prompt_words`` that form a longest common subsequence with
    ``reference``'s words (compared as ROUGE does), the earliest such match of each word."""
    a = [key(w) for w in prompt_words]
    b = [k for k in (key(w) for w in reference.split()) if k]
    # lengths[i][j]: LCS of a[i:] and b[j:] (suffix table, so the walk below goes forwards)
    lengths = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) - 1, -1, -1):
        for j in range(len(b) - 1, -1, -1):
            if a[i] and a[i] == b[j]:
                lengths[i][j] = lengths[i + 1][j + 1] + 1
            else:
                lengths[i][j] = max(lengths[i + 1][j], lengths[i][j + 1])
    keep, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i] and a[i] == b[j]:  # the earliest match: a headline leans on the article's lead
            keep.append(i)
            i, j = i + 1, j + 1
        elif lengths[i + 1][j] >= lengths[i][j + 1]:
            i += 1
        else:
            j += 1
    return keep


def oracle_compression(prompt: str, reference: str) -> str:
    """The prompt's words (edge punctuation stripped) that form a longest common subsequence
    with ``reference``'s words, in order, joined by spaces; ``""`` when they share none."""
    src = words(prompt)
    return " ".join(src[i] for i in oracle_keep(src, reference))


def top_words(src: Sequence[str], p: Sequence[float], keep: int) -> str:
    """The ``keep`` words of ``src`` with the highest ``p``, in ``src``'s order (ties: the
    earlier word), joined by spaces."""
    top = sorted(sorted(range(len(src)), key=lambda i: -p[i])[:keep])
    return " ".join(src[i] for i in top)


def scored_words(src: list[str], p: Sequence[float], keep: int) -> dict[str, Any]:
    """A prediction: the ``keep`` likeliest words as the completion, with what the compression
    task's ``fuse`` pools (the words, each one's keep probability, how many were kept); the
    compress baseline's predictions and the compression model's are both made here."""
    keep = min(keep, len(src))
    return {"completion": top_words(src, p, keep), "words": src, "keep": list(p), "kept": keep}
