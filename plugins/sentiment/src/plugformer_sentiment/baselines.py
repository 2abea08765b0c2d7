"""Reference systems reported beside fine-tuned models: majority class, TF-IDF + logistic regression.

Both are callables ``baseline(train, test[, validation=...])`` returning predictions in the
format of :meth:`SentimentTask.predict` (``{"label": name, "probs": {name: p}}``), so the
task's own metrics score them; :class:`SentimentTask` gives them its label order.

* :class:`Majority`: always the most frequent training label.
* :class:`TfidfLogreg`: scikit-learn's ``TfidfVectorizer`` (sublinear tf, smoothed idf, L2
  rows) and ``LogisticRegression`` (L2, L-BFGS), trained on the training split. Two settings
  are chosen on **validation accuracy** (never on test), over a grid, ties going to the
  earlier (simpler, more regularised) setting:

  - ``features``: ``"word"`` (word 1-2-grams, scikit-learn's default token pattern) or
    ``"word+char"`` (those plus character 2-5-grams within word boundaries, ``char_wb``);
  - ``C``: the inverse regularisation strength, 0.25 to 32 by powers of two.

  Without validation examples it uses ``features="word+char"``, ``C=4``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["Majority", "TfidfLogreg", "prediction"]


def prediction(probs: Sequence[float], labels: Sequence[str]) -> dict[str, Any]:
    """``{"label": most probable name, "probs": {name: p}}`` (ties: the first in ``labels``)."""
    best = max(range(len(labels)), key=lambda k: probs[k])
    return {
        "label": labels[best],
        "probs": {n: float(p) for n, p in zip(labels, probs, strict=True)},
    }


class Majority:
    """Always the most frequent training label (ties: the first in ``labels``); probabilities
    are the training label frequencies."""

    definition = "the most frequent training label"

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)

    def __call__(self, train: Sequence[Any], test: Sequence[Any]) -> list[dict[str, Any]]:
        counts = Counter(ex.label for ex in train)
        total = sum(counts.values())
        probs = [counts.get(name, 0) / total for name in self.labels]
        return [prediction(probs, self.labels) for _ in test]


FEATURES = ("word", "word+char")
"""Feature sets tried, simplest first."""
CS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
"""Inverse regularisation strengths tried, strongest regularisation first."""
DEFAULT = {"features": "word+char", "C": 4.0}
"""The setting used when there are no validation examples."""


def vectorizer(features: str) -> Any:
    """An unfitted TF-IDF vectorizer of one feature set (see the module docstring)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    if features == "word":
        return words
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    return make_union(words, chars)


class TfidfLogreg:
    """TF-IDF + logistic regression; features and ``C`` chosen on validation accuracy."""

    definition = (
        "TF-IDF (word 1-2-grams, or with character 2-5-grams; sublinear tf) + logistic "
        "regression trained on train; features and C chosen on validation accuracy"
    )

    def __init__(
        self,
        labels: Sequence[str],
        features: Sequence[str] = FEATURES,
        cs: Sequence[float] = CS,
    ) -> None:
        self.labels, self.features, self.cs = list(labels), list(features), list(cs)
        self.chosen: dict[str, Any] = {}

    def __call__(
        self, train: Sequence[Any], test: Sequence[Any], validation: Sequence[Any] = ()
    ) -> list[dict[str, Any]]:
        from sklearn.linear_model import LogisticRegression

        texts, gold = [ex.text for ex in train], [ex.label for ex in train]
        if len(set(gold)) < 2:  # nothing to discriminate: the majority answer
            self.chosen = {}
            return Majority(self.labels)(train, test)
        best: tuple[float, str, float, Any, Any] | None = None
        if validation:
            for features in self.features:
                vec = vectorizer(features).fit(texts)
                x, xv = vec.transform(texts), vec.transform([ex.text for ex in validation])
                for c in self.cs:
                    model = LogisticRegression(C=c, max_iter=2000).fit(x, gold)
                    hits = model.predict(xv) == [ex.label for ex in validation]
                    accuracy = float(hits.mean())
                    if best is None or accuracy > best[0]:  # ties: the earlier setting
                        best = (accuracy, features, c, vec, model)
        if best is None:
            vec = vectorizer(DEFAULT["features"]).fit(texts)
            model = LogisticRegression(C=DEFAULT["C"], max_iter=2000).fit(
                vec.transform(texts), gold
            )
            self.chosen = dict(DEFAULT)
        else:
            accuracy, features, c, vec, model = best
            self.chosen = {"features": features, "C": c, "validation_accuracy": accuracy}
        probs = model.predict_proba(vec.transform([ex.text for ex in test]))  # (M, classes)
        column = {name: k for k, name in enumerate(model.classes_)}
        return [
            prediction([p[column[n]] if n in column else 0.0 for n in self.labels], self.labels)
            for p in probs
        ]
