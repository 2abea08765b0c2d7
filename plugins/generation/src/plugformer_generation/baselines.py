"""The ``lead`` baseline of completion metrics: the prompt's opening words as the completion.

Strong for headlines (news leads say what the headline says; Nallapati et al. 2016). Two
choices, made on **validation** with the task's own main metric (ROUGE-L by default), never
on test, over a grid, ties going to the earlier setting:

* ``unit``: ``"sentence"`` (the prompt's first sentence, ended by ``.``, ``!`` or ``?`` and
  whitespace) or ``"prompt"`` (the whole prompt);
* ``words``: keep at most this many of its first words (4 to 20), or all (``None``).

Without validation examples it is the whole first sentence (``unit="sentence"``,
``words=None``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["UNITS", "WORDS", "Lead", "lead"]

UNITS = ("sentence", "prompt")
"""Where the words are taken from, tried in this order."""
WORDS: tuple[int | None, ...] = (None, *range(4, 21))
"""Word limits tried (``None``: no limit)."""
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def lead(prompt: str | None, unit: str, words: int | None) -> dict[str, Any]:
    """The prediction: the first ``words`` words of the prompt's first sentence or of the
    prompt (``{}`` without a prompt, which no completion metric scores)."""
    if not prompt:
        return {}
    text = prompt.strip()
    if unit == "sentence":
        text = SENTENCE_END.split(text, maxsplit=1)[0]
    return {"completion": " ".join(text.split()[:words])}


class Lead:
    """``Baseline`` ``lead``: the prompt's opening words (see the module docstring)."""

    definition = (
        "the first N words of the prompt or of its first sentence (N and which chosen on "
        "validation by the main metric; the whole first sentence without validation)"
    )

    def __init__(
        self,
        score: Callable[[list[dict[str, Any]], Sequence[Any]], float],
        units: Sequence[str] = UNITS,
        words: Sequence[int | None] = WORDS,
    ) -> None:
        self.score, self.units, self.words = score, list(units), list(words)
        self.chosen: dict[str, Any] = {}

    def __call__(
        self, train: Sequence[Any], test: Sequence[Any], validation: Sequence[Any] = ()
    ) -> list[dict[str, Any]]:
        setting: dict[str, Any] = {"unit": "sentence", "words": None}
        scored = [ex for ex in validation if ex.prompt and ex.completion is not None]
        if scored:
            best = None
            for unit in self.units:
                for n in self.words:
                    value = self.score([lead(ex.prompt, unit, n) for ex in scored], scored)
                    if best is None or value > best:  # ties: the earlier setting
                        best, setting = value, {"unit": unit, "words": n}
            setting["validation_score"] = round(float(best or 0.0), 4)
        self.chosen = setting
        return [lead(ex.prompt, setting["unit"], setting["words"]) for ex in test]
