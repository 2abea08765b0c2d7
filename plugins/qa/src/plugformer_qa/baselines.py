"""The ``entity-ranker`` baseline: pick the context entity a linear model of lexical features
scores best, in the manner of Chen et al. (2016)'s feature classifier for cloze news QA.

* **Candidates** are the answers the ``news-cloze-qa`` recipe can make
  (:mod:`plugformer_qa.datasets`): runs of 1-4 capitalised or numeric words of the context
  (:func:`~plugformer_qa.datasets.candidates`) that occur there, on word boundaries, somewhere
  other than at a sentence start, and that do not occur in the question. A candidate is
  answered at its first such occurrence.
* **Features** of a candidate (:func:`features`): its length in words, whether it is a
  number, how often and how early it occurs, whether a longer capitalised run holds it,
  whether it shares a word with the question, whether the words beside ``@placeholder`` in
  the question stand beside it in the context (and whether that left word is capitalised,
  which would have made a longer entity), and how many question content words stand within
  ``window`` words of it (the best occurrence; in total and weighted by ``1 / distance``).
* **Model**: standardised features and an L2 logistic regression (scikit-learn) trained on
  the training split's candidates (is it the gold answer?); at test time the highest-scoring
  candidate wins, ties to the earliest in the context. A context without candidates gives
  the empty answer.
* **Choices**: ``window`` and ``C`` are chosen on validation F1 (the task's own metric), never
  on test; without validation examples ``window = 10``, ``C = 1``.

It also works on questions without ``@placeholder`` (SQuAD-style), though there its
candidates, capitalised runs, are a rough guess at an answer's shape.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from plugformer.tasks import fit_once
from plugformer_qa.datasets import PLACEHOLDER, STOP_WORDS, candidates, sentence_spans

__all__ = [
    "WINDOWS",
    "EntityRanker",
    "candidate_spans",
    "features",
    "fit_prior",
    "prior_logits",
    "question_view",
]

WORD = re.compile(r"\w+")
WINDOWS = (3, 5, 10, 20)
"""Proximity windows tried (words on each side of a candidate)."""
CS = (0.01, 0.1, 1.0, 10.0)
"""Inverse regularisation strengths tried."""
DEFAULT = {"window": 10, "C": 1.0}
"""The setting used without validation examples."""


def _qualifies(word: str) -> bool:
    return word[:1].isupper() or word[:1].isdigit()


def question_view(question: str) -> dict[str, Any]:
    """What the features read of a question: its lower-cased words, content words, and the
    words either side of ``@placeholder`` (``""`` when none)."""
    at = question.find(PLACEHOLDER)
    before = WORD.findall(question[:at]) if at >= 0 else []
    after_text = question[at + len(PLACEHOLDER) :] if at >= 0 else ""
    possessive = bool(re.match(r"['\u2019]s\b", after_text))
    after = WORD.findall(after_text[2:] if possessive else after_text)
    words = {w.lower() for w in WORD.findall(question.replace(PLACEHOLDER, " "))}
    return {
        "words": words,
        "content": {w for w in words if w not in STOP_WORDS and len(w) > 1},
        "left": before[-1] if before else "",
        "right": after[0] if after else "",
        "possessive": possessive,
    }


def _occurrences(text: str, haystack: str, strict: bool) -> list[int]:
    """Offsets of ``text`` in ``haystack`` on word boundaries; ``strict``: the recipe's
    boundaries (:func:`~plugformer_qa.datasets.find_answer`), which also refuse a neighbouring
    ``-``, ``$`` or number punctuation. ``str.find``, not a regex per candidate: it is fast."""
    out, at = [], haystack.find(text)
    while at >= 0:
        before = haystack[at - 1 : at]
        after = haystack[at + len(text) : at + len(text) + 2]
        ok = not (before.isalnum() or before == "_") and not (
            after[:1].isalnum() or after[:1] == "_"
        )
        if strict and ok:
            ok = before not in ("-", ".", ",", "$", "£", "€")
            ok = ok and after[:1] != "-" and not (after[:1] in ".," and after[1:2].isdigit())
        if ok:
            out.append(at)
        at = haystack.find(text, at + 1)
    return out


def _sentence_starts(context: str) -> set[int]:
    """Offsets of the first word character of each sentence (as the recipe counts them)."""
    out = set()
    for start, end in sentence_spans(context):
        m = re.search(r"\w", context[start:end])
        if m:
            out.add(start + m.start())
    return out


@lru_cache(maxsize=4096)  # read by candidate_spans and _context_view, for each question
def _candidates(context: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """``(text, word-bounded occurrence offsets)`` of each candidate with an occurrence not at
    a sentence start, in order of that first occurrence (cached: do not change it)."""
    starts = _sentence_starts(context)
    seen: dict[str, list[int]] = {}
    for start, end, _ in candidates(context):
        text = context[start:end]
        if text in seen:
            continue
        offsets = _occurrences(text, context, strict=True)
        seen[text] = offsets if any(o not in starts for o in offsets) else []
    out = [(t, tuple(o)) for t, o in seen.items() if o]
    first = {t: next(x for x in o if x not in starts) for t, o in out}
    return tuple(sorted(out, key=lambda c: first[c[0]]))


@lru_cache(maxsize=4096)  # a context is read for each of its questions, by fit and by encode
def _context_view(
    context: str,
) -> tuple[list[str], list[tuple[str, int, list[tuple[int, int]], float]]]:
    """What the features read of a context that no question changes: its lower-cased words,
    and per candidate ``(text, answer_start, [(first word, one past last word)] per
    occurrence, share of occurrences inside a longer capitalised run)``."""
    words = [(m.group(), m.start(), m.end()) for m in WORD.finditer(context)]
    word_starts = [s for _, s, _ in words]
    sentence_starts = _sentence_starts(context)
    out = []
    for text, offsets in _candidates(context):
        spans, extends = [], 0
        for offset in offsets:
            i = bisect_left(word_starts, offset)  # first word of the occurrence
            j = bisect_right(word_starts, offset + len(text) - 1)  # one past its last word
            spans.append((i, j))
            run_before = i > 0 and offset not in sentence_starts and _qualifies(words[i - 1][0])
            run_after = j < len(words) and _qualifies(words[j][0])
            extends += (run_before and context[words[i - 1][2] : offset] == " ") or (
                run_after and context[offset + len(text) : words[j][1]] == " "
            )
        first = next(o for o in offsets if o not in sentence_starts)
        out.append((text, first, spans, extends / len(offsets)))
    return [w.lower() for w, _, _ in words], out


def candidate_spans(context: str, question: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of every word-bounded occurrence of every candidate of
    ``context`` that is not in the question: the answers this baseline chooses among, and the
    ones the ``qa`` task's ``answer_candidates = "entities"`` decoding allows."""
    return [
        (at, at + len(text))
        for text, offsets in _candidates(context)
        if not _occurrences(text, question, strict=False)
        for at in offsets
    ]


