"""Reference systems reported beside fine-tuned models: majority class, TF-IDF + logistic regression.

Both take ``(train_examples, test_examples, labels)`` and return predictions in the format of
:meth:`SentimentTask.predict` (``{"label": name, "probs": {name: p}}``), so the task's own
metrics score them. :class:`SentimentTask` binds ``labels`` (its label order).

The TF-IDF + logistic regression baseline is written with torch rather than scikit-learn,
to keep the plugin's dependencies to those of the core. It follows scikit-learn's
``TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)`` followed by
``LogisticRegression(C=1.0)`` (multinomial, L2 penalty, L-BFGS, 100 iterations):

* terms: lower-cased words of two or more word characters (``\\b\\w\\w+\\b``, scikit-learn's
  default pattern) and pairs of adjacent words, vocabulary from the training texts;
* weights: ``(1 + ln tf) * idf`` with the smoothed ``idf = ln((1 + n) / (1 + df)) + 1``, each
  row scaled to unit L2 norm;
* classifier: minimise ``mean cross-entropy + ||W||² / (2 C n)`` (the intercept is not
  penalised) with full-batch L-BFGS and a strong-Wolfe line search.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["TfidfVectorizer", "majority", "prediction", "tfidf_logreg"]

WORD = re.compile(r"\b\w\w+\b")


def prediction(probs: Sequence[float], labels: Sequence[str]) -> dict[str, Any]:
    """``{"label": most probable name, "probs": {name: p}}`` (ties: the first in ``labels``)."""
    best = max(range(len(labels)), key=lambda k: probs[k])
    return {
        "label": labels[best],
        "probs": {n: float(p) for n, p in zip(labels, probs, strict=True)},
    }


def majority(
    train: Sequence[Any], test: Sequence[Any], labels: Sequence[str]
) -> list[dict[str, Any]]:
    """Always the most frequent training label (ties: the first in ``labels``); probabilities are
    the training label frequencies."""
    counts = Counter(ex.label for ex in train)
    total = sum(counts.values())
    probs = [counts.get(name, 0) / total for name in labels]
    return [prediction(probs, labels) for _ in test]


def terms(text: str) -> list[str]:
    """Word unigrams and bigrams of ``text`` (lower-cased)."""
    words = WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in pairwise(words)]


class TfidfVectorizer:
    """Sparse TF-IDF rows (sublinear term frequency, smoothed idf, L2-normalised)."""

    def fit(self, texts: Sequence[str]) -> TfidfVectorizer:
        df = Counter(t for text in texts for t in set(terms(text)))
        self.vocab = {t: i for i, t in enumerate(sorted(df))}
        n = len(texts)
        self.idf = torch.tensor([math.log((1 + n) / (1 + df[t])) + 1 for t in sorted(df)])  # (V,)
        return self

    def transform(self, texts: Sequence[str]) -> torch.Tensor:
        """A sparse (N, V) matrix; terms outside the training vocabulary are ignored."""
        rows, cols, vals = [], [], []
        for r, text in enumerate(texts):
            tf = Counter(self.vocab[t] for t in terms(text) if t in self.vocab)
            weights = {c: (1 + math.log(k)) * float(self.idf[c]) for c, k in tf.items()}
            norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
            for c, w in sorted(weights.items()):
                rows.append(r)
                cols.append(c)
                vals.append(w / norm)
        index = torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1)  # (2, nnz)
        size = (len(texts), len(self.vocab))
        x = torch.sparse_coo_tensor(index, torch.tensor(vals), size, check_invariants=True)
        return x.coalesce()


def fit_logreg(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, c: float = 1.0, max_iter: int = 100
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression on sparse ``x`` (N, V): weights (V, K) and intercept (K,)."""
    n, v = x.shape
    weight = torch.zeros(v, num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        logits = torch.sparse.mm(x, weight) + bias  # (N, K)
        loss = F.cross_entropy(logits, y) + weight.pow(2).sum() / (2 * c * n)
        loss.backward()
        return loss

    opt.step(closure)
    return weight.detach(), bias.detach()


def tfidf_logreg(
    train: Sequence[Any], test: Sequence[Any], labels: Sequence[str]
) -> list[dict[str, Any]]:
    """TF-IDF features + logistic regression trained on ``train`` (see the module docstring)."""
    index = {name: k for k, name in enumerate(labels)}
    vectorizer = TfidfVectorizer().fit([ex.text for ex in train])
    y = torch.tensor([index[ex.label] for ex in train])  # (N,)
    weight, bias = fit_logreg(vectorizer.transform([ex.text for ex in train]), y, len(labels))
    logits = (
        torch.sparse.mm(vectorizer.transform([ex.text for ex in test]), weight) + bias
    )  # (M, K)
    probs = logits.softmax(dim=-1)
    return [prediction(p, labels) for p in probs.tolist()]
