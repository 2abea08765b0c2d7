"""Tests of the QA head's copy term and of cloze candidates: entity decoding, the
candidate loss (a softmax over each window's candidate entities) and the entity ranker's
prior, with the conformance kit run again under that prior. Fixtures: conftest.py.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import torch

from plugformer import PlugformerError
from plugformer.testing import TaskConformance
from plugformer_qa.task import QATask, SpanHead
from plugins.qa.tests.conftest import TEST, eval_batch, logits_for, micro_gpt, parse

NAMES = ["Anna Berg", "Carl Dunn", "Eve Ross", "Tom Hale", "Rosa Lind", "Paul Kent", "Ivan Sol"]


def make_cloze_examples(n: int, seed: int) -> list[dict[str, Any]]:
    """Cloze passages: the question is a sentence of the passage with one name blanked out."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b, c = rng.sample(NAMES, 3)
        context = f"Yesterday {a} met {b} in the park. Later {c} saw {a} near the river."
        rows.append(
            {
                "id": f"c{seed}-{i}",
                "question": f"@placeholder met {b} in the park",
                "context": context,
                "answers": [{"text": a, "answer_start": context.index(a)}],
            }
        )
    return rows


class TestQAConformanceWithCandidatePrior(TaskConformance):
    """The kit again with the entity ranker's prior: fitted in ``prepare``, kept in the
    checkpoint (the round trip must predict the same), trained with the candidate loss."""

    task_class = QATask
    train_examples = make_cloze_examples(24, 5)
    eval_examples = make_cloze_examples(6, 6)
    options = {"answer_candidates": "entities", "candidate_prior": True}


def test_the_start_logits_add_the_language_models_next_token_log_probs_by_a_learned_weight(
    tokenizer: Any,
) -> None:
    """On a causal LM the start logits are the linear score plus ``copy_weight`` times the
    model's log-probability, at the window's query <sep>, of each window token as the next
    one; an untrained head's weight is zero (the linear head alone), and the pointer is zero."""
    task = QATask({"max_length": 24}, tokenizer)
    backbone = micro_gpt(tokenizer).eval()
    head = task.build_head(backbone).eval()
    assert float(head.copy_weight) == 0.0
    batch = eval_batch(task, parse(task, TEST[:2]))
    assert (
        batch["input_ids"][torch.arange(len(batch["query_index"])), batch["query_index"]]
        == tokenizer.sep_id
    ).all()
    with torch.no_grad():
        hidden = backbone(batch["input_ids"], batch["attention_mask"])  # (B, T, C)
        linear = head.proj(hidden)[..., 0]  # (B, T)
        for weight in (0.0, 0.5):
            head.copy_weight.fill_(weight)
            out = task.forward(backbone, head, batch)
            for row, q in enumerate(batch["query_index"].tolist()):
                logp = torch.log_softmax(backbone.lm_logits(hidden[row, q]), dim=-1)  # (V,)
                allowed = batch["context_mask"][row]
                expected = linear[row] + weight * logp[batch["input_ids"][row]]
                torch.testing.assert_close(out["start_logits"][row][allowed], expected[allowed])
                torch.testing.assert_close(
                    out["end_logits"][row][allowed], head.proj(hidden)[row, :, 1][allowed]
                )


