"""Hook implementations of plugformer-qa: what the entry point loads.

This module is imported whenever plugformer lists its plugins, so it stays light: no torch,
no Lightning. The task class is registered by reference (imported when the task is used);
dataset recipes and the SQuAD JSON reader are imported inside their hooks.
"""

from __future__ import annotations

from typing import Any

from plugformer import hookimpl

PLUGFORMER_API = ">=1,<2"
"""The plugformer plugin API this plugin is written against."""


@hookimpl
def register_tasks(register: Any) -> None:
    register("plugformer_qa.task:QATask", name="qa")


@hookimpl
def register_datasets(register: Any) -> None:
    from plugformer_qa.datasets import RECIPES

    for recipe in RECIPES:
        register(recipe)


@hookimpl
def read_examples(path: str, task: Any) -> list[dict[str, Any]] | None:
    """Read a SQuAD v1.1 JSON file for the ``qa`` task; ``None`` for anything else.

    Each question is validated here with its JSON location (``dev.json: data[3].paragraphs[0]
    .qas[7]: field 'answers.0.text': ...``), since a single JSON document has no useful line.
    """
    if getattr(task, "name", None) != "qa" or not path.lower().endswith(".json"):
        return None
    from plugformer_qa.squad import read_squad

    located = read_squad(path)
    if located is None:
        return None
    for where, record in located:
        task.parse_example(record, where)
    return [record for _, record in located]


@hookimpl
def register_specs(register: Any) -> None:
    from importlib.resources import files

    register(files("plugformer_qa") / "specs")
