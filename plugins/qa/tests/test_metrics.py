"""The QA task's metrics against an independent transcription of the official SQuAD v1.1
evaluation script (``evaluate-v1.1.py``): normalisation, exact match and F1 on answers that
trip up other implementations."""

from __future__ import annotations

import re
import string
from collections import Counter

import pytest

from plugformer_qa.task import QATask


# An independent transcription of the official SQuAD v1.1 evaluation script (evaluate-v1.1.py).
def official_normalize(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def official_f1(prediction: str, truth: str) -> float:
    pred, gold = official_normalize(prediction).split(), official_normalize(truth).split()
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def official_scores(pairs: list[tuple[str, list[str]]]) -> dict[str, float]:
    em = sum(
        max(float(official_normalize(p) == official_normalize(t)) for t in golds)
        for p, golds in pairs
    )
    f1 = sum(max(official_f1(p, t) for t in golds) for p, golds in pairs)
    return {"exact_match": 100 * em / len(pairs), "f1": 100 * f1 / len(pairs)}


TRICKY = [
    ("The Denver Broncos", ["Denver Broncos"]),  # a leading article
    ("an apple a day", ["apple day"]),  # articles inside
    ("theatre", ["the atre"]),  # "the" only as a whole word
    ("Broncos!", ["broncos"]),  # punctuation and case
    ("U.S. Army", ["US army"]),  # punctuation inside a word
    ("naïve café", ["Naïve Café"]),  # non-ASCII letters
    ("Zürich – city", ["Zürich city"]),  # an en dash is not string.punctuation
    ("“quoted”", ['"quoted"']),  # curly quotes are not string.punctuation either
    ("Paris", ["London", "Paris, France", "paris"]),  # several gold answers: the best counts
    ("in 1976 and 1977", ["1976"]),  # partial overlap
    ("", ["Denver Broncos"]),  # empty prediction
    ("a b c", ["b c d", "x"]),  # several answers, partial F1
    ("  spaced\tout  answer ", ["spaced out answer"]),  # whitespace
]


@pytest.mark.parametrize("batch_size", [1, 5])
def test_metrics_agree_with_the_official_v1_1_script(batch_size: int) -> None:
    task = QATask()
    examples, preds = [], []
    for pred, golds in TRICKY:
        context = " | ".join(golds)
        answers = [{"text": g, "answer_start": context.index(g)} for g in golds]
        examples.append(
            task.parse_example(
                {"id": "same-id", "question": "q", "context": context, "answers": answers}
            )
        )
        preds.append({"answer": pred})
    metrics = task.metrics()
    for i in range(0, len(examples), batch_size):
        task.update_metrics(metrics, preds[i : i + batch_size], examples[i : i + batch_size])
    ours, official = task.compute_metrics(metrics), official_scores(TRICKY)
    assert ours == pytest.approx(official, abs=1e-4)
    assert 0 < official["f1"] < 100 and 0 < official["exact_match"] < 100


@pytest.mark.parametrize(("pred", "gold"), [("the", "The"), ("a", "The"), ("!", "the.")])
def test_f1_is_zero_when_both_answers_normalise_to_nothing(pred: str, gold: str) -> None:
    """Issue 20 (8): the official v1.1 script scores F1 0 when prediction and gold both
    normalise to no tokens ("the" against "the"); torchmetrics scored 100 (its v2 rule)."""
    task = QATask()
    example = task.parse_example(
        {"question": "q", "context": gold, "answers": [{"text": gold, "answer_start": 0}]}
    )
    metrics = task.metrics()
    task.update_metrics(metrics, [{"answer": pred}], [example])
    assert task.compute_metrics(metrics) == official_scores([(pred, [gold])])
    assert task.compute_metrics(metrics) == {"exact_match": 100.0, "f1": 0.0}