def features(
    context: str, question: str, windows: Sequence[int] = WINDOWS
) -> list[tuple[str, int, dict[int, list[float]]]]:
    """``(text, answer_start, {window: feature vector})`` of each candidate of ``context`` that
    is not in the question (see the module docstring); one vector per proximity window.

    Cached (do not change what it returns): the prior's fit, each QA cell's encoding and the
    baseline read the same questions, in a suite's worker cell after cell."""
    return _features(context, question, tuple(windows))


@lru_cache(maxsize=8192)
def _features(
    context: str, question: str, windows: tuple[int, ...]
) -> list[tuple[str, int, dict[int, list[float]]]]:
    q = question_view(question)
    lower, candidates_ = _context_view(context)
    is_content = [w in q["content"] for w in lower]
    q_left, q_right = q["left"].lower(), q["right"].lower()
    q_left_cap, q_right_cap = float(_qualifies(q["left"])), float(_qualifies(q["right"]))
    widest = max(windows)
    out = []
    for text, first, spans, extends in candidates_:
        if _occurrences(text, question, strict=False):
            continue  # the recipe never asks for text the question holds
        cand_words = [w.lower() for w in WORD.findall(text)]
        left = right = poss = 0.0
        near = dict.fromkeys(windows, 0.0)
        weighted = dict.fromkeys(windows, 0.0)
        for i, j in spans:
            left = max(left, float(bool(q_left) and i > 0 and lower[i - 1] == q_left))
            right = max(right, float(bool(q_right) and j < len(lower) and lower[j] == q_right))
            poss = max(poss, float(q["possessive"] and j < len(lower) and lower[j] == "s"))
            hits = [(i - k, k) for k in range(max(0, i - widest), i) if is_content[k]]
            hits += [(k - j + 1, k) for k in range(j, min(len(lower), j + widest)) if is_content[k]]
            for window in windows:
                mine = [(d, k) for d, k in hits if d <= window]
                near[window] = max(near[window], float(len({lower[k] for _, k in mine})))
                weighted[window] = max(weighted[window], sum(1 / d for d, _ in mine))
        n = len(cand_words)
        base = [
            float(n == 1),
            float(n == 2),
            float(n >= 3),
            float(text[:1].isdigit() or text[:1] in "$£€"),
            math.log1p(len(spans)),
            first / max(1, len(context)),
            float(first < 200),
            extends,
            float(any(w in q["words"] for w in cand_words)),
            left * q_left_cap,
            left * (1 - q_left_cap),
            right * q_right_cap,
            right * (1 - q_right_cap),
            poss,
        ]
        vectors = {w: [*base, near[w], weighted[w], math.log1p(near[w])] for w in windows}
        out.append((text, first, vectors))
    return out


