"""Task-aware pretraining: task documents mixed into the corpus at their token shares, from
training splits only, with provenance in the checkpoint manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from plugformer.config import PretrainConfig, parse_model
from plugformer.errors import PlugformerError

from .conftest import micro_config

ADJ = {"positive": ["wonderful", "superb", "lovely"], "negative": ["dreadful", "tedious", "dull"]}


def _write_sentiment(root: Path) -> Path:
    """A sentiment spec over three files whose splits carry their own marker word."""
    for split, n in (("train", 60), ("validation", 12), ("test", 12)):
        rows = []
        for i in range(n):
            label = "positive" if i % 2 else "negative"
            rows.append({"text": f"{split}marker a {ADJ[label][i % 3]} film {i}", "label": label})
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = root / "reviews.toml"
    spec.write_text(
        'task = "sentiment"\nname = "reviews"\n\n[data]\n'
        + "".join(f'{s} = "{root / s}.jsonl"\n' for s in ("train", "validation", "test"))
    )
    return spec


def _write_translation(root: Path) -> Path:
    rows = [{"source": f"the house {i}", "target": f"la casa {i}"} for i in range(40)]
    (root / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = root / "pairs.toml"
    spec.write_text(
        f'task = "translation"\nname = "pairs"\n\n[data]\ntrain = "{root}/pairs.jsonl"\n'
    )
    return spec


def _pretrain(tmp_path: Path, corpus_file: Path, tasks: list[dict]) -> dict:
    from plugformer.training.pretrain import pretrain

    raw = micro_config(corpus_file, tmp_path / "run", max_steps=2)
    raw["data"]["tasks"] = tasks
    return pretrain(parse_model(PretrainConfig, raw))


def test_token_shares_match_the_config_and_the_manifest_says_what_went_in(
    tmp_path: Path, corpus_file: Path
) -> None:
    sentiment, translation = _write_sentiment(tmp_path), _write_translation(tmp_path)
    tasks = [{"spec": str(sentiment), "share": 0.25}, {"spec": str(translation), "share": 0.1}]
    summary = _pretrain(tmp_path, corpus_file, tasks)
    mix = summary["mixture"]
    assert set(mix) == {"text", "task:reviews", "task:pairs"}
    assert abs(mix["task:reviews"]["share"] - 0.25) <= 0.02
    assert abs(mix["task:pairs"]["share"] - 0.10) <= 0.02
    assert abs(mix["text"]["share"] - 0.65) <= 0.02
    assert mix["task:reviews"]["split"] == "train" and mix["task:reviews"]["examples"] == 60
    assert mix["task:pairs"]["task"] == "translation"
    manifest = json.loads((Path(summary["checkpoint"]) / "plugformer.json").read_text())
    assert manifest["mixture"] == json.loads(json.dumps(mix))
    assert [t["spec"] for t in manifest["tasks"]] == [str(sentiment), str(translation)]
    total = sum(m["tokens"] for m in mix.values())
    assert total == summary["train_tokens"]


def test_task_documents_are_packed_whole_into_blocks() -> None:
    """Training reads blocks on a fixed grid: a document that crosses a grid line is cut in
    two (a translation's target from its source). Packed, each starts at a block or right
    after another in the same block, one that fits is never cut, a longer one starts at a
    block; text fills the gaps and every text token still appears once, in order."""
    from plugformer.data.mixture import _pack, _packed

    rng = np.random.default_rng(0)
    block = 32
    lengths = [*rng.integers(3, 33, 60).tolist(), 70, 32, 5]
    docs = [np.full(n, 1000 + k) for k, n in enumerate(lengths)]
    text = np.arange(900)
    stream = _packed(text, docs, _pack(docs, block))
    assert stream.size == text.size + sum(lengths)
    for k, n in enumerate(lengths):
        (at,) = np.nonzero(stream == 1000 + k)
        assert at.size == n and at[-1] - at[0] == n - 1  # whole and in one piece
        if n <= block:
            assert at[0] // block == at[-1] // block, f"document {k} ({n} tokens) is cut"
        else:
            assert at[0] % block == 0
    assert np.array_equal(stream[stream < 1000], text)
    # a corpus too small to fill the gaps is read again from its start
    small = _packed(np.arange(5), docs[:3], _pack(docs[:3], block))
    assert small.size % block == 0 and set(small[small < 1000].tolist()) <= set(range(5))


def test_only_training_examples_reach_the_corpus(tmp_path: Path, corpus_file: Path) -> None:
    from plugformer.tokenizer import Tokenizer

    spec = _write_sentiment(tmp_path)
    summary = _pretrain(tmp_path, corpus_file, [{"spec": str(spec), "share": 0.3}])
    tok = Tokenizer.from_file(Path(summary["checkpoint"]) / "tokenizer.json")
    home = Path(os.environ["PLUGFORMER_HOME"])
    (cache,) = [p for p in (home / "tokens").iterdir() if p.name.startswith("mix-")]
    meta = json.loads((cache / "meta.json").read_text())
    train = np.fromfile(cache / "train.bin", dtype=meta["dtype"])
    val = np.fromfile(cache / "val.bin", dtype=meta["dtype"])
    text = tok.decode(train.tolist())
    assert "trainmarker" in text
    for held_out in ("validationmarker", "testmarker"):
        assert held_out not in text and held_out not in tok.decode(val.tolist())
    # task documents train, they never enter the held-out stream
    assert "trainmarker" not in tok.decode(val.tolist())


def test_a_spec_s_relative_data_paths_resolve_against_the_spec_file(
    tmp_path: Path, corpus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ``plugformer finetune`` reads them. Before: 'data/pairs.jsonl: no such file' unless
    the working directory happened to be the spec's."""
    (tmp_path / "spec" / "data").mkdir(parents=True)
    rows = [{"source": f"the house {i}", "target": f"la casa {i}"} for i in range(40)]
    data = tmp_path / "spec" / "data" / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tmp_path / "spec" / "pairs.toml"
    spec.write_text('task = "translation"\n\n[data]\ntrain = "data/pairs.jsonl"\n')
    monkeypatch.chdir(tmp_path)  # not the spec's directory
    summary = _pretrain(tmp_path, corpus_file, [{"spec": str(spec), "share": 0.2}])
    assert summary["mixture"]["task:pairs"]["examples"] == 40


def test_documents_that_are_not_strings_name_the_task(
    tmp_path: Path, corpus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: AttributeError: 'tuple' object has no attribute 'encode'."""
    from plugformer_translation.task import TranslationTask

    def pairs(self, examples):  # a plugin author's mistake: (source, target) tuples
        return ((e.source, e.target) for e in examples)

    monkeypatch.setattr(TranslationTask, "pretrain_documents", pairs)
    spec = _write_translation(tmp_path)
    with pytest.raises(PlugformerError) as err:
        _pretrain(tmp_path, corpus_file, [{"spec": str(spec), "share": 0.2}])
    message = str(err.value)
    assert str(spec) in message and "'translation'" in message
    assert "yielded a tuple, expected str" in message


def test_a_task_that_makes_no_documents_is_refused(tmp_path: Path, corpus_file: Path) -> None:
    from plugformer.tasks import Task

    class Quiet(Task):
        name = "quiet"

    with pytest.raises(PlugformerError, match="does not make pretraining documents"):
        Quiet().pretrain_documents([])


def test_shares_must_leave_room_for_text(corpus_file: Path, tmp_path: Path) -> None:
    from plugformer.errors import ConfigError

    raw = micro_config(corpus_file, tmp_path)
    raw["data"]["tasks"] = [{"spec": "a.toml", "share": 0.6}, {"spec": "b.toml", "share": 0.5}]
    with pytest.raises(ConfigError, match=r"shares add up to 1\.1"):
        parse_model(PretrainConfig, raw)


def test_separator_in_documents_is_the_sep_token(corpus_file: Path) -> None:
    from plugformer.tasks import SEP
    from plugformer.tokenizer import train_tokenizer

    tok = train_tokenizer([corpus_file.read_text()], vocab_size=300, min_frequency=2)
    ids = tok.encode(f"the house{SEP}la casa")
    assert ids == [*tok.encode("the house"), tok.sep_id, *tok.encode("la casa")]
