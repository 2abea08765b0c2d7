"""Named config files: task specs, suites and pretraining configs shipped as package data.

A distribution ships its TOML files inside its package and registers them through the
``register_specs`` hook (the core registers its pretraining configs and suites the same way,
from :mod:`plugformer.default_plugins.configs`). Each file is then known by a name (its file
name without ``.toml``), and a name works wherever a file path does:
``plugformer finetune movie-reviews``, ``plugformer bench default``,
``plugformer pretrain tiny``, and the ``tasks`` entries of a suite.

:func:`resolve` turns a reference (a path or a name) into a file; :func:`load_task_spec` reads
a task spec from what ``plugformer finetune SPEC`` takes (file, name, or task name with data);
:func:`check_task_data` checks that the data a spec names exists;
:func:`describe_specs` lists task specs for ``plugformer tasks``. Nothing here imports torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plugformer.errors import ConfigError
from plugformer.specfiles import NamedFile, named_files

__all__ = [
    "NamedFile",
    "check_task_data",
    "describe_specs",
    "is_dataset_name",
    "is_path",
    "load_task_spec",
    "named_files",
    "resolve",
]


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
    from plugformer.plugin_registries import named_specs

    reg = named_specs(kind)
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
    from plugformer.plugin_registries import broken_note

    raise ConfigError(
        f"{name!r} is neither a file nor a registered {reg.kind} name"
        + (f" (did you mean {hint[0]!r}?)" if hint else "")
        + f"; `{listing}` lists the names"
        + broken_note()
    )


def describe_specs(kind: str = "task") -> list[dict[str, Any]]:
    """Every registered file of ``kind`` with what its TOML says (task and dataset for specs,
    description and task entries for suites). A file that does not parse is listed with its
    error rather than hiding the others."""
    from plugformer.config import load_toml
    from plugformer.plugin_registries import named_specs

    rows = []
    for item in named_specs(kind).all():
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


_DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt")


def is_dataset_name(data: Path) -> bool:
    """``--data`` names a dataset recipe when no such file exists; a missing path that looks like
    a file (a data suffix, or a directory part) is one clear line instead of 'unknown dataset'."""
    if data.exists():
        return False
    if data.suffix.lower() in _DATA_SUFFIXES or len(data.parts) > 1:
        from plugformer.errors import DataError

        raise DataError(f"{data}: no such file")
    return True


def check_task_data(spec: Any, source: str) -> None:
    """Refuse a spec whose data is not there, as ``plugformer finetune`` would when it reads it:
    ``data.dataset`` must name a registered recipe (not a file), and ``data.train`` /
    ``validation`` / ``test`` existing files. Nothing is downloaded or read: the recipe is
    looked up in the dataset registry, the files are only looked at.

    :param spec: a :class:`plugformer.config.TaskSpec` whose relative paths are already
        relative to its file (:func:`plugformer.config.resolve_spec_paths`).
    :param source: what the error blames, usually the spec file.
    :raises DataError: one line naming ``source`` and the field (a :class:`PluginError` for a
        dataset only a broken plugin registers).
    """
    from plugformer.config import SPEC_PATH_KEYS
    from plugformer.errors import DataError, PlugformerError

    data = spec.data
    if data.dataset:
        if Path(data.dataset).exists():  # as finetune reads a split: a file is no recipe name
            raise DataError(
                f"{source}: data.dataset {data.dataset!r} is a file: give it as data.train"
            )
        from plugformer.data.cache import resolve_recipe  # the lookup finetune's load_split makes

        try:
            resolve_recipe(data.dataset)
        except PlugformerError as exc:
            raise type(exc)(f"{source}: data.dataset: {exc}") from None
    for split in SPEC_PATH_KEYS:
        file = getattr(data, split)
        if not file:
            continue
        if not Path(file).exists():
            raise DataError(f"{source}: data.{split}: {file}: no such file")
        if Path(file).is_dir():
            raise DataError(f"{source}: data.{split}: {file}: is a directory, expected a file")


def _data_table(data: Path, validation: Path | None) -> dict[str, Any]:
    """``--data`` (a file or a dataset name) and ``--validation`` as a spec's ``[data]``."""
    if is_dataset_name(data):
        table: dict[str, Any] = {"dataset": str(data)}
    else:
        table = {"train": str(data)}
        if validation is None:
            table["holdout"] = 0.1  # a seeded share, announced in one line by finetune
    if validation is not None:
        table["validation"] = str(validation)
    return table


def load_task_spec(
    spec: str | os.PathLike[str],
    data: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
    validation: str | os.PathLike[str] | None = None,
) -> Any:
    """A validated :class:`plugformer.config.TaskSpec` from what ``plugformer finetune SPEC``
    takes: a spec file, a registered spec name (``plugformer tasks``), or a task name with
    ``data`` (a file or a dataset name; ``validation`` a file). ``overrides`` are ``--set``
    ``KEY=VALUE`` strings. Errors are one line naming the file or field."""
    from plugformer.config import (
        TaskSpec,
        apply_overrides,
        check_task_options,
        load_toml,
        parse_model,
        resolve_spec_paths,
    )
    from plugformer.plugin_registries import named_specs
    from plugformer.tomlconfig import override_list

    spec = os.fspath(spec)
    data = Path(data) if data is not None else None
    validation = Path(validation) if validation is not None else None
    path, named = Path(spec), named_specs("task")
    if not is_path(spec) and (spec in named or spec in named.conflicts or spec in named.withheld):
        path = resolve(spec, "task")  # a registered spec name
    if path.suffix == ".toml" or path.exists():
        raw = resolve_spec_paths(load_toml(path), path)  # data paths are relative to the file
        source = str(path)
        raw.setdefault("name", path.stem)
    else:  # the shorthand: a task name plus --data
        if data is None:
            import difflib

            hint = difflib.get_close_matches(spec, named.names(), n=1)
            from plugformer.plugin_registries import broken_note

            raise ConfigError(
                f"{spec!r} is neither a spec file nor a spec name"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + "; `plugformer tasks` lists the names; with a task name, give --data FILE (or a dataset name)"
                + broken_note()
            )
        source = "command line"
        raw = {"task": spec, "data": _data_table(data, validation)}
    if data is not None and path.exists():
        raw["data"] = _data_table(data, validation)
    elif validation is not None:
        raw.setdefault("data", {})["validation"] = str(validation)
    overrides = override_list(overrides)
    spec_model = parse_model(TaskSpec, apply_overrides(raw, overrides), source, overrides)
    check_task_options(spec_model, source, overrides)
    return spec_model