def test_entity_decoding_returns_the_best_scoring_candidate_not_the_best_span(
    tokenizer: Any,
) -> None:
    """``answer_candidates = "entities"``: only the context's candidate entities (capitalised
    runs not in the question) can be answers; the model's logits still choose among them."""
    row = {
        "question": "@placeholder met Anna in the city",
        "context": "the old mayor Bob Lee met Anna and later Carl Dunn in the city",
    }
    any_task = QATask({}, tokenizer)
    entity_task = QATask({"answer_candidates": "entities"}, tokenizer)
    example = any_task.parse_example(row)
    batch = eval_batch(any_task, [example])
    offsets, c = batch["offsets"][0], int(batch["context_offset"][0])

    def token(char: int) -> int:
        return c + next(t for t, (s, e) in enumerate(offsets) if s <= char < e)

    ctx = row["context"]
    old_mayor = (token(ctx.index("old")), token(ctx.index("mayor")), 9.0)  # not an entity
    anna = (token(ctx.index("Anna")), token(ctx.index("Anna")), 8.0)  # in the question
    start, end = logits_for(batch, {0: old_mayor})
    start[0, anna[0]] = end[0, anna[1]] = 8.0
    carl, dunn = token(ctx.index("Carl")), token(ctx.index("Dunn") + 3)  # last tokens
    start[0, carl], end[0, dunn] = 2.0, 1.0  # Carl Dunn scores 3; Bob Lee scores 0
    assert any_task.decode(start, end, batch)[0]["answer"] == "old mayor"
    (pred,) = entity_task.decode(start, end, batch)
    assert pred["answer"] == "Carl Dunn" and pred["answer_start"] == ctx.index("Carl Dunn")
    assert pred["score"] == pytest.approx(3.0)

    # Through the model, every prediction is one of its context's candidates.
    from plugformer_qa.baselines import candidate_spans

    entity_task.check_backbone(gpt := micro_gpt(tokenizer))
    head = entity_task.build_head(gpt).eval()
    examples = parse(entity_task, [row, *TEST[:3]])
    preds = entity_task.predict(gpt.eval(), head, eval_batch(entity_task, examples))
    for ex, p in zip(examples, preds, strict=True):
        allowed = {ex.context[s:e] for s, e in candidate_spans(ex.context, ex.question)}
        assert p["answer"] in allowed or (not allowed and p["answer"] is not None)


def test_entity_training_is_a_softmax_over_the_windows_candidates(tokenizer: Any) -> None:
    """With ``answer_candidates = "entities"`` the loss is the choice decoding makes: each
    window's candidate occurrences and its ``<sep>``, scored ``start[i] + end[j]``; every
    occurrence of the answer's text is right, and ``<sep>`` is right only in a window without
    one. (On news-cloze validation, 0.6-minute cells: F1 27.3 / 28.4 against 23.6 / 24.4 with
    the start/end token loss, seeds 0 / 1.)"""
    row = {
        "question": "@placeholder met Anna in the city",
        "context": "Carl Dunn met Bob Lee. Later, Bob Lee met Anna and Carl Dunn again.",
        "answers": [{"text": "Bob Lee", "answer_start": 14}],
    }
    task = QATask({"answer_candidates": "entities", "max_length": 24, "doc_stride": 4}, tokenizer)
    example = task.parse_example(row)
    features = task.encode(example, train=True)
    assert len(features) > 2, "the context must span several windows"
    ctx = row["context"]
    seen_gold = set()
    for f in features:
        c, offsets = f["context_offset"], f["offsets"]
        sep, *cands = f["candidates"]
        assert sep[:2] == (c - 1, c - 1)
        texts = {(ctx[offsets[i - c][0] : offsets[j - c][1]], g) for i, j, g, _ in cands}
        assert all(g == (t == "Bob Lee") for t, g in texts)  # gold: the answer's text
        assert sep[2] == (not any(g for _, g in texts))  # <sep> right only without it
        assert {t for t, _ in texts} <= {"Carl Dunn", "Bob Lee", "Carl", "Dunn", "Bob", "Lee"}
        seen_gold |= {offsets[i - c][0] for i, _, g, _ in cands if g}
        assert all(p == 0.0 for *_, p in f["candidates"])  # no candidate_prior: no prior
    assert seen_gold == {14, ctx.index("Bob Lee", 20)}  # both occurrences count

    batch = task.collate(features)
    B, T = batch["input_ids"].shape
    start, end = torch.randn(B, T), torch.randn(B, T)
    spans, gold, valid = batch["candidate_spans"], batch["candidate_gold"], batch["candidate_valid"]
    expected = []
    for b in range(B):
        scores = [
            start[b, i] + end[b, j]
            for (i, j), ok in zip(spans[b].tolist(), valid[b], strict=True)
            if ok
        ]
        right = [s for s, g in zip(scores, gold[b][valid[b]], strict=True) if g]
        expected.append(
            torch.logsumexp(torch.stack(scores), 0) - torch.logsumexp(torch.stack(right), 0)
        )
    loss = task.loss({"start_logits": start, "end_logits": end}, batch)
    assert loss.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)

    # "any" keeps BERT's start/end token loss
    plain = QATask({"max_length": 24, "doc_stride": 4}, tokenizer)
    assert "candidate_spans" not in plain.collate(plain.encode(example, train=True))


