"""Task building blocks: a pair-classification (NLI) task in a few lines passes the conformance
kit; the tagging, span and conditional-generation bases pass it too; the shared pieces."""

from __future__ import annotations

import pytest

from plugformer.blocks import (
    ClassificationTask,
    ConditionalGenerationTask,
    SpanSelectionTask,
    TaggingTask,
    bio_spans,
    truncate_longest_first,
)
from plugformer.testing import TaskConformance

NLI_ROWS = [
    ("a man plays a guitar", "a man plays music", "entailment"),
    ("a woman reads a book", "a woman is reading", "entailment"),
    ("two dogs run in a field", "animals are running", "entailment"),
    ("a man plays a guitar", "a man is asleep", "contradiction"),
    ("a woman reads a book", "the woman is swimming", "contradiction"),
    ("two dogs run in a field", "the dogs sleep indoors", "contradiction"),
    ("a man plays a guitar", "he plays for his friends", "neutral"),
    ("a woman reads a book", "the book is about cats", "neutral"),
    ("two dogs run in a field", "the dogs are brothers", "neutral"),
]


class NLITask(ClassificationTask):
    name = "nli-test"
    text_fields = ("premise", "hypothesis")


class TestNLITask(TaskConformance):
    task_class = NLITask
    register_in_process = True
    train_examples = [{"premise": p, "hypothesis": h, "label": lab} for p, h, lab in NLI_ROWS] * 3
    train_steps = 60


class Tagger(TaggingTask):
    name = "tagger-test"


class TestTaggingBase(TaskConformance):
    task_class = Tagger
    register_in_process = True
    train_examples = [
        {
            "tokens": ["Mr.", "Bennet", "replied", "to", "Lizzy"],
            "tags": ["O", "B-PER", "O", "O", "B-PER"],
        },
        {"tokens": ["Lizzy", "went", "to", "Longbourn"], "tags": ["B-PER", "O", "O", "B-LOC"]},
        {
            "tokens": ["Mrs.", "Long", "came", "to", "Netherfield", "Park"],
            "tags": ["O", "B-PER", "O", "O", "B-LOC", "I-LOC"],
        },
    ] * 6
    keep_short = ("id",)


class Reader(SpanSelectionTask):
    name = "reader-test"


_CTX = "The house was let at last. It was taken by {} on Monday."


class TestSpanBase(TaskConformance):
    task_class = Reader
    register_in_process = True
    train_examples = [
        {"question": "Who took the house?", "context": _CTX.format(n), "answer": n}
        for n in ["Bingley", "Darcy", "Bennet", "Lucas"] * 4
    ]


class Echo(ConditionalGenerationTask):
    name = "echo-test"
    source_field, target_field, output_key = "source", "target", "echo"


class TestConditionalGenerationBase(TaskConformance):
    task_class = Echo
    register_in_process = True
    train_examples = [
        {"source": s, "target": t}
        for s, t in [("the house", "la casa"), ("the dog", "el perro"), ("a cat", "un gato")] * 6
    ]
    options = {"max_new_tokens": 6}


def test_longest_first_truncation_keeps_the_short_field() -> None:
    a, b = truncate_longest_first([list(range(30)), [1, 2, 3]], 10)
    assert (len(a), b) == (7, [1, 2, 3])
    assert [len(s) for s in truncate_longest_first([[0] * 6, [0] * 6], 8)] == [4, 4]