class EntityRanker:
    """``Baseline``: the best-scoring context entity (see the module docstring)."""

    definition = (
        "capitalised/numeric context runs not in the question, ranked by a logistic regression "
        "(trained on train) over lexical features: placeholder neighbours, proximity to question "
        "words, frequency, position; window and C chosen on validation F1"
    )

    def __init__(
        self,
        score: Callable[[list[dict[str, Any]], Sequence[Any]], float],
        windows: Sequence[int] = WINDOWS,
        cs: Sequence[float] = CS,
    ) -> None:
        self.score, self.windows, self.cs = score, list(windows), list(cs)
        self.chosen: dict[str, Any] = {}

    def __call__(
        self, train: Sequence[Any], test: Sequence[Any], validation: Sequence[Any] = ()
    ) -> list[dict[str, Any]]:
        windows = self.windows if validation else [DEFAULT["window"]]
        train_rows = [features(ex.context, ex.question, windows) for ex in train]
        best: tuple[float, int, float, Any] | None = None
        if validation:
            rows = [features(ex.context, ex.question, windows) for ex in validation]
            for window in windows:
                x, y = _training_matrix(train, train_rows, window)
                for c in self.cs:
                    model = _fit(x, y, c)
                    value = self.score(_answers(model, rows, window), validation)
                    if best is None or value > best[0]:  # ties: the earlier setting
                        best = (value, window, c, model)
        if best is None:
            window, c = DEFAULT["window"], DEFAULT["C"]
            model = _fit(*_training_matrix(train, train_rows, window), c)
            self.chosen = {"window": window, "C": c}
        else:
            value, window, c, model = best
            self.chosen = {"window": window, "C": c, "validation_score": round(value, 4)}
        rows = [features(ex.context, ex.question, [window]) for ex in test]
        return _answers(model, rows, window)


def _training_matrix(
    train: Sequence[Any], rows: list[list[tuple[str, int, dict[int, list[float]]]]], window: int
) -> tuple[list[list[float]], list[int]]:
    """Feature vectors and labels (is it a gold answer?) of the training candidates."""
    x, y = [], []
    for ex, candidates_ in zip(train, rows, strict=True):
        gold = {a.text for a in ex.answers}
        if not any(text in gold for text, _, _ in candidates_):
            continue  # no candidate is right: nothing to rank
        for text, _, vectors in candidates_:
            x.append(vectors[window])
            y.append(int(text in gold))
    return x, y


def _fit(x: list[list[float]], y: list[int], c: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(y)) < 2:  # nothing learnable: rank by position (all weights zero)
        return None
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(x, y)


def _answers(
    model: Any, rows: list[list[tuple[str, int, dict[int, list[float]]]]], window: int
) -> list[dict[str, Any]]:
    """The best candidate of each example, as a prediction of :class:`QATask`."""
    flat = [vectors[window] for candidates_ in rows for _, _, vectors in candidates_]
    scores = [0.0] * len(flat)
    if model is not None and flat:
        scores = [float(v) for v in model.decision_function(flat)]
    out, k = [], 0
    for candidates_ in rows:
        mine = scores[k : k + len(candidates_)]
        k += len(candidates_)
        if not candidates_:
            out.append({"answer": "", "answer_start": None, "score": None})
            continue
        best = max(range(len(mine)), key=lambda i: (mine[i], -candidates_[i][1]))
        text, start, _ = candidates_[best]
        out.append({"answer": text, "answer_start": start, "score": mine[best]})
    return out


_PRIORS: dict[str, dict[str, Any] | None] = {}
"""Priors fitted in this process, by a hash of their training data and setting: a suite
fine-tunes every backbone and seed on the same examples, its workers running cell after cell."""


def fit_prior(
    train: Sequence[Any], window: int = DEFAULT["window"], c: float = DEFAULT["C"]
) -> dict[str, Any] | None:
    """The ranker's logistic regression fitted on ``train`` alone (no validation choice: the
    default window and C), as a JSON-serialisable linear function of :func:`features`:
    ``{"window", "weights", "bias"}`` with the standardisation folded in. ``None`` when the
    training candidates hold no right or no wrong answer (nothing to learn).

    The fit is kept for the process: the same examples and setting give the same prior."""
    data = [
        [ex.context, ex.question, [[a.text, a.answer_start] for a in ex.answers]] for ex in train
    ]
    return fit_once(_PRIORS, [window, c, data], lambda: _fit_prior(train, window, c))


def _fit_prior(train: Sequence[Any], window: int, c: float) -> dict[str, Any] | None:
    rows = [features(ex.context, ex.question, [window]) for ex in train]
    model = _fit(*_training_matrix(train, rows, window), c)
    if model is None:
        return None
    scaler, logreg = model[0], model[-1]
    coef = logreg.coef_[0] / scaler.scale_  # logit = coef · (x - mean) / scale + intercept
    bias = float(logreg.intercept_[0] - (coef * scaler.mean_).sum())
    return {"window": window, "weights": [float(w) for w in coef], "bias": bias}


def prior_logits(prior: dict[str, Any], context: str, question: str) -> dict[str, float]:
    """The fitted ranker's logit (:func:`fit_prior`) of each candidate text of ``context``."""
    window, weights, bias = prior["window"], prior["weights"], prior["bias"]
    return {
        text: bias + sum(w * x for w, x in zip(weights, vectors[window], strict=True))
        for text, _, vectors in features(context, question, [window])
    }
