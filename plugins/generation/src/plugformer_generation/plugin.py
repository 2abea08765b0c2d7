"""Entry point of the plugin: registers the ``generation`` and ``compression`` tasks and its dataset recipes.

Kept light on purpose: ``plugformer plugins`` and ``plugformer --help`` import this module,
so it names the task class by string (imported only when the task is used) and imports the
dataset recipes inside the hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plugformer import hookimpl

PLUGFORMER_API = ">=1,<2"
"""The plugformer plugin API versions this plugin works with."""


@hookimpl
def register_tasks(register: Callable[..., Any]) -> None:
    register("plugformer_generation.task:GenerationTask", name="generation")
    register("plugformer_generation.compression:CompressionTask", name="compression")


@hookimpl
def register_datasets(register: Callable[..., Any]) -> None:
    from plugformer_generation.datasets import RECIPES

    for recipe in RECIPES:
        register(recipe)


@hookimpl
def register_specs(register: Any) -> None:
    from importlib.resources import files

    register(files("plugformer_generation") / "specs")