def test_a_generated_part_gets_its_in_sentence_first_word_whatever_the_tokenizer() -> None:
    """after_sep: a byte-level BPE needs a space before the text (``Ġcat``, as inside a
    sentence); a SentencePiece-style tokenizer (Llama's: every space becomes ``▁``, one more
    prepended) marks word starts itself, and a space there would add a stray ``▁`` token."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    from plugformer.blocks.encoding import after_sep

    class Wrapped:  # the one method after_sep uses, as plugformer's tokenizers have it
        def __init__(self, sentencepiece: bool) -> None:
            self.hf = Tokenizer(models.BPE(unk_token="[UNK]"))
            alphabet = []
            if sentencepiece:
                self.hf.normalizer = normalizers.Sequence(
                    [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
                )
                self.hf.pre_tokenizer = pre_tokenizers.Split("▁", "merged_with_next")
            else:
                self.hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
                alphabet = pre_tokenizers.ByteLevel.alphabet()
            trainer = trainers.BpeTrainer(
                vocab_size=200, special_tokens=["[UNK]"], initial_alphabet=alphabet
            )
            self.hf.train_from_iterator(["the cat sat on the mat", "a cat and a hat"] * 20, trainer)

        def encode(self, text: str) -> list[int]:
            return self.hf.encode(text, add_special_tokens=False).ids

    for tok in (Wrapped(sentencepiece=False), Wrapped(sentencepiece=True)):
        inside = tok.encode("the cat")[len(tok.encode("the")) :]  # "cat" inside a sentence
        assert after_sep(tok, "cat") == inside
        # the naive forms each give the other tokenizer's mistake
        assert {tuple(tok.encode("cat")), tuple(tok.encode(" cat"))} - {tuple(inside)}


def test_bio_spans() -> None:
    assert bio_spans(["B-PER", "I-PER", "O", "B-LOC"]) == {(0, 2, "PER"), (3, 4, "LOC")}
    assert bio_spans(["I-PER", "B-PER"]) == {(0, 1, "PER"), (1, 2, "PER")}


def test_nli_task_is_at_most_forty_lines() -> None:
    import inspect

    lines = [ln for ln in inspect.getsource(NLITask).splitlines() if ln.strip()]
    assert len(lines) <= 40


def test_pair_input_needs_every_field() -> None:
    from plugformer.errors import DataError

    with pytest.raises(DataError, match="premise") as err:
        NLITask({}, None).example_from_input("only one text")
    assert "a dict in Python" in str(err.value)  # Predictor.predict is Python, not the CLI


def test_a_row_without_a_label_is_named_by_file_and_line(tmp_path) -> None:
    """Before: the classification base's examples had no ``_where``, so the error named no row."""
    from plugformer.errors import DataError

    data = tmp_path / "train.csv"
    data.write_text(
        "premise,hypothesis,lab\na man runs,he moves,entailment\na man runs,he sits,contradiction\n",
        encoding="utf-8",
    )
    task = NLITask({}, None)
    with pytest.raises(DataError, match=r"train\.csv:2: no label"):
        task.prepare(task.read_file(data))
    # ... and says how to map a label column of another name (the file's is "lab").
    with pytest.raises(DataError, match=r"in the field 'label'.*options\.columns\.label=COLUMN"):
        task.prepare(task.read_file(data))
    task = NLITask({"columns": {"label": "lab"}}, None)
    task.prepare(task.read_file(data))  # the hint works
    assert task.labels == ["contradiction", "entailment"]


def test_bad_rows_of_every_base_are_named_by_file_and_line(tmp_path) -> None:
    """Before: a tagging row without tags said "every training example needs tags", and the
    span and generation bases said "example None: ..." (no id column), naming no row."""
    import json

    from plugformer.errors import DataError

    def rows(name: str, *items: dict) -> object:
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
        return path

    tagger = Tagger({}, None)
    data = rows("tags.jsonl", {"tokens": ["a"], "tags": ["O"]}, {"tokens": ["b"]})
    with pytest.raises(DataError, match=r"tags\.jsonl:2: no tags"):
        tagger.prepare(tagger.read_file(data))
    # A file whose tag column has another name (Hugging Face's ner_tags) is told how to map it.
    data = rows("ner.jsonl", {"tokens": ["Bob"], "ner_tags": ["B-PER"]})
    with pytest.raises(DataError, match=r"ner\.jsonl:1: no tags.*options\.columns\.tags=COLUMN"):
        tagger.prepare(tagger.read_file(data))
    fixed = Tagger({"labels": ["O"]}, None)
    data = rows(
        "labels.jsonl", {"tokens": ["a"], "tags": ["O"]}, {"tokens": ["b"], "tags": ["B-X"]}
    )
    with pytest.raises(DataError, match=r"labels\.jsonl:2: training labels \['B-X'\]"):
        fixed.prepare(fixed.read_file(data))
    from plugformer.tokenizer import train_tokenizer

    tok = train_tokenizer(["a question about a context and its answer"] * 20, vocab_size=300)
    span = Reader({"max_length": 64}, tok)
    (ex,) = span.read_file(rows("span.jsonl", {"question": "q", "context": "c", "answer": "x"}))
    with pytest.raises(DataError, match=r"span\.jsonl:1: answer 'x' is not in its context"):
        span.encode(ex, train=True)
    gen = Echo({"max_length": 64}, tok)
    (ex,) = gen.read_file(rows("gen.jsonl", {"source": "s"}))
    with pytest.raises(DataError, match=r"gen\.jsonl:1: no target to train on"):
        gen.encode(ex, train=True)


