"""Translation dataset recipes: English-Spanish Bible verse pairs.

Sources are two Debian packages of SWORD zText modules, both public domain: ``sword-text-web``
(the World English Bible, module ``engWEB2015eb``, NRSVA versification) and
``sword-text-sparv`` (the Reina-Valera 1909, module ``spaRV1909eb``, declared KJV
versification). They are read with :func:`plugformer.data.sword.read_ztext` and joined on the
OSIS verse key (``Gen.1.1``), which is also the split key, so that a verse held out of
``bible-web-en`` is held out here too.

Joining on the key alone is not enough: the Spanish module declares KJV versification but in
a few chapters follows the Hebrew numbering (Num 13, Jonah 2, Hos 12, Job 39-40, ...), so
its verses are shifted by one or more against the English ones, and some verses merge two
(epistle subscriptions, the Johannine comma, Rom 16.25-27 placed at 14.23 in the WEB).
:func:`aligned_keys` aligns the verses of each book (Gale & Church style, by length, question
marks and proper names) and keeps a key only where it pairs with the same key; about 0.8% of
the shared keys go.

The Spanish text is kept as the module has it, including the 1909 orthography (accented
``á``/``ó``/``é`` conjunctions and prepositions, ``ch`` with a circumflex on the next vowel
in names such as ``Achâb``) and the small capitals of a chapter's first word
(``EN el principio``).
"""

from __future__ import annotations

import functools
import math
import re
import statistics
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugformer.data.recipes import DebianSource, Recipe
from plugformer.errors import DataError

__all__ = ["RECIPES", "aligned_keys", "verse_pairs"]

WEB = DebianSource(
    package="sword-text-web",
    version="426.0-1",
    sha256="930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1",
)
RV1909 = DebianSource(
    package="sword-text-sparv",
    version="2.60-1",
    sha256="5c87f9b2bc97457e8a872f5bae7ea7ce59cb3de1dcee73e4d4740451863694cf",
)

_P_MATCH = -math.log(0.89)
"""Cost of a one-to-one bead (Gale & Church 1993 prior)."""
_P_MERGE = -math.log(0.089 / 2)
"""Cost of a two-to-one or one-to-two bead."""
_P_SKIP = -math.log(0.0099 / 2) + 5.0
"""Cost of a verse left without partner (made dearer than Gale & Church's prior)."""
QUESTION_WEIGHT = 2.0
"""Cost per question mark more on one side than the other (``?`` survives translation)."""
NAME_WEIGHT = 1.0
"""Cost per proper-name stem found on one side only, gain per stem on both."""
BAND = 20
"""Alignment search band, in verses either side of the diagonal of a book."""
MIN_RUN = 3
"""A kept pair must lie in a run of at least this many consecutive kept verses."""

CITATION = (
    "World English Bible (WEB), 2020 stable text, eBible.org, public domain; SWORD module "
    "engWEB2015eb 426.0. Santa Biblia Reina-Valera 1909, public domain; SWORD module "
    "spaRV1909eb 2.60. Both as packaged by Debian (sword-text-web, sword-text-sparv)."
)

_WORD = re.compile(r"\w+")


def _fold(word: str) -> str:
    return "".join(
        ch for ch in unicodedata.normalize("NFD", word.casefold()) if not unicodedata.combining(ch)
    )


def name_stems(text: str) -> frozenset[str]:
    """First four letters (case and accents folded) of the capitalised words of ``text`` that
    are not its first word nor all capitals: proper names, mostly (``Saul``/``Saúl`` -> ``saul``)."""
    words = _WORD.findall(text)
    return frozenset(
        _fold(w)[:4] for w in words[1:] if len(w) >= 4 and w[0].isupper() and not w.isupper()
    )


@dataclass(frozen=True)
class _Verse:
    length: int
    questions: int
    names: frozenset[str]

    @classmethod
    def of(cls, text: str) -> _Verse:
        return cls(len(text), text.count("?"), name_stems(text))


@dataclass(frozen=True)
class _Model:
    ratio: float
    """Target characters per source character."""
    variance: float
    """Variance per source character of the target length (robust estimate)."""

    @classmethod
    def fit(cls, src: Mapping[str, str], tgt: Mapping[str, str]) -> _Model:
        keys = [k for k, t in src.items() if t and tgt.get(k)]
        if not keys:
            raise DataError("the two texts share no verse key")
        ratio = sum(len(tgt[k]) for k in keys) / sum(len(src[k]) for k in keys)
        dev = [(len(tgt[k]) - ratio * len(src[k])) / math.sqrt(len(src[k])) for k in keys]
        med = statistics.median(dev)
        mad = statistics.median(abs(d - med) for d in dev)
        return cls(ratio, max((1.4826 * mad) ** 2, 1.0))

    def cost(self, a: list[_Verse], b: list[_Verse]) -> float:
        la, lb = sum(v.length for v in a), sum(v.length for v in b)
        mean = (la + lb / self.ratio) / 2
        delta = (lb - self.ratio * la) / math.sqrt(max(mean, 1.0) * self.variance)
        cost = delta * delta / 2
        cost += QUESTION_WEIGHT * abs(sum(v.questions for v in a) - sum(v.questions for v in b))
        na = frozenset().union(*(v.names for v in a))
        nb = frozenset().union(*(v.names for v in b))
        return cost + NAME_WEIGHT * (len(na ^ nb) - len(na & nb))


