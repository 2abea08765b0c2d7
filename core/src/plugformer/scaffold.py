"""``plugformer new-plugin NAME``: write a complete third-party task plugin distribution.

The result is what a plugin author starts from: a pyproject with the entry point, a task on
one of the core's bases (``--template classification|pair|span|generation|tagging``), a
README, tests that subclass the conformance kit, and a named spec ``NAME-demo`` shipped as
package data (``register_specs``) with a few dozen generated rows per split that follow a
learnable rule. ``pip install -e`` it and it shows in ``plugformer plugins``, its tests pass
without edits and ``plugformer finetune NAME-demo --backbone CKPT`` runs in seconds. A name
whose distribution is installed, or whose task the core or an installed plugin already
registers, is refused: the result could not be installed beside it. So is a ``--dir`` that
cannot hold it (a file, or under one) and a ``plugformer-NAME`` already there, each in one
line before anything is written. The package is built under a temporary name beside its
destination and renamed into place when complete: a failure leaves nothing behind, not even
the ``--dir`` folders it created.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
from importlib import resources
from pathlib import Path

from plugformer.errors import PlugformerError
from plugformer.fileio import atomic_dir

__all__ = ["TEMPLATES", "write_plugin"]

TEMPLATES = ("classification", "pair", "span", "generation", "tagging")
"""Task shapes ``new-plugin --template`` writes (each on its base in :mod:`plugformer.blocks`)."""

_BASES = {
    "classification": "ClassificationTask",
    "pair": "ClassificationTask",
    "span": "SpanSelectionTask",
    "generation": "ConditionalGenerationTask",
    "tagging": "TaggingTask",
}
"""The class in :mod:`plugformer.blocks` each template's task subclasses (named in its README)."""

_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "init.py.tmpl": "src/{package}/__init__.py",
    "plugin.py.tmpl": "src/{package}/plugin.py",
    "task_{template}.py.tmpl": "src/{package}/task.py",
    "test_{template}.py.tmpl": "tests/test_task.py",
    "test_demo_spec.py.tmpl": "tests/test_demo_spec.py",
    "spec.toml.tmpl": "src/{package}/specs/{name}-demo.toml",
}

_SPLITS = {"train": 48, "validation": 16, "test": 16}
"""Rows of each split of the demo data (``src/PACKAGE/specs/data/SPLIT.jsonl``)."""

_SPEC_OPTIONS = {"generation": "\n[options]\nmax_new_tokens = 8  # the targets are a few words\n"}
"""Extra tables of a template's demo spec (``{{spec_options}}`` in spec.toml.tmpl)."""

_NAMES = ["Anna", "Ben", "Clara", "David", "Ella", "Frank", "Grace", "Henry"]
_PLACES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Delhi"]
_WORDS = ["red", "blue", "cat", "dog", "sun", "tree", "milk", "rain", "song", "ship"]


def _classification_row(rng: random.Random) -> dict[str, object]:
    """The label is whether the sentence holds a good word or a bad one."""
    good = rng.random() < 0.5
    adjective = rng.choice(["great", "lovely", "fine"] if good else ["awful", "dreadful", "poor"])
    return {"text": f"the {rng.choice(_WORDS)} was {adjective}", "label": "good" if good else "bad"}


def _pair_row(rng: random.Random) -> dict[str, object]:
    """Entailment when the hypothesis names the premise's person and place, else contradiction."""
    name, place = rng.choice(_NAMES), rng.choice(_PLACES)
    entailed = rng.random() < 0.5
    other = rng.choice([p for p in _PLACES if p != place])
    hypothesis = f"{name} is in {place if entailed else other}"
    return {
        "premise": f"{name} went to {place} by {rng.choice(['train', 'car', 'ship'])}",
        "hypothesis": hypothesis,
        "label": "entailment" if entailed else "contradiction",
    }


def _span_row(rng: random.Random) -> dict[str, object]:
    """The answer (who went) is a span of the context."""
    name, place = rng.choice(_NAMES), rng.choice(_PLACES)
    context = f"On {rng.choice(['Monday', 'Friday', 'Sunday'])} {name} went to {place}."
    return {
        "question": f"Who went to {place}?",
        "context": context,
        "answer": name,
        "answer_start": context.index(name),
    }


def _generation_row(rng: random.Random) -> dict[str, object]:
    """The target is the source's words in reverse order."""
    words = rng.sample(_WORDS, rng.randint(2, 4))
    return {"source": " ".join(words), "target": " ".join(reversed(words))}


def _tagging_row(rng: random.Random) -> dict[str, object]:
    """A capitalised word is a name (B-NAME), every other word O."""
    tokens = [rng.choice(_NAMES), "saw", "the", rng.choice(_WORDS)]
    if rng.random() < 0.5:
        tokens += ["with", rng.choice(_NAMES)]
    rng.shuffle(tokens)
    return {"tokens": tokens, "tags": ["B-NAME" if t[0].isupper() else "O" for t in tokens]}


