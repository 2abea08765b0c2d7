"""Tests of the compression task: echo encoding, learning to keep words, pooling, the kit.

The toy "headline" keeps a prompt's two capitalised words: which words those are depends
on each word itself, and the task must learn it from oracle labels to beat ``lead``.
"""

from __future__ import annotations

import random

import pytest
import torch

from plugformer import DataError
from plugformer.testing import TaskConformance, micro_backbone, tokenizer_for
from plugformer_generation.compression import CompressionTask
from plugformer_generation.extractive import top_words
from plugformer_generation.task import IGNORE

WORDS = "red blue green cat dog sun moon tree fish bird king road".split()
NAMES = "Paris Rome Oslo Lima Kyiv Bern".split()


def pairs(n: int = 60, seed: int = 0) -> list[dict[str, str]]:
    """Eight lower-case words with two names among them; the headline is the two names."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(8)]
        a, b = sorted(rng.sample(range(1, 8), 2))
        words[a], words[b] = rng.choice(NAMES), rng.choice(NAMES)
        rows.append(
            {"id": f"c{i}", "prompt": " ".join(words) + ".", "completion": f"{words[a]} {words[b]}"}
        )
    return rows


@pytest.fixture(scope="module")
def tok():
    return tokenizer_for(pairs())


def make_task(tok, **options) -> CompressionTask:
    task = CompressionTask({"keep": 2, **options}, tok)
    task.check_backbone(micro_backbone(tok).model)
    return task


def eval_batch(task: CompressionTask, examples: list) -> dict:
    return task.collate([task.encode(ex, train=False)[0] for ex in examples]) | {
        "examples": examples
    }


def test_encode_echoes_the_window_and_labels_the_second_copy(tok) -> None:
    task = make_task(tok)
    ex = task.parse_example(
        {"prompt": "red Paris cat, Rome dog sun.", "completion": "Paris and Rome"}
    )
    (feature,) = task.encode(ex, train=True)
    ids, labels = feature["input_ids"], feature["labels"]
    sep = ids.index(tok.sep_id)
    assert ids[:sep] == ids[sep + 1 : -1]  # the window twice: W <sep> W <eos>
    assert set(labels[: sep + 1]) == {IGNORE} and labels[-1] == IGNORE
    tagged = [label for label in labels[sep + 1 :] if label != IGNORE]
    assert tagged == [0, 1, 0, 1, 0, 0]  # one label per word: Paris and Rome kept
    once = make_task(tok, echo=False).encode(ex, train=True)[0]
    assert tok.sep_id not in once["input_ids"]
    assert [label for label in once["labels"] if label != IGNORE] == tagged


def test_the_window_is_cut_to_the_length_budget_whole_words_both_copies(tok) -> None:
    task = CompressionTask({"max_length": 16}, tok)
    task.check_backbone(micro_backbone(tok).model)
    ex = task.parse_example({"prompt": " ".join(WORDS * 3), "completion": "red"})
    (feature,) = task.encode(ex, train=True)
    assert len(feature["input_ids"]) <= 16
    n = sum(label != IGNORE for label in feature["labels"])
    assert 0 < n < len(WORDS)
    # the words past the budget are predicted as dropped
    pred = CompressionTask({"max_length": 16, "keep": 3}, tok)
    pred.check_backbone(micro_backbone(tok).model)
    torch.manual_seed(0)
    backbone = micro_backbone(tok).model
    (out,) = pred.predict(backbone, pred.build_head(backbone).eval(), eval_batch(pred, [ex]))
    assert len(out["keep"]) == len(out["words"]) == 3 * len(WORDS)
    assert out["keep"][n:] == [0.0] * (3 * len(WORDS) - n)


def test_training_without_a_reference_is_refused_with_its_location(tok) -> None:
    task = make_task(tok)
    ex = task.parse_example({"prompt": "red cat"}, where="data.jsonl:3")
    with pytest.raises(DataError, match=r"data.jsonl:3.*no completion"):
        task.encode(ex, train=True)


def test_tagger_learns_to_keep_the_names_and_beats_lead(tok) -> None:
    """A micro GPT trained on the oracle labels keeps the two names: ROUGE-L far above the
    ``lead`` baseline (which cannot know where the names are)."""
    task = make_task(tok)
    torch.manual_seed(0)
    backbone = micro_backbone(tok).model
    head = task.build_head(backbone)
    train = [task.parse_example(r) for r in pairs(48)]
    test = [task.parse_example(r) for r in pairs(16, seed=1)]
    features = [task.encode(ex, train=True)[0] for ex in train]
    params = [*backbone.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=5e-3)
    losses = []
    for step in range(120):
        batch = task.collate(random.Random(step).sample(features, 16))
        loss = task.loss(task.forward(backbone, head, batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    backbone.eval(), head.eval()
    preds = task.predict(backbone, head, eval_batch(task, test))
    metrics = task.metrics()
    task.update_metrics(metrics, preds, test)
    model = task.compute_metrics(metrics)["rougeL"]
    lead = task.baselines()["lead"]
    lead_preds = lead(train, test, test[:8])
    metrics = task.metrics()
    task.update_metrics(metrics, lead_preds, test)
    assert model > 0.8 > task.compute_metrics(metrics)["rougeL"] + 0.2


def test_fuse_pools_keep_probabilities_and_how_many_words_are_kept() -> None:
    task = CompressionTask({"keep": 1})
    src = ["a", "b", "c"]
    a = {"completion": "a", "words": src, "keep": [0.9, 0.2, 0.1], "kept": 1}
    b = {"completion": "b c", "words": src, "keep": [0.1, 0.9, 0.8], "kept": 2}
    assert task.fuse(a, b, 1.0)["completion"] == "a"
    assert task.fuse(a, b, 0.0)["completion"] == "b c"
    half = task.fuse(a, b, 0.5)
    assert half["keep"][0] == pytest.approx(0.5)  # logit(0.9) + logit(0.1) = 0
    assert half["keep"][1] == pytest.approx(0.6)  # sqrt(0.2·0.9) : sqrt(0.8·0.1)
    assert half["keep"][2] == pytest.approx(0.4)
    assert half["kept"] == 2 and half["completion"] == "a b"  # round(1.5) = 2: 0.6 and 0.5
    assert task.fuse(a, b, 0.8)["completion"] == "a"  # round(1.2) = 1
    with pytest.raises(ValueError, match="same 'words'"):
        task.fuse(a, {**b, "words": ["x", "y", "z"]}, 0.5)
    with pytest.raises(ValueError, match="between 0 and 1"):
        task.fuse(a, b, 1.5)


def test_top_words_keeps_the_order_of_the_prompt() -> None:
    assert top_words(["w", "x", "y", "z"], [0.1, 0.9, 0.2, 0.8], 2) == "x z"
    assert top_words(["w", "x"], [0.5, 0.5], 1) == "w"  # a tie goes to the earlier word


def test_compress_baseline_predictions_carry_what_fuse_needs(tok) -> None:
    task = make_task(tok)
    train = [task.parse_example(r) for r in pairs(48)]
    test = [task.parse_example(r) for r in pairs(6, seed=2)]
    preds = task.baselines()["compress"](train, test, test)
    for p, ex in zip(preds, test, strict=True):
        assert p["words"] == task.window_words(ex)
        assert len(p["keep"]) == len(p["words"])
        assert p["kept"] == len(p["completion"].split())
    model_like = {**preds[0], "keep": [0.5] * len(preds[0]["words"]), "kept": 1}
    assert task.fuse(model_like, preds[0], 0.0)["completion"] == preds[0]["completion"]
    lead = task.baselines()["lead"](train, test, test)
    assert all(p["keep"][: p["kept"]] == [1.0] * p["kept"] for p in lead)


class TestCompressionConformance(TaskConformance):
    task_class = CompressionTask
    train_examples = pairs(24)
    options = {"keep": 2}
    lr = 1e-2
    keep_short = ("id", "completion")
