"""``plugformer new-plugin NAME``: write a complete third-party task plugin distribution.

The result is what a plugin author starts from: a pyproject with the entry point, a task on
one of the core's bases (``--template classification|pair|span|generation|tagging``), a
README, and tests that subclass the conformance kit. ``pip install -e`` it and it shows in
``plugformer plugins``; its tests pass without edits. A name whose distribution is installed, or
whose task the core or an installed plugin already registers, is refused: the result could
not be installed beside it.
"""

from __future__ import annotations

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
    target = Path(directory) / dist
    if target.exists():
        raise PlugformerError(f"{target}: already exists")
    values = {
        "name": name,
        "package": package,
        "dist": dist,
        "class_name": "".join(p.capitalize() for p in name.split("-")) + "Task",
        "template": template,
        "base": _BASES[template],
    }
    templates = resources.files("plugformer") / "templates"
    with atomic_dir(target, overwrite=False) as tmp:
        for src, dst in _FILES.items():
            text = (templates / src.format(template=template)).read_text(encoding="utf-8")
            for key, value in values.items():
                text = text.replace("{{" + key + "}}", value)
            out = tmp / dst.format(**values)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text, encoding="utf-8")
    return target
