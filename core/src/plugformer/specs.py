"""Named config files: task specs, suites and pretraining configs shipped as package data.

A distribution ships its TOML files inside its package and registers them through the
``register_specs`` hook (the core registers its pretraining configs and suites the same way,
from :mod:`plugformer.default_plugins.configs`). Each file is then known by a name (its file
name without ``.toml``), and a name works wherever a file path does:
``plugformer finetune movie-reviews``, ``plugformer bench default``,
``plugformer pretrain tiny``, and the ``tasks`` entries of a suite.

:func:`resolve` turns a reference (a path or a name) into a file; :func:`describe_specs` lists
task specs for ``plugformer tasks``. Nothing here imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from plugformer.errors import ConfigError
from plugformer.specfiles import NamedFile, named_files

__all__ = ["NamedFile", "describe_specs", "is_path", "named_files", "resolve"]


def is_path(ref: str | os.PathLike[str]) -> bool:
    """Whether ``ref`` reads as a file path rather than a registered name."""
    text = os.fspath(ref)
    return text.endswith(".toml") or "/" in text or os.sep in text or Path(text).is_file()


def resolve(ref: str | os.PathLike[str], kind: str) -> Path:
    """The file a reference means: a path as given, else the file registered under that name.

    :param ref: a file path (anything ending in ``.toml``, holding a ``/``, or an existing
        file) or a name registered through ``register_specs``.
    :param kind: ``task``, ``suite`` or ``pretrain``: which registry a name is looked up in.
    :raises ConfigError: an unknown name (with a did-you-mean and where names are listed).
    """
    if is_path(ref):
        return Path(ref)
    from plugformer import plugins

    reg = plugins.named_specs(kind)
    name = os.fspath(ref)
    if name in reg or name in reg.conflicts or name in reg.withheld:
        # a clash, or a name only a broken plugin registers: PluginError naming the plugins
        item: NamedFile = reg.get(name)
        return item.path
    import difflib

    hint = difflib.get_close_matches(name, reg.names(), n=1)
    listing = {"task": "plugformer tasks", "suite": "plugformer suites"}.get(
        kind, "plugformer plugins"
    )
    raise ConfigError(
        f"{name!r} is neither a file nor a registered {reg.kind} name"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
        + f"; `{listing}` lists the names"
    )


def describe_specs(kind: str = "task") -> list[dict[str, Any]]:
    """Every registered file of ``kind`` with what its TOML says (task and dataset for specs,
    description and task entries for suites). A file that does not parse is listed with its
    error rather than hiding the others."""
    from plugformer import plugins
    from plugformer.config import load_toml

    rows = []
    for item in plugins.named_specs(kind).all():
        row: dict[str, Any] = item.as_dict()
        try:
            raw = load_toml(item.path)
        except ConfigError as exc:
            row["error"] = str(exc)
            rows.append(row)
            continue
        if kind == "task":
            data = raw.get("data") or {}
            row["task"] = raw.get("task", "")
            row["dataset"] = data.get("dataset") or data.get("train") or ""
        elif kind == "suite":
            row["description"] = raw.get("description", "")
            row["tasks"] = list(raw.get("tasks", []))
        rows.append(row)
    return rows
