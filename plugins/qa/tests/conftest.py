"""Shared by the QA task's tests: synthetic passages, a BPE trained on them, a micro GPT,
and the batches the core's evaluation loader would give.

The passages are learnable by a micro model (the answer always follows the cue "the code
is"); the micro GPT has one layer, width 16, 32 positions, so every test takes seconds on a
CPU. Test modules import the helpers from here (``from plugins.qa.tests.conftest import
...``, as the core's tests import ``tests.conftest``); pytest provides the ``tokenizer``
fixture.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch

from plugformer.config import ModelConfig
from plugformer.models.gpt import GPT
from plugformer.tokenizer import train_tokenizer
from plugformer_qa.task import QAExample, QATask

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
