"""Tests of the translation task: encoding, training, decoding (greedy, beam, cache) and metrics.

Everything runs on a tiny byte-level BPE and a micro GPT trained for a few dozen steps on a
toy language whose translation is a fixed word mapping, so the whole file takes seconds.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sacrebleu.metrics import BLEU, CHRF

from plugformer import DataError, PlugformerError
from plugformer.config import ModelConfig
from plugformer.metrics import CorpusBLEU, CorpusCHRF
from plugformer.models.gpt import GPT
from plugformer.testing import TaskConformance
from plugformer.tokenizer import Tokenizer, train_tokenizer
from plugformer_translation import plugin
from plugformer_translation.task import IGNORE, TranslationTask

LEXICON = {
    "the": "el", "a": "un", "cat": "gato", "dog": "perro", "bird": "pájaro", "man": "hombre",
    "sees": "ve", "eats": "come", "likes": "quiere", "fish": "pez", "bread": "pan", "ball": "balón",
}  # fmt: skip
SUBJECTS = ["the cat", "the dog", "a bird", "the man"]
VERBS = ["sees", "eats", "likes"]
OBJECTS = ["the fish", "the bread", "a ball"]


def toy_pairs() -> list[dict[str, str]]:
    """36 English → pseudo-Spanish pairs, translated word by word with LEXICON."""
    pairs = []
    for i, (s, v, o) in enumerate(itertools.product(SUBJECTS, VERBS, OBJECTS)):
        source = f"{s} {v} {o} ."
        pairs.append(
            {
                "id": str(i),
                "source": source,
                "target": " ".join(LEXICON.get(w, w) for w in source.split()),
            }
        )
    random.Random(0).shuffle(pairs)
    return pairs


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    pairs = toy_pairs()
    return train_tokenizer(
        [p["source"] for p in pairs] + [p["target"] for p in pairs] * 4, vocab_size=400
    )


@pytest.fixture(scope="module")
def task(tok: Tokenizer) -> TranslationTask:
    return TranslationTask({"max_length": 32, "decoding": "greedy"}, tok)


def micro_gpt(tok: Tokenizer, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(ModelConfig(preset="micro", vocab_size=tok.vocab_size)).eval()


def eval_batch(task: TranslationTask, examples: list) -> dict:
    """What the core's evaluation loop hands ``predict``: collated features plus the examples."""
    features, index = [], []
    for i, ex in enumerate(examples):
        for f in task.encode(ex, train=False):
            features.append(f)
            index.append(i)
    return task.collate(features) | {"examples": examples, "example_index": torch.tensor(index)}


def score(task: TranslationTask, predictions: list, examples: list) -> dict[str, float]:
    metrics = task.metrics()
    task.update_metrics(metrics, predictions, examples)
    return task.compute_metrics(metrics)


@pytest.fixture(scope="module")
def trained(tok: Tokenizer, task: TranslationTask) -> tuple[GPT, list[float]]:
    """A micro GPT after 120 AdamW steps on 28 pairs; returns it and its loss curve."""
    model = micro_gpt(tok).train()
    head = task.build_head(model)
    train = [task.parse_example(p) for p in toy_pairs()[:28]]
    features = [f for ex in train for f in task.encode(ex, train=True)]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-2)
    losses = []
    for step in range(120):
        batch = task.collate(random.Random(step).sample(features, 16))
        loss = task.loss(task.forward(model, head, batch), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model.eval(), losses


# --------------------------------------------------------------------------- plugin


def test_plugin_registers_lazily() -> None:
    tasks: list[tuple] = []
    plugin.register_tasks(register=lambda *a, **kw: tasks.append((a, kw)))
    assert tasks == [(("plugformer_translation.task:TranslationTask",), {"name": "translation"})]
    code = "import sys, plugformer_translation.plugin; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- data


def test_examples_are_validated_with_file_and_line(tmp_path: Path, tok: Tokenizer) -> None:
    task = TranslationTask({}, tok)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source": "a cat", "target": "un gato"}\n{"target": "el perro"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'source'"):
        task.read_file(bad)


