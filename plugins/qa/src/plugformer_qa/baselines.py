"""The ``lexical-overlap`` baseline: a sliding-window answer picker that reads no training data.

A simplified form of the sliding-window baseline of Richardson et al. (2013), as used for
SQuAD by Rajpurkar et al. (2016):

* words are runs of word characters (``\\w+``), compared lower-cased;
* candidates are the spans of 1-4 consecutive context words that share no word with the
  question (an answer rarely repeats the question);
* a candidate's score is the summed weight of the question words found among the
  ``WINDOW`` words on either side of it, each occurrence weighted by its inverse count in
  the context, ``ln(1 + 1 / count)`` (rare shared words count most);
* the best score wins; ties go to the earliest start, then the shortest span. A context
  without candidates gives the empty answer.

It costs O(words × 4) per example (prefix sums), so thousands of examples take a second.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

__all__ = ["MAX_WORDS", "WINDOW", "lexical_overlap", "sliding_window_answer"]

WORD = re.compile(r"\w+")
MAX_WORDS = 4
"""Longest candidate answer, in words."""
WINDOW = 5
"""Words on each side of a candidate that are compared with the question."""


def sliding_window_answer(question: str, context: str) -> dict[str, Any]:
    """The best candidate span of ``context``, as a prediction of :class:`QATask`."""
    words = [(m.group().lower(), m.start(), m.end()) for m in WORD.finditer(context)]
    asked = {w.lower() for w in WORD.findall(question)}
    counts = Counter(w for w, _, _ in words)
    weights = [math.log(1 + 1 / counts[w]) if w in asked else 0.0 for w, _, _ in words]
    prefix = [0.0, *accumulate(weights)]
    n, best = len(words), None
    for i in range(n):
        for j in range(i + 1, min(i + MAX_WORDS, n) + 1):  # the span is words[i:j]
            if words[j - 1][0] in asked:
                break  # every longer span from i holds this question word too
            # The span itself adds nothing: it holds no question word.
            score = prefix[min(n, j + WINDOW)] - prefix[max(0, i - WINDOW)]
            if best is None or score > best[0]:
                best = (score, i, j)
    if best is None:
        return {"answer": "", "answer_start": None, "score": None}
    score, i, j = best
    start, end = words[i][1], words[j - 1][2]
    return {"answer": context[start:end], "answer_start": start, "score": score}


def lexical_overlap(train: Sequence[Any], test: Sequence[Any]) -> list[dict[str, Any]]:
    """``Baseline``: the sliding-window answer of every test example (``train`` is unused)."""
    return [sliding_window_answer(ex.question, ex.context) for ex in test]
