"""``news-cloze-qa``: the entity rules, and the parser on articles given by a fake ``load_split``."""

from __future__ import annotations

import pytest

from plugformer.data.recipes import split_of
from plugformer.errors import DataError
from plugformer_qa.datasets import (
    PLACEHOLDER,
    RECIPES,
    candidates,
    cloze_examples,
    cloze_questions,
    find_answer,
    leading_context,
    select_entities,
    sentence_spans,
)

RECIPE = RECIPES[0]
TEXT = (
    "Michigan billionaire Betsy DeVos was confirmed today as secretary of education in "
    "President Trump's administration, after Vice President Mike Pence cast a tie-breaking "
    "vote in the Senate. The Senate voted 51-50 on Tuesday. Sen. Elizabeth Warren of the "
    "U.S. Senate said it was hard to imagine a worse choice. Pence read the vote count."
)


def _cands(title: str) -> list[str]:
    return [title[s:e] for s, e, _ in candidates(title)]


def test_sentences_skip_abbreviations() -> None:
    spans = sentence_spans(TEXT)
    firsts = [TEXT[s:e].split()[0] for s, e in spans]
    assert firsts == ["Michigan", "The", "Sen.", "Pence"]


def test_context_keeps_whole_sentences() -> None:
    context, starts = leading_context(TEXT, max_words=40)
    assert context.endswith("on Tuesday.")  # the third sentence would pass 40 words
    assert starts == [0, context.index("The Senate")]
    context, _ = leading_context("  One  two.\n Three four.  ", max_words=160)
    assert context == "One two. Three four."
    assert leading_context(" ".join(["word"] * 400) + ".", max_words=160) is None
    assert leading_context("", max_words=160) is None


def test_candidates_are_capitalised_runs_of_one_to_four_words() -> None:
    title = "Betsy DeVos Confirmed as Education Secretary, With Pence Casting Vote"
    cands = _cands(title)
    assert "Betsy DeVos Confirmed" in cands and "Education Secretary" in cands
    assert "Secretary, With" not in cands  # punctuation ends a run
    assert "as" not in cands
    assert max(len(c.split()) for c in cands) <= 4
    assert "With Pence Casting Vote" in cands


def test_stop_word_only_candidates_rejected() -> None:
    assert _cands("The In Of") == []
    assert "The White House" in _cands("The White House Says No")
    assert "The" not in _cands("The White House Says No")


def test_possessive_and_numbers() -> None:
    title = "Trump's aide pays $1,000 in St. Lucia in 2017"
    cands = _cands(title)
    assert "Trump" in cands and "Trump's" not in cands
    assert "$1,000" in cands and "2017" in cands and "St. Lucia" in cands


def test_sentence_start_only_candidate_rejected() -> None:
    context, starts = leading_context("Pence spoke. The vote was close.")
    assert find_answer("Pence", context, starts) is None  # only at a sentence start
    assert find_answer("The", context, starts) is None
    context, starts = leading_context("Pence spoke. Later Pence voted.")
    assert find_answer("Pence", context, starts) == context.index("Later Pence") + 6


def test_find_answer_is_verbatim_and_word_bounded() -> None:
    context, starts = leading_context("It was a Trumpian day. Critics of Trump's plan spoke.")
    assert find_answer("Trump", context, starts) == context.index("Trump's")
    assert find_answer("trump", context, starts) is None  # case-sensitive
    context, starts = leading_context("It cost 14,000 dollars. He paid 000 more.")
    assert find_answer("000", context, starts) == context.index("000 more")


def test_longest_non_overlapping_candidates_win() -> None:
    context, starts = leading_context(TEXT)
    title = "Vice President Mike Pence Casts Tie-Breaking Vote for Betsy DeVos"
    entities = select_entities(title, context, starts)
    assert [e.text for e in entities] == ["Vice President Mike Pence", "Betsy DeVos"]
    # "Mike Pence", "Pence", "Betsy" ... overlap the winners and are not used.


def test_questions_and_offsets_are_exact() -> None:
    context, starts = leading_context(TEXT)
    questions = cloze_questions("Betsy DeVos confirmed by U.S. Senate", context, starts)
    assert [q for q, _, _ in questions] == [
        f"{PLACEHOLDER} confirmed by U.S. Senate",
        f"Betsy DeVos confirmed by {PLACEHOLDER}",
    ]
    for _, text, start in questions:
        assert context[start : start + len(text)] == text
    (answer, start) = questions[1][1:]
    assert answer == "U.S. Senate" and start == context.index("U.S. Senate")


def test_answer_repeated_in_question_is_skipped() -> None:
    context, starts = leading_context("It is about Gaza and more. Then Gaza again.")
    assert cloze_questions("Gaza to Gaza", context, starts) == []


def test_examples_of_an_article() -> None:
    article = {
        "id": "7",
        "title": "Pence breaks tie to confirm Betsy DeVos",
        "subtitle": "Elizabeth Warren calls DeVos the worst choice",
        "text": TEXT,
        "date": "2017/2/7",
    }
    examples = list(cloze_examples(article))
    ids = [e["id"] for e in examples]
    assert ids == ["7-title-0", "7-title-1", "7-subtitle-0", "7-subtitle-1"]
    for e in examples:
        assert set(e) == {"id", "article_id", "context", "question", "answers"}
        assert e["article_id"] == "7" and PLACEHOLDER in e["question"]
        (a,) = e["answers"]
        assert e["context"][a["answer_start"] : a["answer_start"] + len(a["text"])] == a["text"]
    assert examples[0]["question"] == f"{PLACEHOLDER} breaks tie to confirm Betsy DeVos"
    assert examples[0]["answers"][0]["text"] == "Pence"
    assert examples[3]["answers"][0]["text"] == "DeVos"
    # no title, or no text: no questions; subtitle that is part of the context: unused
    assert list(cloze_examples({**article, "text": ""})) == []
    assert next(iter(cloze_examples({**article, "title": ""})))["id"] == "7-subtitle-0"
    copied = {**article, "subtitle": "The Senate voted 51-50 on Tuesday."}
    assert all("subtitle" not in e["id"] for e in cloze_examples(copied))


def _articles() -> list[dict]:
    return [
        {
            "id": str(i),
            "title": f"Pence breaks tie number {i}",
            "subtitle": "",
            "text": f"Vice President Pence voted {i} times. Again Pence did it.",
            "date": "2017/2/7",
        }
        for i in range(1, 41)
    ]


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
    assert len({e["id"] for e in examples}) == len(examples) == 80  # Pence, and the number
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
    assert info.counts == {"train": 7138, "validation": 796, "test": 819}
    assert sum(info.counts.values()) == RECIPE.expected_count