def test_candidate_prior_is_the_rankers_logit_learned_on_train_and_kept_in_checkpoints(
    tokenizer: Any,
) -> None:
    """``candidate_prior``: each candidate's score gains the entity ranker's logit (fitted on
    the training examples in ``prepare``) times the head's ``prior_weight``, in the loss and
    in decoding alike; the fitted ranker travels in the task state."""
    from plugformer_qa.baselines import prior_logits

    with pytest.raises(PlugformerError, match="candidate_prior needs"):
        QATask({"candidate_prior": True}, tokenizer)
    rows = [
        {
            "question": f"@placeholder met {who} in the city",
            "context": f"Carl Dunn met Bob Lee. Later, Bob Lee met {who} and Carl Dunn again.",
            "answers": [{"text": "Bob Lee", "answer_start": 14}],
        }
        for who in ("Anna", "Maria", "Paul", "Rosa")
    ] + [
        {
            "question": f"{who} met @placeholder in the city",
            "context": f"{who} met Eve Ross there. Tom Hale and Eve Ross left with {who}.",
            "answers": [{"text": "Eve Ross", "answer_start": len(who) + 5}],
        }
        for who in ("Anna", "Maria", "Paul", "Rosa")
    ]
    options = {"answer_candidates": "entities", "candidate_prior": True, "max_length": 32}
    task = QATask(options, tokenizer)
    examples = parse(task, rows)
    task.prepare(examples)
    assert task.prior is not None and set(task.prior) == {"window", "weights", "bias"}
    logits = prior_logits(task.prior, examples[0].context, examples[0].question)
    assert logits["Bob Lee"] > logits["Carl Dunn"]  # the ranker learned who gets asked about

    features = task.encode(examples[0], train=True)
    batch = task.collate(features)
    ctx = examples[0].context
    for f, prior in zip(features, batch["candidate_prior"], strict=True):
        c, offsets = f["context_offset"], f["offsets"]
        sep, *cands = f["candidates"]
        assert sep[3] == 0.0
        for k, (i, j, _, p) in enumerate(cands, start=1):
            assert p == pytest.approx(logits[ctx[offsets[i - c][0] : offsets[j - c][1]]])
            assert prior[k].item() == pytest.approx(p)

    # The loss: the same softmax, each candidate's score plus the head's weighted prior.
    head = SpanHead(8, prior=True)
    with torch.no_grad():
        head.prior_weight.fill_(2.0)
    B, T = batch["input_ids"].shape
    start, end = torch.randn(B, T), torch.randn(B, T)
    outputs = {"start_logits": start, "end_logits": end}
    outputs["candidate_prior"] = head.prior_weight * batch["candidate_prior"]
    shifted = task.loss(outputs, batch)
    spans = batch["candidate_spans"]
    scores = start.gather(1, spans[..., 0]) + end.gather(1, spans[..., 1])
    scores = scores + 2.0 * batch["candidate_prior"]
    every = torch.logsumexp(scores.masked_fill(~batch["candidate_valid"], -torch.inf), 1)
    gold = torch.logsumexp(scores.masked_fill(~batch["candidate_gold"], -torch.inf), 1)
    assert shifted.item() == pytest.approx((every - gold).mean().item(), rel=1e-5)

    # Decoding: with equal logits everywhere, the prior alone decides; weight 0 ignores it.
    eval_b = eval_batch(task, examples[:1])
    flat = torch.zeros(eval_b["input_ids"].shape)
    (pred,) = task.decode(flat, flat, eval_b, prior_weight=1.0)
    assert pred["answer"] == max(logits, key=logits.get) == "Bob Lee"

    # The fitted ranker is task state: a task restored from it scores the same.
    again = QATask(options, tokenizer)
    again.load_state_dict(json.loads(json.dumps(task.state_dict())))
    assert again.prior == task.prior
