"""Hook implementations of plugformer-sentiment: what the entry point loads.

This module is imported whenever plugformer lists its plugins, so it stays light: no torch,
no Lightning. The task class is registered by reference (imported when the task is used) and
the dataset recipes are imported inside the hook.
"""

from __future__ import annotations

from typing import Any

from plugformer import hookimpl

PLUGFORMER_API = ">=1,<2"
"""The plugformer plugin API this plugin is written against."""


@hookimpl
def register_tasks(register: Any) -> None:
    register("plugformer_sentiment.task:SentimentTask", name="sentiment")


@hookimpl
def register_datasets(register: Any) -> None:
    from plugformer_sentiment.datasets import RECIPES

    for recipe in RECIPES:
        register(recipe)


@hookimpl
def register_specs(register: Any) -> None:
    from importlib.resources import files

    register(files("plugformer_sentiment") / "specs")
