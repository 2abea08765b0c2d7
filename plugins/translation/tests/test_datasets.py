"""The Bible verse-pair recipes, on small fake modules (``read_ztext`` monkeypatched)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from plugformer.data.recipes import split_of
from plugformer_translation.datasets import RECIPES, aligned_keys, name_stems, verse_pairs


def _recipe(name: str):
    return next(r for r in RECIPES if r.name == name)


def _texts(seed: int = 0) -> tuple[dict[str, str], dict[str, str]]:
    """Two aligned fake texts: 3 books x 2 chapters x 12 verses of varied length."""
    rng = random.Random(seed)
    en: dict[str, str] = {}
    es: dict[str, str] = {}
    for book in ("Gen", "Exod", "Matt"):
        for chapter in (1, 2):
            for verse in range(1, 13):
                key = f"{book}.{chapter}.{verse}"
                n = rng.choice([3, 5, 8, 12, 20, 30, 45])
                en[key] = " ".join(["word"] * n) + "."
                m = max(1, round(n * rng.uniform(0.85, 1.15)))
                es[key] = " ".join(["palabra"[:4]] * m) + "."
    return en, es


def test_aligned_texts_keep_every_shared_key() -> None:
    en, es = _texts()
    del es["Gen.1.5"]  # a verse missing on one side
    keys = aligned_keys(en, es)
    assert "Gen.1.5" not in keys
    assert len(keys) >= len(en) - 3  # a neighbour may be dropped with it
    assert {k for k in en if not k.startswith("Gen.1.")} <= set(keys)
    assert keys == [k for k in en if k in keys]  # source order


def test_shifted_chapter_is_dropped() -> None:
    en, es = _texts()
    # The Spanish numbers Exod.2 one verse later (Hebrew-style): its verse 1 is the English
    # Exod.1.12, its verse 12 merges the English verses 11 and 12.
    shifted = [es["Exod.1.12"]] + [es[f"Exod.2.{v}"] for v in range(1, 12)]
    shifted[-1] = shifted[-1] + " " + es["Exod.2.12"]
    del es["Exod.1.12"]
    for v, text in enumerate(shifted, 1):
        es[f"Exod.2.{v}"] = text
    keys = set(aligned_keys(en, es))
    assert not {k for k in keys if k.startswith("Exod.2.")}
    assert {f"Exod.1.{v}" for v in range(1, 12)} <= keys
    assert {k for k in en if k.startswith(("Gen.", "Matt."))} <= keys


def test_merged_verse_is_dropped() -> None:
    en, es = _texts()
    es["Matt.2.6"] = es["Matt.2.6"] + " " + " ".join(["otra"] * 60)  # extra text (a subscription)
    keys = aligned_keys(en, es)
    assert "Matt.2.6" not in keys
    assert {f"Matt.2.{v}" for v in (1, 2, 3, 4, 10, 11, 12)} <= set(keys)


def test_name_stems_fold_case_and_accents() -> None:
    assert name_stems("Y Saúl dijo á David") == name_stems("And Saul said to David")
    assert name_stems("EN el principio") == frozenset()  # first word / small capitals ignored


def test_verse_pairs_both_directions() -> None:
    en = {"Gen.1.1": "In the beginning, God created the heavens and the earth."}
    es = {"Gen.1.1": "EN el principio crió Dios los cielos y la tierra."}
    en.update({f"Gen.1.{v}": f"Verse {v} of the text here." for v in range(2, 6)})
    es.update({f"Gen.1.{v}": f"Versículo {v} del texto aquí." for v in range(2, 6)})
    forward = list(verse_pairs(en, es))
    backward = list(verse_pairs(en, es, reverse=True))
    assert forward[0] == {
        "id": "Gen.1.1",
        "source": en["Gen.1.1"],
        "target": es["Gen.1.1"],
        "source_lang": "en",
        "target_lang": "es",
    }
    assert [(b["source"], b["target"]) for b in backward] == [
        (f["target"], f["source"]) for f in forward
    ]
    assert backward[0]["source_lang"] == "es" and backward[0]["target_lang"] == "en"


def test_parser_reads_both_modules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import plugformer.data.sword as sword

    en, es = _texts()
    web, sparv = tmp_path / "web", tmp_path / "sparv"
    calls = []

    def fake_read_ztext(path, *args, **kwargs):
        calls.append(Path(path))
        return {web: en, sparv: es}[Path(path)]

    monkeypatch.setattr(sword, "read_ztext", fake_read_ztext)
    examples = list(_recipe("bible-en-es").parse([web, sparv]))
    assert calls == [web, sparv]
    assert len(examples) == len(en)
    assert examples[0]["id"] == "Gen.1.1" and examples[0]["source"] == en["Gen.1.1"]
    swapped = list(_recipe("bible-es-en").parse([web, sparv]))
    assert [e["id"] for e in swapped] == [e["id"] for e in examples]
    assert swapped[0]["source"] == es["Gen.1.1"]


def test_split_is_by_verse_key() -> None:
    for recipe in RECIPES:
        assert recipe.fractions == (0.8, 0.1, 0.1)
        example = {"id": "John.3.16", "source": "a", "target": "b"}
        assert split_of(recipe.split_key(example), recipe.fractions) == split_of("John.3.16")
        assert [s.package for s in recipe.sources] == ["sword-text-web", "sword-text-sparv"]
        assert all(s.version and len(s.sha256) == 64 for s in recipe.sources)


@pytest.mark.network
@pytest.mark.slow
def test_real_download(tmp_path: Path) -> None:
    from plugformer.data.sources import fetch

    recipe = _recipe("bible-en-es")
    paths = [fetch(s, tmp_path, name=recipe.name) for s in recipe.sources]
    examples = list(recipe.parse(paths))
    assert len(examples) == recipe.expected_count == 30818
    by_id = {e["id"]: e for e in examples}
    assert by_id["John.3.16"]["target"].startswith("Porque de tal manera amó Dios al mundo")
    assert by_id["Gen.1.1"]["source"] == "In the beginning, God created the heavens and the earth."
    # Misnumbered stretches of the Spanish module are dropped, not mispaired.
    assert not any(k.startswith(("Num.13.", "Jonah.2.", "Hos.12.", "Job.40.")) for k in by_id)
    assert not any(c in e["target"] for e in examples for c in "<>&")
