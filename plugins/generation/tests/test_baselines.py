"""The ``lead`` baseline: how many opening words it keeps is chosen on validation only."""

from __future__ import annotations

from typing import Any

from plugformer.tasks import run_baseline, score_predictions
from plugformer_generation.baselines import Lead, lead
from plugformer_generation.task import GenerationExample, GenerationTask

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi".split()


def examples(n: int, keep: int, shift: int) -> list[GenerationExample]:
    """Prompts of two sentences whose reference completion is their first ``keep`` words."""
    out = []
    for k in range(n):
        words = WORDS[(k + shift) % 5 :] + WORDS[: (k + shift) % 5]
        prompt = " ".join(words[:9]) + ". " + " ".join(words[9:]) + "."
        out.append(GenerationExample(prompt=prompt, completion=" ".join(words[:keep])))
    return out


def rouge(task: GenerationTask, predictions: list[Any], rows: list[Any]) -> float:
    return score_predictions(task, predictions, rows)["rougeL"]


def test_lead_cuts_sentences_and_words() -> None:
    assert lead("One two. Three four.", "sentence", None) == {"completion": "One two."}
    assert lead("One two. Three four.", "prompt", 3) == {"completion": "One two. Three"}
    assert lead(None, "prompt", 3) == {}


def test_words_are_chosen_on_validation_not_test() -> None:
    task = GenerationTask({})
    validation, test = examples(10, keep=5, shift=0), examples(10, keep=12, shift=1)
    predictions, info = run_baseline(Lead(lambda p, e: rouge(task, p, e)), [], test, validation)
    assert info["chosen"] == {"unit": "sentence", "words": 5, "validation_score": 1.0}
    # Twelve words of the prompt would have been perfect on test: the choice ignored it.
    best_on_test = [lead(ex.prompt, "prompt", 12) for ex in test]
    assert rouge(task, predictions, test) < rouge(task, best_on_test, test) == 1.0


def test_untuned_lead_is_the_first_sentence() -> None:
    task = GenerationTask({})
    test = examples(4, keep=9, shift=0)
    predictions, info = run_baseline(Lead(lambda p, e: rouge(task, p, e)), [], test, [])
    assert info["tuned_on"] is None and info["chosen"] == {"unit": "sentence", "words": None}
    assert predictions[0]["completion"] == test[0].prompt.split(". ")[0] + "."
