"""What one ``register_specs`` call registers: named config files (task specs, suites,
pretraining configs) as :class:`NamedFile` records. Resolving names is :mod:`plugformer.specs`;
this module stands below the plugin manager, which calls :func:`named_files` for each
registration, so neither imports the other's user."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugformer.errors import PluginError

__all__ = ["KINDS", "NamedFile", "named_files"]

KINDS = ("task", "suite", "pretrain")


@dataclass(frozen=True)
class NamedFile:
    """One registered config file."""

    name: str
    """What users type: ``movie-reviews``."""
    kind: str
    """``task``, ``suite`` or ``pretrain``."""
    path: Path
    """The TOML file (inside the installed package)."""
    distribution: str
    """The distribution that ships it (``plugformer-sentiment``)."""

    def as_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "kind": self.kind,
            "path": str(self.path),
            "distribution": self.distribution,
        }


def _as_path(where: Any) -> Path:
    """A str, os.PathLike or importlib.resources Traversable that is a real file or folder."""
    if isinstance(where, str | os.PathLike):
        return Path(where)
    raise PluginError(
        f"register_specs: {where!r} is not a path on disk; pass a str, a pathlib.Path or "
        "importlib.resources.files(...) / 'folder' of a package installed unzipped"
    )


def named_files(args: tuple[Any, ...], kw: Mapping[str, Any], distribution: str) -> list[NamedFile]:
    """The files one ``register(path, kind="task", name=None)`` call registers."""
    where = args[0] if args else kw.get("path")
    kind = args[1] if len(args) > 1 else kw.get("kind", "task")
    name = args[2] if len(args) > 2 else kw.get("name")
    if where is None:
        raise PluginError("register_specs: register(path, kind=...) needs a path")
    if kind not in KINDS:
        raise PluginError(f"register_specs: kind {kind!r} is not one of {', '.join(KINDS)}")
    path = _as_path(where)
    if path.is_dir():
        if name is not None:
            raise PluginError(f"register_specs: name= names one file, but {path} is a folder")
        files = sorted(p for p in path.iterdir() if p.suffix == ".toml" and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise PluginError(f"register_specs: {path} is neither a file nor a folder")
    return [NamedFile(name or f.stem, kind, f, distribution) for f in files]
