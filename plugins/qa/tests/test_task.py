"""Tests of the QA task: the conformance kit, then windows, offsets, decoding, scoring, the
head and the cloze candidates (agreement with the official SQuAD script is in
test_metrics.py; reading files and plugin discovery in test_files_and_plugin.py).

Everything runs on a micro GPT (one layer, width 16, 32 positions) and a BPE of ~400 tokens
trained on the synthetic passages below, so the whole file takes seconds on a CPU.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import torch

from plugformer import DataError, PlugformerError
from plugformer.config import ModelConfig
from plugformer.models.gpt import GPT
from plugformer.testing import TaskConformance
from plugformer.tokenizer import train_tokenizer
from plugformer_qa.decoding import tidy
from plugformer_qa.task import QAExample, QATask, SpanHead, best_spans

FILLER = "we walked past old houses near a river and saw many birds during an autumn morning with friends".split()
ANSWERS = ["red", "blue", "green", "amber", "violet", "silver", "golden", "purple"]


def make_examples(n: int, seed: int) -> list[dict[str, Any]]:
    """Passages where the answer always follows the cue "the code is" (learnable by a micro model)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        before = " ".join(rng.choices(FILLER, k=rng.randint(2, 7)))
        after = " ".join(rng.choices(FILLER, k=rng.randint(2, 7)))
        answer = rng.choice(ANSWERS)
        context = f"{before} the code is {answer} and {after}."
        start = len(before) + len(" the code is ")
        rows.append(
            {
                "id": f"{seed}-{i}",
                "question": "what is the code?",
                "context": context,
                "answers": [{"text": answer, "answer_start": start}],
            }
        )
    return rows


TRAIN = make_examples(48, seed=1)
TEST = make_examples(24, seed=2)


class TestQAConformance(TaskConformance):
    task_class = QATask
    train_examples = TRAIN[:24]
    eval_examples = TEST[:6]


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


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    texts = [r["context"] for r in TRAIN + TEST] + [r["question"] for r in TRAIN]
    return train_tokenizer(texts * 3, vocab_size=400, min_frequency=1)


def micro_gpt(tokenizer: Any) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(preset="micro", vocab_size=tokenizer.vocab_size))


def parse(task: QATask, rows: list[dict[str, Any]]) -> list[QAExample]:
    return [task.parse_example(r, f"row {i}") for i, r in enumerate(rows)]


def eval_batch(task: QATask, examples: list[QAExample]) -> dict[str, Any]:
    """What the core's evaluation loader gives: all features of each example, plus the examples."""
    feats, index = [], []
    for k, ex in enumerate(examples):
        for f in task.encode(ex, train=False):
            feats.append(f)
            index.append(k)
    return {**task.collate(feats), "examples": examples, "example_index": torch.tensor(index)}


