"""The core's declarative tasks: a spec names one and configures it in ``[options]`` alone.

``task = "classification"`` with ``text_fields``, ``labels``, ``metrics`` and ``baselines``
in ``[options]`` is a complete task with no Python (like an lm-evaluation-harness YAML);
``tagging``, ``span`` and ``conditional-generation`` likewise. Registered lazily: torch is
imported only when one is used.
"""

from __future__ import annotations

from typing import Any

from plugformer.hookspecs import hookimpl

DECLARATIVE = {
    "classification": "plugformer.default_plugins.declarative:Classification",
    "tagging": "plugformer.default_plugins.declarative:Tagging",
    "span": "plugformer.default_plugins.declarative:Span",
    "conditional-generation": "plugformer.default_plugins.declarative:ConditionalGeneration",
}


@hookimpl
def register_tasks(register: Any) -> None:
    for name, ref in DECLARATIVE.items():
        register(ref, name=name)
