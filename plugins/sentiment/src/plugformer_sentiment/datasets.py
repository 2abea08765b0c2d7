"""Sentiment dataset recipes: the human-rated snippets of Hutto & Gilbert (2014).

The VADER authors published the four ground-truth corpora they rated with 10 human
raters each (mean rating on a -4..+4 scale) inside ``additional_resources/
hutto_ICWSM_2014.tar.gz`` of the vaderSentiment *source distribution*. Each file is
tab-separated ``id<TAB>mean rating<TAB>text`` with CRLF line ends.

An example is ``{"id", "text", "label", "rating"}``: ``label`` is ``"positive"`` when the
mean rating is above zero and ``"negative"`` below it; snippets rated exactly 0 are dropped.
HTML entities left in the text (``&amp;``, sometimes escaped twice) are decoded.

The archives are read in memory (``tarfile`` + ``extractfile``): nothing is extracted to
disk, and member names that are absolute, contain ``..`` or are not regular files are refused.
"""

from __future__ import annotations

import functools
import html
import io
import re
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from plugformer.data.recipes import PyPISource, Recipe
from plugformer.errors import DataError

__all__ = ["LABELS", "RECIPES", "parse_ground_truth", "read_ground_truth"]

LABELS = ("negative", "positive")

VADER_SDIST = PyPISource(
    package="vaderSentiment",
    version="3.3.2",
    filename="vaderSentiment-3.3.2.tar.gz",
    sha256="5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9",
    sdist=True,
)

_INNER_ARCHIVE = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
_INNER_DIR = "hutto_ICWSM_2014"
_MAX_MEMBER_BYTES = 64 * 1024 * 1024
"""Upper bound on a member read into memory (the real ones are 0.4-2.5 MB)."""

HUTTO_GILBERT_2014 = (
    "C.J. Hutto and Eric Gilbert. 2014. VADER: A Parsimonious Rule-based Model for Sentiment "
    "Analysis of Social Media Text. In Proceedings of the Eighth International AAAI Conference "
    "on Weblogs and Social Media (ICWSM-14), Ann Arbor, MI."
)
PANG_LEE_2005 = (
    "Bo Pang and Lillian Lee. 2005. Seeing stars: Exploiting class relationships for sentiment "
    "categorization with respect to rating scales. In Proceedings of ACL 2005, pages 115-124."
)
HU_LIU_2004 = (
    "Minqing Hu and Bing Liu. 2004. Mining and summarizing customer reviews. In Proceedings of "
    "KDD 2004, pages 168-177."
)
HOMEPAGE = "https://github.com/cjhutto/vaderSentiment"


def _check_member_name(name: str, archive: str) -> None:
    p = PurePosixPath(name)
    if (
        not name
        or "\x00" in name
        or "\\" in name
        or p.is_absolute()
        or ".." in p.parts
        or re.match(r"^[A-Za-z]:", name)
    ):
        raise DataError(f"{archive}: refusing archive member with unsafe name {name!r}")


def _read_member(tar: tarfile.TarFile, name: str, archive: str) -> bytes:
    """Bytes of the regular-file member ``name``; every member name is checked on the way."""
    found: tarfile.TarInfo | None = None
    for member in tar:
        _check_member_name(member.name, archive)
        if member.name.rstrip("/") == name:
            found = member
            break
    if found is None:
        raise DataError(f"{archive}: member {name!r} not found")
    if not found.isfile():
        raise DataError(f"{archive}: member {name!r} is not a regular file")
    if found.size > _MAX_MEMBER_BYTES:
        raise DataError(f"{archive}: member {name!r} is too large ({found.size} bytes)")
    stream = tar.extractfile(found)
    if stream is None:  # pragma: no cover - isfile() members always have a stream
        raise DataError(f"{archive}: cannot read member {name!r}")
    with stream:
        return stream.read(_MAX_MEMBER_BYTES + 1)


def read_ground_truth(sdist: Path, filename: str) -> str:
    """Text of ``hutto_ICWSM_2014/<filename>`` inside the vaderSentiment sdist ``sdist``."""
    label = str(sdist)
    try:
        with tarfile.open(sdist, mode="r:gz") as outer:
            inner_bytes = _read_member(outer, _INNER_ARCHIVE, label)
        label = f"{sdist}!{_INNER_ARCHIVE}"
        with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
            raw = _read_member(inner, f"{_INNER_DIR}/{filename}", label)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{label}: not a readable .tar.gz archive ({exc})") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}/{filename}: not UTF-8 ({exc})") from exc