def test_a_label_override_at_load_time_is_refused(tmp_path) -> None:
    """Before: ``predict --option labels=[...]`` was accepted and silently ignored (the trained
    head's label set comes from the checkpoint)."""
    from plugformer.checkpoint import _check_option_overrides
    from plugformer.errors import ConfigError

    with pytest.raises(ConfigError, match="option 'labels' cannot change at load time"):
        _check_option_overrides(tmp_path, NLITask, {}, {"labels": ["a", "b", "c", "d"]})
    _check_option_overrides(tmp_path, NLITask, {}, {"dropout": 0.0})  # others still may


class Paraphrase(ClassificationTask):
    name = "paraphrase-test"
    text_fields = ("sentence1", "sentence2")
    default_metrics = ("accuracy", "macro_f1")
    main_metric = "macro_f1"


def test_a_subclass_chooses_its_main_metric_and_default_metrics() -> None:
    """Before: ``ClassificationTask.__init__`` replaced a subclass's ``main_metric`` by the first
    of ``options.metrics`` (always ``accuracy`` by default), silently, and a subclass could only
    drop MCC by redeclaring the ``metrics`` option with its ``Literal`` type."""
    from plugformer.errors import ConfigError

    task = Paraphrase({}, None)
    assert task.main_metric == "macro_f1"
    assert set(task.metric_info()) - {"_task"} == {"accuracy", "macro_f1"}
    # What a checkpoint stores (every option dumped) gives the same task back.
    assert Paraphrase(task.options.model_dump(), None).main_metric == "macro_f1"
    # Options still decide when they list metrics or name the main one.
    assert Paraphrase({"metrics": ["accuracy", "mcc"]}, None).main_metric == "accuracy"
    assert Paraphrase({"main_metric": "accuracy"}, None).main_metric == "accuracy"
    assert NLITask({}, None).main_metric == "accuracy"
    assert NLITask({"metrics": ["macro_f1", "accuracy"]}, None).main_metric == "macro_f1"
    with pytest.raises(ConfigError, match="main_metric 'mcc' is not one of its metrics"):
        Paraphrase({"main_metric": "mcc"}, None)

    class OwnF1(Paraphrase):  # a metric of its own, added to the base's
        main_metric = "f1"

        def metrics(self) -> dict:
            from torchmetrics.classification import BinaryF1Score

            return {**super().metrics(), "f1": BinaryF1Score()}

    own = OwnF1({}, None)
    own.prepare([own.parse_example({"sentence1": "a", "sentence2": "b", "label": x}) for x in "ab"])
    assert own.main_metric == "f1" and set(own.metrics()) == {"accuracy", "macro_f1", "f1"}


def test_the_plugin_guides_worked_example_runs() -> None:
    """docs/plugins.md's worked example (a pair task with its own metrics, a tagger reading
    ``ner_tags``) is the code it shows."""
    import re
    from pathlib import Path

    guide = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    section = guide.split("### A worked example", 1)[1].split("\n### ", 1)[0]
    scope: dict = {}
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
        exec(block, scope)
    task = scope["ParaphraseTask"]({}, None)
    assert task.main_metric == "macro_f1" and set(task.metric_names) == {"accuracy", "macro_f1"}
    assert "plugformer.blocks.tagging" not in section  # its pieces come from plugformer.blocks
    ner = scope["NerTask"]({}, None)
    assert ner.parse_example({"tokens": ["Bob"], "ner_tags": ["B-PER"]}).tags == ["B-PER"]