def test_tsv_with_column_mapping(tmp_path: Path, tok: Tokenizer) -> None:
    path = tmp_path / "pairs.tsv"
    path.write_text("en\tes\tnote\nthe cat .\tel gato .\tx\nthe dog .\tel perro .\ty\n")
    task = TranslationTask({"columns": {"source": "en", "target": "es"}}, tok)
    examples = task.read_file(path)
    assert [(e.source, e.target) for e in examples] == [
        ("the cat .", "el gato ."),
        ("the dog .", "el perro ."),
    ]


def test_declared_languages_must_match_the_options(tok: Tokenizer) -> None:
    task = TranslationTask({"source_lang": "en", "target_lang": "es"}, tok)
    ok = task.parse_example(
        {"source": "a", "target": "b", "source_lang": "en", "target_lang": "es"}
    )
    task.prepare([ok])
    with pytest.raises(DataError, match="target_lang is 'fr'"):
        task.prepare([task.parse_example({"source": "a", "target": "b", "target_lang": "fr"})])


def test_encoding_puts_loss_on_the_target_only(task: TranslationTask, tok: Tokenizer) -> None:
    ex = task.parse_example({"source": "the cat eats .", "target": "el gato come ."})
    (f,) = task.encode(ex, train=True)
    # the target after a space: its first word the token it is inside a sentence
    source, target = tok.encode(ex.source), tok.encode(" " + ex.target)
    assert f["input_ids"] == [*source, tok.sep_id, *target, tok.eos_id]
    assert f["prompt_length"] == len(source) + 1
    # labels[t] is the token after t; nothing is learned about the source or <sep>.
    assert f["labels"] == [IGNORE] * len(source) + [*target, tok.eos_id, IGNORE]


def test_encoding_truncates_and_needs_a_target_to_train(tok: Tokenizer) -> None:
    task = TranslationTask({"max_length": 12}, tok)
    ex = task.parse_example(
        {"source": "the man likes the bread . " * 4, "target": "el hombre quiere el pan . " * 4}
    )
    (f,) = task.encode(ex, train=True)
    assert len(f["input_ids"]) == len(f["labels"]) == 12
    assert f["prompt_length"] == 12 // 2 + 1  # source cut to half of max_length, then <sep>
    with pytest.raises(DataError, match="no target"):
        task.encode(task.example_from_input("the cat ."), train=True)
    long_source = TranslationTask({"max_length": 12, "max_source_tokens": 50}, tok)
    (f,) = long_source.encode(ex, train=True)
    assert f["prompt_length"] == 12 - 1  # the source leaves room for <sep> and one target token