_BEADS = ((1, 1, _P_MATCH), (1, 0, _P_SKIP), (0, 1, _P_SKIP), (2, 1, _P_MERGE), (1, 2, _P_MERGE))


def align(a: list[_Verse], b: list[_Verse], model: _Model) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)`` that a banded Gale-Church dynamic programme aligns one-to-one."""
    n, m = len(a), len(b)
    if not n or not m:
        return []
    best: dict[tuple[int, int], float] = {(0, 0): 0.0}
    back: dict[tuple[int, int], tuple[int, int]] = {}
    for i in range(n + 1):
        centre = i * m // n
        for j in range(max(0, centre - BAND), min(m, centre + BAND) + 1):
            if i == j == 0:
                continue
            cell, arg = math.inf, None
            for di, dj, prior in _BEADS:
                prev = best.get((i - di, j - dj))
                if prev is None:
                    continue
                cost = prev + prior
                if di and dj:
                    cost += model.cost(a[i - di : i], b[j - dj : j])
                if cost < cell:
                    cell, arg = cost, (di, dj)
            if arg is not None:
                best[(i, j)], back[(i, j)] = cell, arg
    if (n, m) not in back:  # pragma: no cover - the band always reaches the corner
        return []
    pairs = []
    i, j = n, m
    while i or j:
        di, dj = back[(i, j)]
        i, j = i - di, j - dj
        if di == dj == 1:
            pairs.append((i, j))
    return pairs[::-1]


def _book(key: str) -> str:
    return key.split(".", 1)[0]


def aligned_keys(src: Mapping[str, str], tgt: Mapping[str, str]) -> list[str]:
    """OSIS keys of ``src`` (in its order) whose verse in ``tgt`` is a translation of it.

    Equal keys are not enough (see the module docstring), so each book is aligned verse by
    verse as Gale & Church (1993) align sentences -- a dynamic programme over one-to-one,
    two-to-one, one-to-two and unmatched verses, scored by length (the length ratio and its
    variance are fitted on the data), by ``?`` counts and by shared proper-name stems. A key
    is kept when the programme pairs it one-to-one with the same key on the other side, and
    the pair lies in a run of at least :data:`MIN_RUN` such verses (a misnumbered stretch
    can line up by chance for a verse or two).
    """
    model = _Model.fit(src, tgt)
    books_a: dict[str, list[str]] = {}
    books_b: dict[str, list[str]] = {}
    for key, text in src.items():
        if text:
            books_a.setdefault(_book(key), []).append(key)
    for key, text in tgt.items():
        if text:
            books_b.setdefault(_book(key), []).append(key)
    same: set[str] = set()
    for book, keys_a in books_a.items():
        keys_b = books_b.get(book, [])
        verses_a = [_Verse.of(src[k]) for k in keys_a]
        verses_b = [_Verse.of(tgt[k]) for k in keys_b]
        same.update(
            keys_a[i] for i, j in align(verses_a, verses_b, model) if keys_a[i] == keys_b[j]
        )
    kept: list[str] = []
    run: list[str] = []
    for key in [*src, ""]:
        if key in same and (not run or _book(run[-1]) == _book(key)):
            run.append(key)
            continue
        if len(run) >= MIN_RUN:
            kept.extend(run)
        run = [key] if key in same else []
    return kept


def verse_pairs(
    english: Mapping[str, str], spanish: Mapping[str, str], *, reverse: bool = False
) -> Iterator[dict[str, Any]]:
    """Translation examples from two ``{osis_key: text}`` maps (English -> Spanish, or the
    reverse with ``reverse=True``; the same keys either way)."""
    for key in aligned_keys(english, spanish):
        en, es = english[key], spanish[key]
        if reverse:
            yield {"id": key, "source": es, "target": en, "source_lang": "es", "target_lang": "en"}
        else:
            yield {"id": key, "source": en, "target": es, "source_lang": "en", "target_lang": "es"}


def _parse_bible(paths: list[Path], *, reverse: bool) -> Iterator[dict[str, Any]]:
    from plugformer.data.sword import read_ztext

    if len(paths) != 2:
        raise DataError(f"expected the sword-text-web and sword-text-sparv trees, got {paths}")
    english = read_ztext(Path(paths[0]))
    spanish = read_ztext(Path(paths[1]))
    yield from verse_pairs(english, spanish, reverse=reverse)


def _recipe(name: str, reverse: bool) -> Recipe:
    a, b = ("Spanish", "English") if reverse else ("English", "Spanish")
    return Recipe(
        name=name,
        task="translation",
        version="1",
        sources=(WEB, RV1909),
        parse=functools.partial(_parse_bible, reverse=reverse),
        license="Public domain",
        citation=CITATION,
        description=(
            f"{a}-{b} Bible verse pairs: World English Bible and Reina-Valera 1909 joined on "
            "the OSIS verse key (split by verse key, as bible-web-en); 66 books, verses whose "
            "numbering or extent differs between the two are dropped."
        ),
        homepage="https://ebible.org/",
        expected_count=30818,
    )


RECIPES: list[Recipe] = [
    _recipe("bible-en-es", reverse=False),
    _recipe("bible-es-en", reverse=True),
]
