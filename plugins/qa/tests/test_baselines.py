"""The QA baseline ``entity-ranker``: its choices use validation only, it answers with a
candidate entity at the recipe's offset, and it beats "the first entity" on structured cloze
data written here."""

from __future__ import annotations

import random
from typing import Any

from plugformer.tasks import run_baseline, score_predictions
from plugformer_qa.baselines import EntityRanker, features, question_view
from plugformer_qa.task import QAExample, QATask

NAMES = ["Alice Moore", "Boris Lang", "Carla Diaz", "Dmitri Volkov", "Emma Stone", "Farid Khan"]
PLACES = ["Berlin", "Lagos", "Quito", "Osaka", "Denver", "Tunis", "Perth", "Malmo"]
VERBS = ["met", "visited", "praised", "sued", "thanked", "called"]


def cloze(n: int, seed: int) -> list[QAExample]:
    """Contexts of three sentences "Then X <verb> Y in Z."; the question repeats one sentence
    with X or Z blanked, so the answer is the entity beside the question's words."""
    rng, out = random.Random(seed), []
    for k in range(n):
        facts = [
            (rng.choice(NAMES), verb, rng.choice(NAMES), rng.choice(PLACES))
            for verb in rng.sample(VERBS, 3)
        ]
        context = " ".join(f"Then {a} {v} {b} in {p}." for a, v, b, p in facts)
        a, v, b, p = facts[rng.randrange(3)]
        if rng.random() < 0.5 and a != b and a not in (b, p):
            question, answer = f"@placeholder {v} {b} in {p}", a
        else:
            question, answer = f"{a} {v} {b} in @placeholder", p
        start = context.index(f"{a} {v} {b} in {p}")
        if answer == p:
            start += len(f"{a} {v} {b} in ")
        out.append(
            QAExample(
                id=str(k),
                context=context,
                question=question,
                answers=[{"text": answer, "answer_start": start}],
            )
        )
    return out


def f1(task: QATask, predictions: list[Any], examples: list[QAExample]) -> float:
    return score_predictions(task, predictions, examples)["f1"]


def test_question_view_and_candidates() -> None:
    view = question_view("Kim @placeholder's new film Opens in Rome")
    assert (view["left"], view["right"], view["possessive"]) == ("Kim", "new", True)
    assert "rome" in view["content"] and "in" not in view["content"]
    context = "Officials said Ann Lee met Tom in Paris. Paris was cold, said Ann Lee."
    texts = {text: start for text, start, _ in features(context, "@placeholder met Tom", [5])}
    # Sentence-start-only words are no candidates; "Tom" is in the question; sub-runs are.
    assert "Officials" not in texts and "Tom" not in texts and "Paris" in texts
    assert texts["Ann Lee"] == context.index("Ann Lee") and "Lee" in texts
    assert texts["Paris"] == context.index("Paris")  # its first occurrence not at a start


def test_choices_are_made_on_validation_scores_only() -> None:
    """The score function sees validation examples only, and the best-scored setting wins."""
    train, validation, test = cloze(40, 1), cloze(12, 2), cloze(12, 3)
    seen: list[list[Any]] = []
    values = iter([10.0, 30.0, 20.0, 30.0, 5.0, 0.0])  # the second setting is the first best

    def score(predictions: list[Any], examples: Any) -> float:
        seen.append(list(examples))
        return next(values)

    ranker = EntityRanker(score, windows=[2, 8], cs=[0.1, 1.0, 10.0])
    predictions, info = run_baseline(ranker, train, test, validation)
    assert all(examples == validation for examples in seen) and len(seen) == 6
    assert info["chosen"] == {"window": 2, "C": 1.0, "validation_score": 30.0}
    assert info["tuned_on"] == "validation" and len(predictions) == len(test)


def test_beats_the_first_entity_and_needs_no_validation() -> None:
    task = QATask()
    train, test = cloze(80, 1), cloze(40, 4)
    ranker = EntityRanker(lambda p, e: f1(task, p, e))
    predictions, info = run_baseline(ranker, train, test, cloze(20, 5))
    assert info["chosen"]["window"] in (3, 5, 10, 20)
    for pred, ex in zip(predictions, test, strict=True):
        assert ex.context[pred["answer_start"] :].startswith(pred["answer"])
    first = [{"answer": features(ex.context, ex.question, [5])[0][0]} for ex in test]
    assert f1(task, predictions, test) >= 75 > f1(task, first, test) + 30  # names repeat
    untuned, info = run_baseline(EntityRanker(lambda p, e: 0.0), train, test, [])
    assert info["chosen"] == {"window": 10, "C": 1.0} and info["tuned_on"] is None
    assert f1(task, untuned, test) >= 75


def test_the_prior_is_fitted_once_per_training_set(monkeypatch: Any) -> None:
    from plugformer_qa import baselines

    fits = []
    real = baselines._fit_prior
    monkeypatch.setattr(baselines, "_fit_prior", lambda *a: fits.append(1) or real(*a))
    monkeypatch.setattr(baselines, "_PRIORS", {})
    first = baselines.fit_prior(cloze(80, 1))
    assert first is not None and set(first) == {"window", "weights", "bias"}
    first["weights"][0] = 1e9  # a caller's change does not reach the kept fit
    again = baselines.fit_prior(cloze(80, 1))  # equal examples: the kept fit
    assert len(fits) == 1 and again["weights"][0] != 1e9
    assert again == real(cloze(80, 1), again["window"], baselines.DEFAULT["C"])
    baselines.fit_prior(cloze(60, 2))  # other examples: a fit of their own
    baselines.fit_prior(cloze(80, 1), c=0.1)  # another setting: likewise
    assert len(fits) == 3