def test_collate_forward_loss_backward(task: TranslationTask, tok: Tokenizer) -> None:
    model = micro_gpt(tok).train()
    examples = [task.parse_example(p) for p in toy_pairs()[:4]]
    batch = task.collate([f for ex in examples for f in task.encode(ex, train=True)])
    B, T = batch["input_ids"].shape
    assert batch["labels"].shape == batch["attention_mask"].shape == (B, T)
    logits = task.forward(model, task.build_head(model), batch)
    assert logits.shape == (B, T, tok.vocab_size)
    loss = task.loss(logits, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.wte.weight.grad is not None
    assert list(task.build_head(model).parameters()) == []  # the checkpoint is the backbone


# --------------------------------------------------------------------------- training


def test_training_lowers_loss_and_beats_copy_source(trained: tuple, task: TranslationTask) -> None:
    model, losses = trained
    assert sum(losses[-10:]) / 10 < 0.2 * sum(losses[:10]) / 10
    pairs = toy_pairs()
    train = [task.parse_example(p) for p in pairs[:28]]
    test = [task.parse_example(p) for p in pairs[28:]]
    predictions = task.predict(model, task.build_head(model), eval_batch(task, test))
    model_scores = score(task, predictions, test)
    copy_scores = score(task, task.baselines()["copy-source"](train, test), test)
    assert model_scores["bleu"] > copy_scores["bleu"] + 10
    assert model_scores["chrf"] > copy_scores["chrf"] + 10


def test_beam_decoding_through_predict(trained: tuple, tok: Tokenizer) -> None:
    model, _ = trained
    task = TranslationTask({"max_length": 32, "decoding": "beam", "beam_size": 3}, tok)
    test = [task.parse_example(p) for p in toy_pairs()[28:]]
    predictions = task.predict(model, task.build_head(model), eval_batch(task, test))
    assert score(task, predictions, test)["bleu"] > 20


# --------------------------------------------------------------------------- decoding
# The strategies themselves (greedy, beam, sampling, cache = recomputation) are tested once,
# in the core's tests/test_decoding.py; here only that the task decodes through them.


def test_greedy_decoding_through_predict(trained: tuple, tok: Tokenizer) -> None:
    model, _ = trained
    task = TranslationTask({"max_length": 32, "decoding": "greedy"}, tok)
    test = [task.parse_example(p) for p in toy_pairs()[:4]]
    predictions = task.predict(model, task.build_head(model), eval_batch(task, test))
    assert predictions[0]["translation"] == test[0].target  # a training pair, learned


def test_min_length_ratio_holds_the_end_back_to_a_share_of_the_source(
    trained: tuple, tok: Tokenizer
) -> None:
    model, _ = trained
    examples = [TranslationTask.Example(**p) for p in toy_pairs()[:4]]
    lengths = {}
    for ratio in (0.0, 2.0):
        task = TranslationTask(
            {"max_length": 32, "decoding": "greedy", "min_length_ratio": ratio}, tok
        )
        prompts = [task.prompt_ids(ex) for ex in examples]
        out = task.decode(model, prompts)
        lengths[ratio] = [len(o) for o in out]
        floors = [min(int(ratio * (len(p) - 1)), int(1.5 * (len(p) - 1)) + 9) for p in prompts]
        assert all(n >= f for n, f in zip(lengths[ratio], floors, strict=True))
    # the learned translations end before twice the source's length: the floor lengthens them
    assert all(a < b for a, b in zip(lengths[0.0], lengths[2.0], strict=True))


# --------------------------------------------------------------------------- metrics

HYPOTHESES = ["el gato ve un balón .", "un pájaro come pan", "", "el hombre — quiere «el pez» ."]
REFERENCES = [
    "el gato ve un balón .",
    "un pájaro come el pan .",
    "el perro .",
    "el hombre quiere el pez .",
]


def test_metrics_equal_the_sacrebleu_command_line(tmp_path: Path) -> None:
    (tmp_path / "hyp.txt").write_text("\n".join(HYPOTHESES) + "\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("\n".join(REFERENCES) + "\n", encoding="utf-8")
    cli = [
        sys.executable,
        "-m",
        "sacrebleu",
        str(tmp_path / "ref.txt"),
        "-i",
        str(tmp_path / "hyp.txt"),
    ]
    out = subprocess.run(
        [*cli, "-m", "bleu", "chrf", "-b"], capture_output=True, text=True, check=True
    )
    expected = json.loads(out.stdout)  # -b: the scores only, as a JSON list
    bleu, chrf = CorpusBLEU(), CorpusCHRF()
    for metric in (bleu, chrf):  # two batches: the corpus score is not a mean of batch scores
        metric.update(HYPOTHESES[:3], REFERENCES[:3])
        metric.update(HYPOTHESES[3:], REFERENCES[3:])
    assert [round(float(bleu.compute()), 1), round(float(chrf.compute()), 1)] == expected


def test_metric_states_survive_a_distributed_gather() -> None:
    """Gathering from two ranks concatenates the byte states; the strings come back intact."""
    metric = CorpusBLEU(sync_on_compute=False)
    metric.update(HYPOTHESES, REFERENCES)
    metric.sync(dist_sync_fn=lambda t, group=None: [t, t], distributed_available=lambda: True)
    expected = BLEU().corpus_score(HYPOTHESES * 2, [REFERENCES * 2]).score
    assert float(metric.compute()) == pytest.approx(expected)


def test_metric_info_gives_the_sacrebleu_signatures(task: TranslationTask) -> None:
    info = task.metric_info()
    assert info["bleu"].signature.startswith(
        "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:"
    )
    assert info["bleu"].range == (0.0, 100.0) and info["bleu"].higher_is_better
    chrf = CHRF()
    chrf.corpus_score(["a"], [["a"]])  # sacrebleu knows the number of references once it scored
    assert info["chrf"].signature == chrf.get_signature().format()


def test_unscorable_examples_are_refused(task: TranslationTask) -> None:
    with pytest.raises(DataError, match="no target"):
        task.update_metrics(
            task.metrics(), [{"translation": "x"}], [task.example_from_input("the cat .")]
        )


# --------------------------------------------------------------------------- conformance


class TestGreedyConformance(TaskConformance):
    task_class = TranslationTask
    train_examples = toy_pairs()
    options = {"decoding": "greedy"}
    lr = 1e-2


class TestBeamConformance(TaskConformance):
    task_class = TranslationTask
    train_examples = toy_pairs()
    options = {"decoding": "beam", "beam_size": 3}
    lr = 1e-2


def test_logged_predictions_rescore_with_the_sacrebleu_command_line(
    trained: tuple, task: TranslationTask, tok: Tokenizer, tmp_path: Path
) -> None:
    """What a suite cell keeps (``evaluate(..., keep_predictions=True)``'s samples) re-scores
    with sacrebleu's own command line to the BLEU and chrF that were reported."""
    from plugformer.checkpoint import save_task
    from plugformer.config import TaskSpec
    from plugformer.inference.samples import read_samples, write_samples
    from plugformer.models.families import LoadedBackbone
    from plugformer.training.finetune import evaluate

    model, _ = trained
    test = tmp_path / "test.jsonl"
    test.write_text("".join(json.dumps(p) + "\n" for p in toy_pairs()[28:]), encoding="utf-8")
    spec = TaskSpec.model_validate(
        {"task": "translation", "options": {"max_length": 32, "decoding": "greedy"},
         "data": {"test": str(test)}}
    )  # fmt: skip
    manifest = {"weights_sha256": "micro", "family": "native", "architecture": "plugformer-gpt"}
    backbone = LoadedBackbone(model, tok, manifest, None)
    save_task(tmp_path / "ckpt", backbone, task.build_head(model), task, spec, {"backbone": "x"})
    result = evaluate(spec, tmp_path / "ckpt", keep_predictions=True)
    samples = read_samples(write_samples(tmp_path / "predictions.jsonl", result["samples"]))
    assert [s["id"] for s in samples] == [p["id"] for p in toy_pairs()[28:]]
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("".join(s["prediction"]["translation"] + "\n" for s in samples))
    ref.write_text("".join(s["example"]["target"] + "\n" for s in samples))
    cli = [sys.executable, "-m", "sacrebleu", str(ref), "-i", str(hyp), "-m", "bleu", "chrf"]
    out = subprocess.run([*cli, "-b"], capture_output=True, text=True, check=True)
    expected = json.loads(out.stdout)
    got = [round(result["metrics"]["bleu"], 1), round(result["metrics"]["chrf"], 1)]
    assert got == expected and expected[1] > 0


# --------------------------------------------------------------------------- draft


class TestDraftConformance(TaskConformance):
    """The kit with a draft in the prompt: the dictionary is learned in ``prepare`` and kept
    in the task checkpoint (the round trip must translate the same), and the pointer copies."""

    task_class = TranslationTask
    train_examples = toy_pairs()
    options = {"decoding": "greedy", "draft": "ibm1-words", "pointer": True}
    lr = 1e-2


def draft_task(tok: Tokenizer) -> TranslationTask:
    return TranslationTask({"max_length": 48, "decoding": "greedy", "draft": "ibm1-words"}, tok)


def test_draft_is_the_word_translation_learned_from_training_pairs_only(tok: Tokenizer) -> None:
    task = draft_task(tok)
    train = [task.parse_example(p) for p in toy_pairs()[:28]]
    task.prepare(train)
    # every word of the toy language maps to one word: IBM Model 1 recovers the lexicon (the
    # full stop, in every pair, is as likely aligned to "el", in every pair too)
    assert set(task.lexicon) == {w for p in toy_pairs()[:28] for w in p["source"].split()}
    assert {w: t for w, t in task.lexicon.items() if w != "."} == {
        w: LEXICON[w] for w in task.lexicon if w != "."
    }
    assert task.draft("the dog likes a ball").startswith("El perro quiere un balón")
    unseen = task.draft("the zebra eats")  # a word never seen in training passes through
    assert unseen == "El zebra come"
    # what a test pair's draft knows comes from the training pairs: a word only in held-out
    # pairs is never in the dictionary
    held_out = TranslationTask({"decoding": "greedy", "draft": "ibm1-words"}, tok)
    held_out.prepare([task.parse_example(p) for p in toy_pairs() if "bird" not in p["source"]])
    assert "bird" not in held_out.lexicon and "a" in held_out.lexicon


def test_draft_prompt_encoding_and_pretraining_documents_agree(tok: Tokenizer) -> None:
    task = draft_task(tok)
    task.check_backbone(micro_gpt(tok))
    train = [task.parse_example(p) for p in toy_pairs()[:28]]
    ex = train[0]
    # pretrain_documents learns the dictionary itself from the examples it is given
    docs = list(task.pretrain_documents(train))
    assert task.lexicon is not None and len(docs) == 28
    # draft and target with a space after <sep>: each first word the token it is mid-sentence
    assert docs[0] == f"{ex.source}<sep> {task.draft(ex.source)}<sep> {ex.target}"
    (feature,) = task.encode(ex, train=True)
    drafted = tok.encode(" " + task.draft(ex.source))
    prompt = [*tok.encode(ex.source), tok.sep_id, *drafted, tok.sep_id]
    assert feature["input_ids"][: len(prompt)] == prompt
    assert feature["prompt_length"] == len(prompt)
    # the document is the training sequence (the corpus adds <eos>)
    assert [*tok.encode(docs[0]), tok.eos_id] == feature["input_ids"]
    # the loss covers the target only, not the draft
    labels = feature["labels"]
    assert set(labels[: len(prompt) - 1]) == {IGNORE}
    assert labels[len(prompt) - 1] == tok.encode(" " + ex.target)[0]


def test_draft_prompt_is_cut_longest_first_to_the_budget(tok: Tokenizer) -> None:
    task = TranslationTask({"max_length": 48, "draft": "ibm1-words", "max_source_tokens": 9}, tok)
    task.check_backbone(micro_gpt(tok))
    task.prepare([task.parse_example(p) for p in toy_pairs()])
    long = task.parse_example({"source": "the cat sees the fish and the dog eats the bread ."})
    prompt = task.prompt_ids(long)
    assert len(prompt) == 9 + 1 and prompt.count(tok.sep_id) == 2 and prompt[-1] == tok.sep_id
    source, drafted = prompt[: prompt.index(tok.sep_id)], prompt[prompt.index(tok.sep_id) + 1 : -1]
    assert abs(len(source) - len(drafted)) <= 1  # both cut, the longer first


def test_draft_without_a_dictionary_is_a_clear_error(tok: Tokenizer) -> None:
    task = draft_task(tok)
    task.check_backbone(micro_gpt(tok))
    with pytest.raises(PlugformerError, match="needs its dictionary"):
        task.encode(task.parse_example(toy_pairs()[0]), train=True)
