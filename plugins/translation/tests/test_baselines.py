"""The translation baselines: ``ibm1-words`` learns a word dictionary with NULL, tunes on
validation only, and beats ``copy-source`` on a small parallel corpus written here."""

from __future__ import annotations

import random
from typing import Any

from plugformer.tasks import run_baseline, score_predictions
from plugformer_translation.baselines import WordTranslation, copy_source, ibm1_dictionaries
from plugformer_translation.task import TranslationExample, TranslationTask

LEXICON = {
    "dog": "perro", "cat": "gato", "sees": "ve", "eats": "come", "bread": "pan",
    "water": "agua", "man": "hombre", "woman": "mujer", "big": "grande", "red": "rojo",
}  # fmt: skip


def corpus(n: int, seed: int) -> list[TranslationExample]:
    """English "[do] the|a X Y Z" → Spanish "el|un X' Y' Z'" ("do", in every other
    pair, has no translation: NULL explains it best)."""
    rng, out = random.Random(seed), []
    for k in range(n):
        words = rng.sample(sorted(LEXICON), 3)
        article, articulo = ("the", "el") if k % 3 else ("a", "un")
        source = ("do " if k % 2 else "") + f"{article} " + " ".join(words)
        target = f"{articulo} " + " ".join(LEXICON[w] for w in words)
        source, target = source[:1].upper() + source[1:], target[:1].upper() + target[1:]
        out.append(TranslationExample(id=str(k), source=source, target=target))
    return out


def bleu(task: TranslationTask, predictions: list[Any], examples: list[Any]) -> float:
    return score_predictions(task, predictions, examples)["bleu"]


def test_ibm1_learns_the_lexicon_and_null() -> None:
    pairs = [(ex.source.lower().split(), ex.target.lower().split()) for ex in corpus(200, 1)]
    best, best_word = ibm1_dictionaries(pairs, [10])[10]
    assert {w: best[w] for w in LEXICON} == LEXICON
    assert (best["the"], best["a"], best["do"]) == (
        "el",
        "un",
        "",
    )  # NULL: dropped when translating
    assert best_word["do"] != ""


def test_beats_copy_source_and_drops_null_words() -> None:
    task = TranslationTask({})
    train, validation, test = corpus(200, 1), corpus(20, 2), corpus(20, 3)
    predictions, info = run_baseline(
        WordTranslation(lambda p, e: bleu(task, p, e)), train, test, validation
    )
    assert info["chosen"]["drop_null"] is True and info["tuned_on"] == "validation"
    assert [p["translation"] for p in predictions] == [ex.target for ex in test]
    copied, _ = run_baseline(copy_source, train, test, validation)
    assert bleu(task, predictions, test) > 90 > 10 > bleu(task, copied, test)


def test_choices_are_made_on_validation_scores_only() -> None:
    train, validation, test = corpus(50, 1), corpus(10, 2), corpus(10, 3)
    seen: list[Any] = []
    # Settings in order: iterations × drop NULL (yes, no) × source case (yes, no); the
    # fourth is the first best.
    values = iter([1.0, 2.0, 3.0, 9.0, 4.0, 9.0] + [0.0] * 6)

    def score(predictions: list[Any], examples: Any) -> float:
        seen.append(list(examples))
        return next(values)

    baseline = WordTranslation(score, iterations=[2, 5, 10])
    run_baseline(baseline, train, test, validation)
    assert len(seen) == 12 and all(examples == validation for examples in seen)
    assert baseline.chosen == {
        "iterations": 2, "drop_null": False, "source_case": False, "validation_score": 9.0
    }  # fmt: skip
    run_baseline(baseline, train, test, [])
    assert baseline.chosen == {"iterations": 10, "drop_null": True, "source_case": True}


def test_the_draft_lexicon_is_fitted_once_per_training_set(monkeypatch: Any) -> None:
    from plugformer_translation import baselines

    fits = []
    real = baselines.ibm1_dictionaries
    monkeypatch.setattr(
        baselines, "ibm1_dictionaries", lambda *a, **k: fits.append(1) or real(*a, **k)
    )
    monkeypatch.setattr(baselines, "_LEXICONS", {})
    train = corpus(60, 11)
    first = baselines.fit_lexicon(train)
    assert first["dog"] == "perro" and first["do"] == ""  # NULL-aligned
    first["dog"] = "changed by a caller"
    again = baselines.fit_lexicon(corpus(60, 11))  # equal pairs: the kept fit, unchanged
    assert len(fits) == 1 and again["dog"] == "perro"
    other = baselines.fit_lexicon(corpus(40, 12))  # other pairs: a fit of their own
    assert len(fits) == 2 and other["cat"] == "gato"
