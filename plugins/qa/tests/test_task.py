"""Tests of the QA task's contract and its span path: the conformance kit, then examples,
windows, offsets, decoding, training and scoring. The head's copy term and the cloze
candidates (entity decoding and training, the ranker's prior) are in test_candidates.py;
agreement with the official SQuAD script in test_metrics.py; reading files and plugin
discovery in test_files_and_plugin.py. Fixtures and synthetic data: conftest.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from plugformer import SEP, DataError
from plugformer.testing import TaskConformance
from plugformer_qa.decoding import tidy
from plugformer_qa.task import QAExample, QATask, best_spans
from plugins.qa.tests.conftest import (
    FILLER,
    TEST,
    TRAIN,
    eval_batch,
    logits_for,
    make_examples,
    micro_gpt,
    parse,
)


class TestQAConformance(TaskConformance):
    task_class = QATask
    train_examples = TRAIN[:24]
    eval_examples = TEST[:6]


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


def test_pretraining_document_cuts_the_passage_around_the_answer(tokenizer: Any) -> None:
    """With pretraining's context known, the passage is a window that holds the answer, so
    question, passage and answer fit one block. Before, a news-cloze document (~230 tokens)
    in blocks of 128 was never read with its question and its answer together."""
    task = QATask({}, tokenizer)
    row = make_examples(1, seed=5)[0]
    before, after = "we walked past old houses near a river " * 6, " and saw many birds" * 6
    answer = row["answers"][0]
    ex = task.parse_example(
        {
            **row,
            "context": before + row["context"] + after,
            "answers": [{**answer, "answer_start": answer["answer_start"] + len(before)}],
        }
    )
    (whole,) = task.pretrain_documents([ex])  # context unknown: the whole passage
    assert whole == f"{ex.question}{SEP}{ex.context}{SEP} {answer['text']}"
    task.pretrain_max_tokens = 24
    docs = list(task.pretrain_documents([ex, ex]))
    assert docs[0] == docs[1]  # the window is drawn reproducibly
    question, passage, tail = docs[0].split(SEP)
    assert (question, tail) == (ex.question, " " + answer["text"])
    assert len(tokenizer.encode(docs[0])) <= 24
    at = ex.context.index(passage)
    assert answer["text"] in passage and ex.context[at - 1] == " "  # starts at a word
    assert len(passage) < len(ex.context) // 2