def test_read_rows_gives_the_kit_a_fixture_files_rows(tmp_path) -> None:
    """Before: each plugin's test module wrote its own JSONL loop to feed fixture rows to
    ``TaskConformance.train_examples``."""
    from plugformer.testing import read_rows

    (tmp_path / "train.jsonl").write_text(
        '{"tokens": ["Bob", "ran"], "tags": ["B-PER", "O"]}\n\n{"tokens": ["x"], "tags": ["O"]}\n',
        encoding="utf-8",
    )
    rows = read_rows(tmp_path / "train.jsonl")
    assert rows == [
        {"tokens": ["Bob", "ran"], "tags": ["B-PER", "O"]},
        {"tokens": ["x"], "tags": ["O"]},
    ]
    (tmp_path / "pairs.csv").write_text("premise,hypothesis,label\na,b,entailment\n", "utf-8")
    task = NLITask({}, None)
    assert [task.parse_example(r).label for r in read_rows(tmp_path / "pairs.csv")] == [
        "entailment"
    ]


class TestLabelWordsHead(TaskConformance):
    """The classification base with ``head = "label_words"`` passes the kit too."""

    task_class = NLITask
    register_in_process = True
    train_examples = TestNLITask.train_examples
    train_steps = 60
    options = {"head": "label_words"}


def _nli(options: dict, rows=NLI_ROWS):
    from plugformer.testing import micro_backbone, tokenizer_for

    examples = [{"premise": p, "hypothesis": h, "label": lab} for p, h, lab in rows]
    tok = tokenizer_for(examples)
    task = NLITask(options, tok)
    task.prepare([task.parse_example(e, "<test>") for e in examples])
    backbone = micro_backbone(tok)
    task.check_backbone(backbone.model)
    return task, tok, backbone.model, examples


def test_label_words_head_starts_as_the_lm_predicting_the_label_after_sep() -> None:
    """The input is ``premise <sep> hypothesis <sep>`` (the pretraining document up to its
    label), and at step 0 the classifier's logits are the LM head's logits, at that last
    <sep>, of each label's first token as ``pretrain_documents`` writes it."""
    import torch

    from plugformer.tasks import SEP

    task, tok, model, examples = _nli({"head": "label_words"})
    head = task.build_head(model).eval()
    parsed = [task.parse_example(e, "<test>") for e in examples[:4]]
    feats = [f for ex in parsed for f in task.encode(ex, train=True)]
    assert all(f["input_ids"][-1] == tok.sep_id for f in feats)
    doc = next(iter(task.pretrain_documents(parsed[:1])))
    assert tok.encode(doc)[: len(feats[0]["input_ids"])] == feats[0]["input_ids"]
    batch = task.collate(feats)
    model.eval()
    with torch.no_grad():
        hidden = model(batch["input_ids"], batch["attention_mask"])  # (B, T, C)
        last = batch["attention_mask"].sum(1) - 1  # (B,)
        lm = model.lm_logits(hidden)[torch.arange(len(feats)), last]  # (B, V)
        ids = [tok.encode(f"{SEP}{name}")[1] for name in task.labels]
        torch.testing.assert_close(head(hidden, batch), lm[:, ids], rtol=1e-4, atol=1e-5)


def test_label_words_head_refuses_what_it_cannot_read() -> None:
    from plugformer.errors import ConfigError, PlugformerError
    from plugformer.testing import micro_backbone

    with pytest.raises(ConfigError, match="pooling must be"):
        NLITask({"head": "label_words", "pooling": "mean"})
    rows = [("a b", "c d", "yes please"), ("e f", "g h", "yes thanks")]
    task, _, model, _ = _nli({"head": "label_words"}, rows)
    with pytest.raises(ConfigError, match="first tokens differ"):
        task.build_head(model)
    task, tok, _, _ = _nli({"head": "label_words"})
    with pytest.raises(PlugformerError, match="causal"):
        task.check_backbone(micro_backbone(tok, causal=False).model)