_ROWS = {
    "classification": _classification_row,
    "pair": _pair_row,
    "span": _span_row,
    "generation": _generation_row,
    "tagging": _tagging_row,
}
"""One demo row of each template (its task's example fields), drawn from a seeded RNG."""


def _demo_data(template: str) -> dict[str, str]:
    """The demo spec's JSONL files, by split: the same for every run of the scaffold."""
    rng = random.Random(f"plugformer-{template}-demo")
    return {
        split: "".join(json.dumps(_ROWS[template](rng)) + "\n" for _ in range(n))
        for split, n in _SPLITS.items()
    }


def _installed_distribution(dist: str) -> str | None:
    """``NAME VERSION`` of an installed distribution called ``dist``, else ``None``."""
    import importlib.metadata as md

    try:
        found = md.distribution(dist)
    except md.PackageNotFoundError:
        return None
    return f"{found.metadata['Name']} {found.version}"


def _task_owner(name: str) -> str | None:
    """Who already registers a task called ``name`` (the core, or an installed plugin, broken
    or not), in words; ``None`` if no one does."""
    from plugformer.plugin_registries import tasks
    from plugformer.registries import CORE_OWNER

    registry = tasks()
    if name in registry.conflicts:
        return " and ".join(registry.conflicts[name])
    if name in registry:
        owner = registry.owners[name]
        return "plugformer (a built-in task)" if owner == CORE_OWNER else owner
    if name in registry.withheld:
        info = registry.withheld[name]
        return f"{info.distribution} (plugin {info.name}, broken)"
    return None


def _check_destination(directory: Path, target: Path) -> list[Path]:
    """Refuse, in one line, a ``--dir`` that is or lies under something other than a directory,
    and a ``target`` that exists already; return the folders of ``directory`` still to be
    created, deepest first (removed again if the scaffold fails)."""
    missing: list[Path] = []
    probe = directory
    while not os.path.lexists(probe) and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if not probe.is_dir():
        what = "a file, not a directory" if probe.is_file() else "not a directory"
        if probe == directory:
            raise PlugformerError(f"--dir {directory} is {what}")
        raise PlugformerError(f"--dir {directory}: {probe} is {what}")
    if os.path.lexists(target):
        if target.is_symlink():
            what = "a symbolic link"
        elif target.is_dir():
            what = (
                "a directory that is not empty" if any(target.iterdir()) else "an empty directory"
            )
        else:
            what = "a file" if target.is_file() else "neither a file nor a directory"
        raise PlugformerError(
            f"{target} already exists ({what}); remove it or choose another --dir"
        )
    return missing


def _write_files(target: Path, values: dict[str, str]) -> None:
    """Fill the templates with ``values`` and write the package and its demo data into a
    temporary directory beside ``target``, renamed to ``target`` once complete."""
    templates = resources.files("plugformer") / "templates"
    template = values["template"]
    with atomic_dir(target, overwrite=False) as tmp:
        for src, dst in _FILES.items():
            text = (templates / src.format(template=template)).read_text(encoding="utf-8")
            for key, value in values.items():
                text = text.replace("{{" + key + "}}", value)
            out = tmp / dst.format(**values)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
        data = tmp / "src" / values["package"] / "specs" / "data"
        data.mkdir()
        for split, rows in _demo_data(template).items():
            (data / f"{split}.jsonl").write_text(rows, encoding="utf-8")


def write_plugin(name: str, directory: str | Path = ".", template: str = "classification") -> Path:
    """Write ``DIRECTORY/plugformer-NAME`` (a task of shape ``template``) and return its path."""
    if template not in TEMPLATES:
        raise PlugformerError(f"template {template!r}: choose one of {', '.join(TEMPLATES)}")
    # `new-plugin plugformer-foo` means the task foo, not a distribution plugformer-plugformer-foo.
    name = name.removeprefix("plugformer-")
    if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name):
        raise PlugformerError(
            f"plugin name {name!r}: use lower-case words joined by hyphens, e.g. demo-ner"
        )
    package = "plugformer_" + name.replace("-", "_")
    dist = f"plugformer-{name}"
    taken = _installed_distribution(dist)
    if taken is not None:  # installing the scaffold would replace it
        raise PlugformerError(
            f"plugin name {name!r}: the distribution {dist} is already installed ({taken}); "
            "choose another name"
        )
    owner = _task_owner(name)
    if owner is not None:  # installed, the two would clash and the plugin be skipped as broken
        raise PlugformerError(
            f"plugin name {name!r}: the task {name!r} is already registered by {owner}; "
            "choose another name"
        )
    directory = Path(directory)
    target = directory / dist
    created = _check_destination(directory, target)
    values = {
        "name": name,
        "package": package,
        "dist": dist,
        "class_name": "".join(p.capitalize() for p in name.split("-")) + "Task",
        "template": template,
        "base": _BASES[template],
        "spec_options": _SPEC_OPTIONS.get(template, ""),
    }
    try:
        _write_files(target, values)
    except BaseException:
        for folder in created:  # deepest first; only folders left empty go
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return target
