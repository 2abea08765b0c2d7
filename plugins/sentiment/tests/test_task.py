"""Tests of the sentiment task: the conformance kit, then what is specific to this task.

Everything runs on a micro GPT (one layer, width 16) and a BPE of ~400 tokens trained on the
synthetic sentences below, so the whole file takes seconds on a CPU.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from plugformer import DataError, PlugformerError
from plugformer.config import ModelConfig
from plugformer.models.gpt import GPT
from plugformer.testing import TaskConformance
from plugformer.tokenizer import train_tokenizer
from plugformer_sentiment.task import SentimentExample, SentimentTask

POSITIVE = ["great", "wonderful", "superb", "lovely", "brilliant"]
NEGATIVE = ["awful", "terrible", "dreadful", "boring", "dire"]
NOUNS = ["film", "meal", "book", "hotel", "concert", "game", "show", "trip"]
FILLER = ["to be honest", "all in all", "on the whole", "I think", "said my friend", ""]


def make_examples(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` sentences whose label is decided by one keyword (learnable by a micro model)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        adj = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
        text = f"the {rng.choice(NOUNS)} was {adj} {rng.choice(FILLER)}".strip()
        rows.append({"id": f"{seed}-{i}", "text": text, "label": label})
    return rows


TRAIN = make_examples(80, seed=1)
TEST = make_examples(24, seed=2)


class TestSentimentConformance(TaskConformance):
    task_class = SentimentTask
    train_examples = TRAIN
    eval_examples = TEST[:8]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return train_tokenizer([r["text"] for r in TRAIN + TEST] * 3, vocab_size=400, min_frequency=1)


def micro_gpt(tokenizer: Any, causal: bool = True) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(preset="micro", vocab_size=tokenizer.vocab_size, causal=causal))


def parse(task: SentimentTask, rows: list[dict[str, Any]]) -> list[SentimentExample]:
    return [task.parse_example(r, f"row {i}") for i, r in enumerate(rows)]


def prepared(tokenizer: Any, **options: Any) -> SentimentTask:
    task = SentimentTask(options, tokenizer)
    task.check_backbone(micro_gpt(tokenizer))  # the core hands over the length budget first
    task.prepare(parse(task, TRAIN))
    return task


# --------------------------------------------------------------------------- labels


def test_labels_are_learned_sorted_and_stored(tokenizer: Any) -> None:
    task = prepared(tokenizer)
    assert task.labels == ["negative", "positive"]
    assert task.state_dict() == {"labels": ["negative", "positive"], "label_counts": [40, 40]}
    other = SentimentTask({}, tokenizer)
    other.load_state_dict(json.loads(json.dumps(task.state_dict())))
    assert other.labels == task.labels


def test_integer_labels_become_names_in_numeric_order(tokenizer: Any) -> None:
    task = SentimentTask({}, tokenizer)
    rows = [{"text": "x", "label": 10}, {"text": "y", "label": 2}, {"text": "z", "label": 1}]
    task.prepare(parse(task, rows))
    assert task.labels == ["1", "2", "10"]
    # a float that is no integer (NaN from an empty pandas cell, 1.5) is no label name
    for bad in (float("nan"), 1.5):
        with pytest.raises(DataError, match="a label is a name or an integer, not"):
            task.parse_example({"text": "x", "label": bad})


def test_fixed_label_order_and_unknown_labels(tokenizer: Any) -> None:
    task = prepared(tokenizer, labels=["positive", "negative", "neutral"])
    assert task.labels == ["positive", "negative", "neutral"]
    assert task.label_counts == [40, 40, 0]
    with pytest.raises(DataError, match=r"not in options\.labels"):
        prepared(tokenizer, labels=["positive", "neutral"])
    with pytest.raises(DataError, match=r"label 'meh' is not one of"):
        task.encode(task.parse_example({"id": "q1", "text": "so so", "label": "meh"}), train=True)


def test_options_are_validated() -> None:
    from plugformer.errors import ConfigError

    with pytest.raises(ConfigError, match="pooling"):
        SentimentTask({"pooling": "max"})
    with pytest.raises(ConfigError, match="distinct"):
        SentimentTask({"labels": ["a", "a"]})
    with pytest.raises(ConfigError, match="unknown key"):
        SentimentTask({"pooling_mode": "mean"})


def test_training_needs_labels_prediction_does_not(tokenizer: Any) -> None:
    task = prepared(tokenizer)
    unlabelled = task.example_from_input("what a lovely day")
    assert unlabelled.label is None and "labels" not in task.encode(unlabelled, train=False)[0]
    with pytest.raises(DataError, match="no label"):
        task.encode(unlabelled, train=True)
    with pytest.raises(DataError, match="have no label"):
        SentimentTask({}, tokenizer).prepare([unlabelled])


# --------------------------------------------------------------------------- tensors and head


def test_encode_truncates_to_the_backbone_window_and_ends_with_eos(tokenizer: Any) -> None:
    task = prepared(tokenizer)
    task.build_head(micro_gpt(tokenizer))  # micro: max_seq_len 32
    (feature,) = task.encode(task.example_from_input("great film " * 50), train=False)
    assert len(feature["input_ids"]) == 32 and feature["input_ids"][-1] == tokenizer.eos_id


@pytest.mark.parametrize(("causal", "expected"), [(True, "last"), (False, "mean")])
def test_auto_pooling_follows_the_backbone(tokenizer: Any, causal: bool, expected: str) -> None:
    assert prepared(tokenizer).build_head(micro_gpt(tokenizer, causal)).pooling == expected


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_padding_does_not_change_the_logits(tokenizer: Any, pooling: str) -> None:
    task = prepared(tokenizer, pooling=pooling)
    backbone = micro_gpt(tokenizer).eval()
    head = task.build_head(backbone).eval()
    short, long = parse(
        task,
        [
            {"text": "a great meal", "label": "positive"},
            {"text": "the trip was dire " * 3, "label": "negative"},
        ],
    )
    alone = task.forward(backbone, head, task.collate(task.encode(short, train=True)))
    padded = task.forward(
        backbone, head, task.collate(task.encode(short, train=True) + task.encode(long, train=True))
    )
    torch.testing.assert_close(alone[0], padded[0], rtol=1e-5, atol=1e-5)


def test_class_weights_weigh_the_rare_label_more(tokenizer: Any) -> None:
    task = SentimentTask({"class_weights": True}, tokenizer)
    task.prepare(parse(task, TRAIN[:2] * 3 + [r for r in TRAIN if r["label"] == "positive"][:6]))
    assert task.label_counts == [3, 9]
    logits = torch.zeros(2, 2)  # uniform predictions: the loss is ln 2 whatever the weights
    labels = torch.tensor([0, 1])
    assert task.loss(logits, {"labels": labels}).item() == pytest.approx(0.6931, abs=1e-4)
    # Wrong on the rare label, right on the common one: weighting makes the mistake cost more.
    skewed = torch.tensor([[0.0, 2.0], [0.0, 2.0]])
    unweighted = SentimentTask({}, tokenizer)
    unweighted.load_state_dict(task.state_dict())
    assert task.loss(skewed, {"labels": labels}) > unweighted.loss(skewed, {"labels": labels})


def test_fine_tuning_beats_the_majority_baseline(tokenizer: Any) -> None:
    task = prepared(tokenizer)
    backbone = micro_gpt(tokenizer)
    head = task.build_head(backbone)
    feats = [f for ex in parse(task, TRAIN) for f in task.encode(ex, train=True)]
    opt = torch.optim.AdamW([*backbone.parameters(), *head.parameters()], lr=1e-2)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        idx = torch.randint(len(feats), (8,), generator=g).tolist()
        batch = task.collate([feats[i] for i in idx])
        loss = task.loss(task.forward(backbone, head, batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) < 0.5 * sum(losses[:10])

    test = parse(task, TEST)
    batch = task.collate([f for ex in test for f in task.encode(ex, train=False)])
    preds = task.predict(backbone.eval(), head.eval(), batch)
    assert all(abs(sum(p["probs"].values()) - 1) < 1e-5 for p in preds)
    scores = score(task, preds, test)
    majority = score(task, task.baselines()["majority"](parse(task, TRAIN), test), test)
    assert scores["accuracy"] >= 0.9 > majority["accuracy"] + 0.3
    assert set(scores) == {"accuracy", "macro_f1", "mcc"}


# --------------------------------------------------------------------------- metrics and baselines


def score(
    task: SentimentTask, preds: list[dict[str, Any]], examples: list[SentimentExample]
) -> dict[str, float]:
    metrics = task.metrics()
    for i in range(0, len(examples), 5):  # batch by batch, as the core does
        task.update_metrics(metrics, preds[i : i + 5], examples[i : i + 5])
    return task.compute_metrics(metrics)


def test_metrics_match_hand_computed_values(tokenizer: Any) -> None:
    task = prepared(tokenizer)
    examples = parse(
        task, [{"text": "t", "label": g} for g in ["positive", "positive", "negative", "negative"]]
    )
    preds = [{"label": p} for p in ["positive", "negative", "negative", "negative"]]
    values = score(task, preds, examples)
    assert values["accuracy"] == pytest.approx(0.75)
    assert values["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)  # negative F1 0.8, positive 2/3
    assert values["mcc"] == pytest.approx(1 / 3**0.5)  # (1·2 − 0·1) / sqrt(1·3·2·2)


def test_baselines(tokenizer: Any) -> None:
    task = prepared(tokenizer)
    train, test = parse(task, TRAIN), parse(task, TEST)
    tfidf = score(task, task.baselines()["tfidf-logreg"](train, test), test)
    assert tfidf["accuracy"] == 1.0  # one keyword decides the label: TF-IDF finds it
    skewed = train + [e for e in train if e.label == "negative"]
    majority = task.baselines()["majority"](skewed, test)
    assert {p["label"] for p in majority} == {"negative"}
    assert majority[0]["probs"] == pytest.approx({"negative": 2 / 3, "positive": 1 / 3})


# --------------------------------------------------------------------------- files


def test_reads_csv_tsv_and_jsonl_with_column_mapping(tmp_path: Path, tokenizer: Any) -> None:
    (tmp_path / "a.csv").write_text(
        'sentence,polarity\n"great, really",1\nawful,0\n', encoding="utf-8"
    )
    (tmp_path / "a.tsv").write_text(
        "sentence\tpolarity\tsource\ngreat\t1\tweb\nawful\t0\tweb\n", encoding="utf-8"
    )
    (tmp_path / "a.jsonl").write_text(
        '{"sentence": "great", "polarity": 1}\n{"sentence": "awful", "polarity": 0}\n',
        encoding="utf-8",
    )
    task = SentimentTask({"columns": {"text": "sentence", "label": "polarity"}}, tokenizer)
    for name in ("a.csv", "a.tsv", "a.jsonl"):
        examples = task.read_file(tmp_path / name)
        assert [(e.text.split(",")[0], e.label) for e in examples] == [
            ("great", "1"),
            ("awful", "0"),
        ], name


def test_a_bad_row_names_file_and_line(tmp_path: Path, tokenizer: Any) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"text": "fine", "label": "positive"}\n{"text": "", "label": "negative"}\n',
        encoding="utf-8",
    )
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'text'"):
        SentimentTask({}, tokenizer).read_file(path)


# --------------------------------------------------------------------------- plugin


def test_plugin_is_discovered_through_its_entry_point() -> None:
    from plugformer import plugins

    plugins.reset()
    assert plugins.get_task_class("sentiment") is SentimentTask
    info = next(i for i in plugins.plugin_infos() if i.name == "sentiment")
    assert (info.status, info.distribution, info.api) == ("ok", "plugformer-sentiment", ">=1,<2"), (
        info.error
    )


def test_plugin_module_does_not_import_torch() -> None:
    code = "import sys, plugformer_sentiment.plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_predict_needs_labels_first(tokenizer: Any) -> None:
    with pytest.raises(PlugformerError, match="no labels yet"):
        SentimentTask({}, tokenizer).build_head(micro_gpt(tokenizer))
