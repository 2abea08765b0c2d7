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


def capitals(n: int, seed: int, keep: int = 6) -> list[GenerationExample]:
    """Prompts of twenty words, ``keep`` of them capitalised at random places; the reference keeps
    the capitalised ones (lead-N cannot find them, a compressor can learn them)."""
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(20)]
        for i in rng.sample(range(20), keep):
            words[i] = words[i].capitalize()
        kept = [w for w in words if w[0].isupper()]
        out.append(GenerationExample(prompt=" ".join(words), completion=" ".join(kept)))
    return out


def test_the_compressor_learns_which_words_a_headline_keeps() -> None:
    from plugformer_generation.compressor import Compressor

    task = GenerationTask({})
    train, validation, test = capitals(200, 0), capitals(30, 1), capitals(30, 2)
    main = lambda p, e: rouge(task, p, e)  # noqa: E731
    predictions, info = run_baseline(Compressor(main), train, test, validation)
    assert info["chosen"]["keep"] == 6 and info["chosen"]["validation_score"] > 0.95
    assert rouge(task, predictions, test) > 0.95
    leads, _ = run_baseline(Lead(main), train, test, validation)
    assert rouge(task, leads, test) < 0.5


def test_the_compressors_choices_use_validation_only() -> None:
    from plugformer_generation.compressor import Compressor

    task = GenerationTask({})
    main = lambda p, e: rouge(task, p, e)  # noqa: E731
    train, test = capitals(200, 0), capitals(30, 2, keep=12)
    _, info = run_baseline(Compressor(main), train, test, capitals(30, 1))
    assert info["chosen"]["keep"] == 6  # validation keeps six words; test would want 12
    _, untuned = run_baseline(Compressor(main), train, test, [])
    assert untuned["tuned_on"] is None and untuned["chosen"]["keep"] == 10