def logits_for(
    batch: dict[str, Any], spans: dict[int, tuple[int, int, float]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hand-made start/end logits: row -> (start position, end position, height); zero elsewhere."""
    start = torch.zeros(batch["input_ids"].shape)
    end = torch.zeros(batch["input_ids"].shape)
    for row, (i, j, height) in spans.items():
        start[row, i], end[row, j] = height, height
    return start, end


# --------------------------------------------------------------------------- examples


def test_an_answer_must_be_where_answer_start_says() -> None:
    row = {
        "question": "q?",
        "context": "the code is red",
        "answers": [{"text": "red", "answer_start": 11}],
    }
    with pytest.raises(DataError, match=r"row 3: .*'red' is not at character 11"):
        QATask().parse_example(row, "row 3")
    row["answers"][0]["answer_start"] = 12
    assert QATask().parse_example(row).answers[0].text == "red"


def test_prediction_inputs_need_no_answers_and_no_id() -> None:
    example = QATask().example_from_input(
        {"question": "what is the code?", "context": "the code is red"}
    )
    assert example.answers == [] and example.id is None
    with pytest.raises(DataError, match="JSON object"):
        QATask().example_from_input("what is the code?")


# --------------------------------------------------------------------------- windows and labels

LONG = " ".join(FILLER * 2) + " and then the code is silver and nothing else"


def long_example(task: QATask) -> QAExample:
    start = LONG.index("silver")
    return task.parse_example(
        {
            "id": "long",
            "question": "what is the code?",
            "context": LONG,
            "answers": [{"text": "silver", "answer_start": start}],
        }
    )


@pytest.mark.parametrize("doc_stride", [None, 3, 100])
def test_windows_cover_the_context_and_offsets_are_exact(
    tokenizer: Any, doc_stride: int | None
) -> None:
    task = QATask({"max_length": 16, "doc_stride": doc_stride}, tokenizer)
    example = long_example(task)
    ids, offsets = tokenizer.encode_with_offsets(example.context)
    feats = task.encode(example, train=False)
    assert len(feats) > 1 and all(len(f["input_ids"]) <= 16 for f in feats)
    covered: list[tuple[int, int]] = []
    for f in feats:
        c = f["context_offset"]
        assert f["input_ids"][c - 1] == tokenizer.sep_id
        assert f["input_ids"][: c - 1] == tokenizer.encode(example.question)
        assert f["input_ids"][-1] == tokenizer.sep_id  # the query the pointer reads from
        window_ids = f["input_ids"][c:-1]
        assert len(window_ids) == len(f["offsets"])
        pos = offsets.index(f["offsets"][0])  # where the window starts in the context's tokens
        assert (
            window_ids == ids[pos : pos + len(window_ids)]
            and f["offsets"] == offsets[pos : pos + len(window_ids)]
        )
        covered.extend(f["offsets"])
    assert sorted(set(covered)) == offsets  # no token left out
    assert "".join(example.context[s:e] for s, e in sorted(set(covered))) == example.context


def test_training_labels_the_window_holding_the_answer_and_sep_elsewhere(tokenizer: Any) -> None:
    task = QATask({"max_length": 16, "doc_stride": 4}, tokenizer)
    example = long_example(task)
    feats = task.encode(example, train=True)
    with_answer = [f for f in feats if f["start_position"] >= f["context_offset"]]
    assert with_answer, "some window must hold the answer"
    for f in feats:
        c, s, e = f["context_offset"], f["start_position"], f["end_position"]
        if f in with_answer:
            span = example.context[f["offsets"][s - c][0] : f["offsets"][e - c][1]]
            assert span.strip() == "silver"
        else:
            assert s == e == c - 1  # the <sep>


def test_an_answer_across_a_window_boundary_is_decoded_from_the_window_holding_it(
    tokenizer: Any,
) -> None:
    context = "we walked past old houses near the river and then the code is golden amber violet"
    start = context.index("golden")
    row = {
        "question": "what is the code?",
        "context": context,
        "answers": [{"text": "golden amber violet", "answer_start": start}],
    }
    _, offsets = tokenizer.encode_with_offsets(context)
    first = min(t for t, (s, e) in enumerate(offsets) if e > start)  # the answer's first token
    prefix = len(tokenizer.encode(row["question"])) + 1
    # Windows of first + 1 context tokens (then the query <sep>) that do not overlap: the first
    # boundary cuts the answer.
    task = QATask({"max_length": prefix + first + 2, "doc_stride": first + 1}, tokenizer)
    example = task.parse_example(row)
    feats = task.encode(example, train=True)
    assert len(feats[0]["offsets"]) == first + 1 and feats[0]["offsets"][-1][1] < start + len(
        "golden amber violet"
    )
    assert (
        feats[0]["start_position"] == feats[0]["end_position"] == feats[0]["context_offset"] - 1
    )  # <sep>

    # With overlapping windows the answer lies whole in a later window; decoding finds it there.
    task = QATask({"max_length": prefix + first + 2, "doc_stride": 2}, tokenizer)
    feats = task.encode(example, train=True)
    holding = next(r for r, f in enumerate(feats) if f["start_position"] >= f["context_offset"])
    assert holding > 0
    batch = eval_batch(task, [example])
    start_logits, end_logits = logits_for(
        batch, {holding: (feats[holding]["start_position"], feats[holding]["end_position"], 5.0)}
    )
    (pred,) = task.decode(start_logits, end_logits, batch)
    assert pred["answer"] == "golden amber violet" and pred["answer_start"] == start


def test_decoding_takes_the_best_window_of_each_example(tokenizer: Any) -> None:
    task = QATask({"max_length": 16, "doc_stride": 4}, tokenizer)
    example = long_example(task)
    other = task.parse_example({"question": "what is the code?", "context": "the code is red"})
    batch = eval_batch(task, [example, other])
    rows = batch["example_index"].tolist()
    last_of_first = rows.count(0) - 1
    c0, c1 = int(batch["context_offset"][0]), int(batch["context_offset"][last_of_first])
    start, end = logits_for(batch, {0: (c0, c0 + 1, 2.0), last_of_first: (c1, c1, 3.0)})
    preds = task.decode(start, end, batch)
    offsets = batch["offsets"][last_of_first]
    snap = task.options.snap_to_words  # on by default: whole words
    expected = example.context[slice(*tidy(example.context, *offsets[0], snap_to_words=snap))]
    assert len(preds) == 2 and preds[0]["answer"] == expected
    assert preds[0]["score"] == pytest.approx(6.0)
    assert LONG[preds[0]["answer_start"] :].startswith(expected)


def test_spans_respect_order_and_length() -> None:
    start = torch.tensor([[0.0, 0.0, 0.0, 5.0, 0.0, 0.0]])
    end = torch.tensor([[0.0, 4.0, 0.0, 0.0, 0.0, 1.0]])
    mask = torch.tensor([[False, True, True, True, True, True]])
    score, i, j = best_spans(start, end, mask, max_tokens=2)
    assert (i.item(), j.item(), score.item()) == (
        3,
        3,
        5.0,
    )  # end 1 comes before start 3; span 3..5 is 3 tokens
    score, i, j = best_spans(start, end, mask, max_tokens=3)
    assert (i.item(), j.item(), score.item()) == (3, 5, 6.0)
    score, _, _ = best_spans(start, end, torch.zeros_like(mask), max_tokens=5)
    assert score.item() == float("-inf")


def test_an_empty_context_gives_an_empty_prediction(tokenizer: Any) -> None:
    task = QATask({}, tokenizer)
    backbone = micro_gpt(tokenizer)
    head = task.build_head(backbone)
    examples = [
        task.example_from_input({"question": "what is the code?", "context": ""}),
        task.example_from_input({"question": "what is the code?", "context": "   "}),
    ]
    preds = task.predict(backbone.eval(), head.eval(), eval_batch(task, examples))
    assert preds[0] == {"answer": "", "answer_start": None, "score": None}
    assert preds[1]["answer"] == ""  # a whitespace-only span strips to nothing


@pytest.mark.parametrize(
    ("snap", "expected"), [(True, "ornithologist Melissa"), (False, "ogist Meli")]
)
def test_a_span_inside_words_is_widened_to_whole_words(
    tokenizer: Any, snap: bool, expected: str
) -> None:
    task = QATask({"snap_to_words": snap}, tokenizer)
    on = task.options.snap_to_words  # what decoding passes to tidy
    context = "the ornithologist Melissa  spoke"
    char_start, char_end = context.index("ogist"), context.index("ssa")
    assert context[slice(*tidy(context, char_start, char_end, snap_to_words=on))] == expected
    start, end = tidy(context, context.index("  "), context.index("  ") + 2, snap_to_words=on)
    assert start == end  # a blank span tidies to nothing


def test_unicode_offsets_map_back_exactly(tokenizer: Any) -> None:
    task = QATask({}, tokenizer)
    context = "Der Code ist grün, sagt Zoë — 東京 ist weit."
    example = task.parse_example(
        {
            "question": "wo?",
            "context": context,
            "answers": [{"text": "東京", "answer_start": context.index("東京")}],
        }
    )
    (f,) = task.encode(example, train=True)
    batch = eval_batch(task, [example])
    start, end = logits_for(batch, {0: (f["start_position"], f["end_position"], 1.0)})
    (pred,) = task.decode(start, end, batch)
    assert pred["answer"] == "東京" and context[pred["answer_start"] :].startswith("東京")


# --------------------------------------------------------------------------- training


def test_fine_tuning_beats_the_entity_ranker(tokenizer: Any) -> None:
    task = QATask({}, tokenizer)
    backbone = micro_gpt(tokenizer)
    head = task.build_head(backbone)
    feats = [f for ex in parse(task, TRAIN) for f in task.encode(ex, train=True)]
    opt = torch.optim.AdamW([*backbone.parameters(), *head.parameters()], lr=1e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(80):
        idx = torch.randint(len(feats), (8,), generator=g).tolist()
        batch = task.collate([feats[i] for i in idx])
        loss = task.loss(task.forward(backbone, head, batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) < 0.3 * sum(losses[:10])

    test = parse(task, TEST)
    preds = task.predict(backbone.eval(), head.eval(), eval_batch(task, test))
    model = score(task, preds, test)
    baseline = score(task, task.baselines()["entity-ranker"](parse(task, TRAIN), test), test)
    assert model["f1"] >= 90 and model["f1"] > baseline["f1"] + 30, (model, baseline)


# --------------------------------------------------------------------------- metrics


def score(task: QATask, preds: list[dict[str, Any]], examples: list[QAExample]) -> dict[str, float]:
    metrics = task.metrics()
    for i in range(0, len(examples), 4):  # batch by batch, as the core does
        task.update_metrics(metrics, preds[i : i + 4], examples[i : i + 4])
    return task.compute_metrics(metrics)


def test_a_long_context_is_scored_a_few_windows_at_a_time(
    tokenizer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20 (5): every window of one example went through the backbone as one batch (a
    5 MB context took 7 GB). Windows now run in mini-batches, with the same predictions."""
    import plugformer_qa.task as qa_task

    task = QATask({"doc_stride": 4}, tokenizer)
    task.check_backbone(gpt := micro_gpt(tokenizer))
    head = task.build_head(gpt).eval()
    gpt.eval()
    context = " ".join(TRAIN[i % len(TRAIN)]["context"] for i in range(12))
    example = task.parse_example({"question": "what is the code?", "context": context})
    batch = eval_batch(task, [example, *parse(task, TEST[:2])])
    n_windows = int(batch["input_ids"].size(0))
    sizes: list[int] = []
    forward = task.forward

    def spy(backbone: Any, head_: Any, b: dict[str, Any]) -> Any:
        sizes.append(int(b["input_ids"].size(0)))
        return forward(backbone, head_, b)

    monkeypatch.setattr(task, "forward", spy)
    with torch.no_grad():
        out = forward(gpt, head, batch)
        whole = task.decode(out["start_logits"], out["end_logits"], batch)
    monkeypatch.setattr(qa_task, "WINDOW_BATCH", 8)
    chunked = task.predict(gpt, head, batch)
    assert n_windows > 24 and max(sizes) <= 8 and sum(sizes) == n_windows
    assert [p["answer"] for p in chunked] == [p["answer"] for p in whole]
    assert [p["score"] for p in chunked] == pytest.approx([p["score"] for p in whole], abs=1e-5)


def test_scoring_needs_gold_answers() -> None:
    task = QATask()
    example = task.example_from_input({"question": "q", "context": "c"})
    with pytest.raises(DataError, match="no gold answers"):
        task.update_metrics(task.metrics(), [{"answer": "c"}], [example])


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
