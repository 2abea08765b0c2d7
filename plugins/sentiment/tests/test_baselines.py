"""The sentiment baselines: TF-IDF + logistic regression tunes on validation only, and beats
the majority class on data whose label a word decides."""

from __future__ import annotations

import random
from typing import Any

from plugformer.tasks import run_baseline, score_predictions
from plugformer_sentiment.baselines import Majority, TfidfLogreg
from plugformer_sentiment.task import SentimentExample, SentimentTask

POSITIVE, NEGATIVE = ["good", "great", "fine"], ["bad", "awful", "poor"]
NOUNS = ["film", "plot", "cast", "score", "script", "ending"]


def rows(n: int, seed: int, misspell: bool = False) -> list[SentimentExample]:
    """``n`` sentences whose label one adjective decides; ``misspell`` doubles the adjective's
    vowels ("good" → "goood"), which word features never saw but character n-grams half know."""
    rng, out = random.Random(seed), []
    for i in range(n):
        label = "positive" if i % 2 else "negative"
        adj = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
        if misspell:
            adj = "".join(ch * 2 if ch in "aeiou" else ch for ch in adj)
        text = f"the {rng.choice(NOUNS)} was {adj} and the {rng.choice(NOUNS)} too"
        out.append(SentimentExample(text=text, label=label))
    return out


def accuracy(task: SentimentTask, predictions: list[Any], examples: list[Any]) -> float:
    return score_predictions(task, predictions, examples)["accuracy"]


def test_features_are_chosen_on_validation_not_test() -> None:
    """On misspelled words only character n-grams help, so the feature set that wins on
    validation is decided by whether validation (not test) is misspelled."""
    task = SentimentTask({}, None)
    train, clean, misspelled = rows(60, 1), rows(40, 2), rows(40, 3, misspell=True)
    task.prepare(train)
    baseline = TfidfLogreg(task.labels, cs=[4.0])
    predictions, info = run_baseline(baseline, train, clean, misspelled)
    assert info["chosen"]["features"] == "word+char" and info["tuned_on"] == "validation"
    assert info["chosen"]["validation_accuracy"] > 0.75
    assert accuracy(task, predictions, clean) == 1.0
    # Swapped: clean validation ties both feature sets, and ties go to the simpler one, although
    # word+char would have scored better on the misspelled test split.
    baseline = TfidfLogreg(task.labels, cs=[4.0])
    predictions, info = run_baseline(baseline, train, misspelled, clean)
    assert info["chosen"]["features"] == "word"
    assert accuracy(task, predictions, misspelled) < info["chosen"]["validation_accuracy"]


def test_regularisation_is_chosen_on_validation() -> None:
    """A heavily regularised model predicts the majority label; with only the minority
    label in validation, a larger C must win there."""
    task = SentimentTask({}, None)
    train = rows(60, 1) + [e for e in rows(60, 4) if e.label == "negative"]
    task.prepare(train)
    validation = [e for e in rows(20, 5) if e.label == "positive"]
    baseline = TfidfLogreg(task.labels, features=["word"], cs=[0.001, 10.0])
    run_baseline(baseline, train, rows(10, 6), validation)
    assert baseline.chosen["C"] == 10.0
    run_baseline(baseline, train, rows(10, 6), [e for e in rows(20, 5) if e.label == "negative"])
    assert baseline.chosen["C"] == 0.001  # both are perfect on negatives: the first wins


def test_tfidf_beats_majority_and_works_without_validation() -> None:
    task = SentimentTask({}, None)
    train, test = rows(60, 1), rows(40, 2)
    task.prepare(train)
    tfidf, info = run_baseline(TfidfLogreg(task.labels), train, test, [])
    assert info["tuned_on"] is None and info["chosen"] == {"features": "word+char", "C": 4.0}
    majority, info = run_baseline(Majority(task.labels), train, test, train)
    assert info == {"definition": Majority.definition, "chosen": {}, "tuned_on": None}
    assert accuracy(task, tfidf, test) == 1.0 and accuracy(task, majority, test) == 0.5