def _unescape(text: str) -> str:
    """Decode HTML entities, including doubly escaped ones (``&amp;amp;``, ``&amp;#38;``)."""
    for _ in range(3):
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    return text


def parse_ground_truth(text: str, source: str = "<ground truth>") -> Iterator[dict[str, Any]]:
    """Examples from one ``*_GroundTruth.txt`` file's text (rating 0 dropped)."""
    seen: set[str] = set()
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("\t", 2)
        if len(fields) != 3:
            raise DataError(
                f"{source}:{lineno}: expected 3 tab-separated fields (id, rating, text)"
            )
        raw_id, raw_rating, raw_text = fields
        raw_id = raw_id.strip()
        try:
            rating = float(raw_rating)
        except ValueError:
            raise DataError(f"{source}:{lineno}: rating {raw_rating!r} is not a number") from None
        if raw_id in seen:
            raise DataError(f"{source}:{lineno}: duplicate id {raw_id!r}")
        seen.add(raw_id)
        sentence = " ".join(_unescape(raw_text).split())
        if not sentence:
            raise DataError(f"{source}:{lineno}: empty text")
        if rating == 0:
            continue
        yield {
            "id": raw_id,
            "text": sentence,
            "label": "positive" if rating > 0 else "negative",
            "rating": rating,
        }


def _parse_vader(paths: list[Path], *, filename: str) -> Iterator[dict[str, Any]]:
    if len(paths) != 1:
        raise DataError(f"expected the vaderSentiment sdist as the only source, got {paths}")
    yield from parse_ground_truth(
        read_ground_truth(Path(paths[0]), filename), f"{paths[0]}!{_INNER_DIR}/{filename}"
    )


def _text_key(example: Mapping[str, Any]) -> str:
    """Split key: the normalised text, so that repeated snippets never straddle splits."""
    return " ".join(str(example["text"]).casefold().split())


def _recipe(name: str, filename: str, expected: int, description: str, citation: str) -> Recipe:
    return Recipe(
        name=name,
        task="sentiment",
        version="3.3.2",
        sources=(VADER_SDIST,),
        parse=functools.partial(_parse_vader, filename=filename),
        license="MIT (vaderSentiment 3.3.2 distribution)",
        citation=citation,
        description=description,
        homepage=HOMEPAGE,
        split_key=_text_key,
        expected_count=expected,
    )


RECIPES: list[Recipe] = [
    _recipe(
        "movie-review-sentences",
        "movieReviewSnippets_GroundTruth.txt",
        10568,
        "10,605 rottentomatoes.com movie-review sentences (Pang & Lee 2005), each rated by "
        "10 people on -4..+4 (Hutto & Gilbert 2014); binary label from the mean rating, "
        "the 37 rated exactly 0 dropped: 5,242 positive, 5,326 negative.",
        f"{HUTTO_GILBERT_2014} {PANG_LEE_2005}",
    ),
    _recipe(
        "vader-tweets",
        "tweets_GroundTruth.txt",
        4196,
        "4,200 tweets rated by 10 people on -4..+4 (Hutto & Gilbert 2014); binary label from "
        "the mean rating, the 4 rated exactly 0 dropped: 2,897 positive, 1,299 negative.",
        HUTTO_GILBERT_2014,
    ),
    _recipe(
        "vader-amazon",
        "amazonReviewSnippets_GroundTruth.txt",
        3610,
        "3,708 sentences of 309 Amazon customer reviews of 5 products (Hu & Liu 2004), rated "
        "by 10 people on -4..+4 (Hutto & Gilbert 2014); binary label from the mean rating, "
        "the 98 rated exactly 0 dropped: 2,128 positive, 1,482 negative. Lower-cased text.",
        f"{HUTTO_GILBERT_2014} {HU_LIU_2004}",
    ),
    _recipe(
        "vader-nyt",
        "nytEditorialSnippets_GroundTruth.txt",
        4946,
        "5,190 sentences of 500 New York Times opinion editorials, rated by 10 people on "
        "-4..+4 (Hutto & Gilbert 2014); binary label from the mean rating, the 244 rated "
        "exactly 0 dropped: 2,204 positive, 2,742 negative. The snippets quote NYT articles; "
        "the MIT licence is that of the vaderSentiment distribution.",
        HUTTO_GILBERT_2014,
    ),
]
