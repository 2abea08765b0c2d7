"""Shared fixtures: an isolated $PLUGFORMER_HOME, quiet progress bars, a fresh plugin manager,
a tiny real-text corpus with a micro backbone checkpoint built from it, and a byte-level
tokenizer trained on a dozen short sentences."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from plugformer import threads as threads_module

os.environ.setdefault("PLUGFORMER_PROGRESS", "0")
# Bit-exact resume tests compare runs started at different moments: keep torch's thread
# count whatever else the machine is doing (the CLI's "auto" adapts to the load).
os.environ.setdefault("PLUGFORMER_THREADS", "default")

# A few paragraphs of real English prose (public domain: the opening of Jane Austen's
# "Pride and Prejudice", 1813) — enough for a tokenizer and a few dozen training steps.
AUSTEN = """It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.

However little known the feelings or views of such a man may be on his first entering a neighbourhood, this truth is so well fixed in the minds of the surrounding families, that he is considered the rightful property of some one or other of their daughters.

"My dear Mr. Bennet," said his lady to him one day, "have you heard that Netherfield Park is let at last?"

Mr. Bennet replied that he had not.

"But it is," returned she; "for Mrs. Long has just been here, and she told me all about it."

Mr. Bennet made no answer.

"Do you not want to know who has taken it?" cried his wife impatiently.

"You want to tell me, and I have no objection to hearing it."

This was invitation enough.

"Why, my dear, you must know, Mrs. Long says that Netherfield is taken by a young man of large fortune from the north of England; that he came down on Monday in a chaise and four to see the place, and was so much delighted with it, that he agreed with Mr. Morris immediately; that he is to take possession before Michaelmas, and some of his servants are to be in the house by the end of next week."

"What is his name?"

"Bingley."

"Is he married or single?"

"Oh! Single, my dear, to be sure! A single man of large fortune; four or five thousand a year. What a fine thing for our girls!"

"How so? How can it affect them?"

"My dear Mr. Bennet," replied his wife, "how can you be so tiresome! You must know that I am thinking of his marrying one of them."

"Is that his design in settling here?"

"Design! Nonsense, how can you talk so! But it is very likely that he may fall in love with one of them, and therefore you must visit him as soon as he comes."
"""


@pytest.fixture(autouse=True)
def _isolated(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
):
    """Each test gets its own cache home and a plugin manager rebuilt from scratch.

    Tests marked ``network`` share the user's real cache ($PLUGFORMER_HOME or
    ~/.cache/plugformer), so each real dataset is downloaded once per machine.
    """
    from plugformer import plugins

    if request.node.get_closest_marker("network") is None:
        monkeypatch.setenv("PLUGFORMER_HOME", str(tmp_path_factory.mktemp("home")))
    plugins.reset()
    plugins.set_strict(False)
    # The CLI run in-process with --threads N sets OMP_NUM_THREADS and torch's thread count for
    # the rest of the process: every later test would then run (and round) on N threads.
    omp = os.environ.get("OMP_NUM_THREADS")
    auto = threads_module._auto  # an in-process --threads auto makes later fits re-pick
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch is not None else None
    yield
    plugins.reset()
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = omp
    if threads is not None:
        sys.modules["torch"].set_num_threads(threads)
    threads_module._auto = auto


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "austen.txt"
    path.write_text(AUSTEN * 4, encoding="utf-8")
    return path


# Twelve short sentences: what the `tok` fixture's tokenizer is trained on.
TEXTS = [
    f"the film was {w} and the plot was {v} indeed"
    for w in ("good", "bad", "fine", "odd")
    for v in ("thin", "rich", "dull")
]


@pytest.fixture(scope="module")
def tok() -> Any:
    from plugformer.tokenizer import train_tokenizer

    return train_tokenizer(TEXTS * 4, vocab_size=300, min_frequency=1)


def micro_config(corpus: Path, out: Path, **trainer: object) -> dict:
    """A pretraining config (as a dict) for a ~20k-parameter model on the test corpus."""
    return {
        "model": {"n_layers": 2, "d_model": 32, "n_heads": 2, "max_seq_len": 32},
        "tokenizer": {"vocab_size": 320, "min_frequency": 2},
        "data": {"corpus": [str(corpus)], "val_fraction": 0.15},
        "optim": {"lr": 1e-2, "warmup_steps": 5},
        "trainer": {
            "max_steps": 30,
            "batch_size": 8,
            "val_every": 10,
            "val_batches": 2,
            "checkpoint_every": 10,
            "progress": False,
            "log_every": 1,
            **trainer,
        },
        "out_dir": str(out),
    }


@pytest.fixture(scope="session")
def micro_checkpoint(tmp_path_factory: pytest.TempPathFactory, corpus_file: Path) -> Path:
    """A pretrained micro backbone checkpoint (built once per session)."""
    from plugformer.config import PretrainConfig, parse_model
    from plugformer.training.pretrain import pretrain

    out = tmp_path_factory.mktemp("micro_pretrain")
    old = os.environ.get("PLUGFORMER_HOME")
    os.environ["PLUGFORMER_HOME"] = str(out / "home")
    try:
        summary = pretrain(parse_model(PretrainConfig, micro_config(corpus_file, out / "run")))
    finally:
        if old is None:
            os.environ.pop("PLUGFORMER_HOME", None)
        else:
            os.environ["PLUGFORMER_HOME"] = old
    return Path(summary["checkpoint"])
