"""``news-headlines`` on articles given by a fake ``load_split``."""

from __future__ import annotations

import pytest

from plugformer.data.recipes import split_of
from plugformer.errors import DataError
from plugformer_generation.datasets import RECIPES, headline_example, leading_words

RECIPE = RECIPES[0]


def test_leading_words_cut_at_a_word_boundary() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    assert leading_words(text, 60) == " ".join(f"w{i}" for i in range(60))
    assert leading_words("  short\n text  ", 60) == "short text"


def test_headline_example() -> None:
    article = {"id": 3, "title": " Big  news ", "subtitle": "", "text": "A b c. " * 50}
    example = headline_example(article)
    assert example == {
        "id": "3",
        "article_id": "3",
        "prompt": " ".join(("A b c. " * 20).split()),
        "completion": "Big news",
    }
    assert len(example["prompt"].split()) == 60
    assert headline_example({**article, "text": " "}) is None
    assert headline_example({**article, "title": ""}) is None


def _articles() -> list[dict]:
    return [
        {"id": str(i), "title": f"Title {i}", "subtitle": "", "text": f"Body {i}.", "date": ""}
        for i in range(1, 31)
    ] + [{"id": "99", "title": "No body", "subtitle": "", "text": "", "date": ""}]


def test_parser_uses_parent_splits(monkeypatch: pytest.MonkeyPatch) -> None:
    import plugformer.data.cache as cache

    articles = _articles()
    calls = []

    def fake_load_split(name: str, split: str, **kwargs) -> list[dict]:
        calls.append((name, split))
        return [a for a in articles if split_of(a["id"]) == split]

    monkeypatch.setattr(cache, "load_split", fake_load_split)
    examples = list(RECIPE.parse([]))
    assert calls == [("news-2017-en", s) for s in ("train", "validation", "test")]
    assert sorted(int(e["id"]) for e in examples) == list(range(1, 31))
    for e in examples:
        assert split_of(RECIPE.split_key(e), RECIPE.fractions) == split_of(e["article_id"])
    assert RECIPE.depends == ("news-2017-en",) and RECIPE.sources == ()


def test_parser_refuses_a_split_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    import plugformer.data.cache as cache

    articles = _articles()
    monkeypatch.setattr(cache, "load_split", lambda name, split, **kw: articles)
    with pytest.raises(DataError, match="fractions differ"):
        list(RECIPE.parse([]))


@pytest.mark.network
@pytest.mark.slow
def test_real_download(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from plugformer.data.cache import get_dataset

    monkeypatch.setenv("PLUGFORMER_HOME", str(tmp_path))
    info = get_dataset(RECIPE, progress=False)
    assert info.counts == {"train": 3044, "validation": 332, "test": 353}
    assert sum(info.counts.values()) == RECIPE.expected_count
