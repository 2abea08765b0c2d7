"""Extractive targets: the oracle compression of a reference by its prompt."""

from __future__ import annotations

from typing import Any

from plugformer.tokenizer import train_tokenizer
from plugformer_generation.extractive import oracle_compression
from plugformer_generation.task import GenerationTask


def test_the_oracle_is_the_prompts_words_that_the_reference_keeps_in_order() -> None:
    article = 'First lady Melania Trump said, "it could mean millions" for her brand.'
    headline = "Melania Trump Says White House Could Mean Millions for Brand"
    assert oracle_compression(article, headline) == "Melania Trump could mean millions for brand"
    assert oracle_compression("the cat sat", "Dogs bark") == ""
    assert oracle_compression("a b a b", "b a") == "b a"  # the earliest match of each word


def _task(tokenizer: Any) -> GenerationTask:
    return GenerationTask({"max_length": 48, "extractive": True}, tokenizer)


def test_extractive_training_targets_are_oracles_and_references_still_score() -> None:
    tok = train_tokenizer(["the cat sat on the mat", "a dog barks at the cat"] * 20, vocab_size=80)
    task = _task(tok)
    ex = task.parse_example({"prompt": "the cat sat on the mat", "completion": "Cat Sat Down"})
    [train] = task.encode(ex, train=True)
    target = [t for t in train["labels"] if t != -100][:-1]  # without <eos>
    assert tok.decode(target).strip() == "cat sat"
    [scored] = task.encode(ex, train=False)  # evaluation scores the reference itself
    assert tok.decode([t for t in scored["labels"] if t != -100][:-1]).strip() == "Cat Sat Down"
    none = task.parse_example({"prompt": "the cat sat", "completion": "Dogs bark"})
    assert task.encode(none, train=True) == []  # nothing to keep: not trained on
