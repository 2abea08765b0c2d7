"""plugformer: a plugin-based NLP task framework.

Importing this package is cheap (no torch, no Lightning): heavy names are loaded on first
use. Plugins import only what is listed in ``__all__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plugformer.errors import CheckpointError, ConfigError, DataError, PlugformerError, PluginError
from plugformer.hookspecs import hookimpl

__version__ = "0.1.0"
PLUGIN_API_VERSION = 1
"""The plugin API this core implements; plugins declare ``PLUGFORMER_API = ">=1,<2"``."""

__all__ = [
    "PLUGIN_API_VERSION",
    "SEP",
    "Baseline",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DebianSource",
    "Objective",
    "PlugformerError",
    "PluginError",
    "PyPISource",
    "Recipe",
    "Task",
    "TaskOptions",
    "__version__",
    "evaluate",
    "finetune",
    "hookimpl",
    "load",
    "pretrain",
]

# name -> module that defines it; imported lazily (PEP 562) so `import plugformer` stays fast.
_LAZY = {
    "Task": "plugformer.tasks",
    "SEP": "plugformer.tasks",
    "TaskOptions": "plugformer.tasks",
    "Baseline": "plugformer.tasks",
    "Recipe": "plugformer.data.recipes",
    "PyPISource": "plugformer.data.recipes",
    "DebianSource": "plugformer.data.recipes",
    "Objective": "plugformer.training.objectives",
    "pretrain": "plugformer.training.pretrain",
    "finetune": "plugformer.training.finetune",
    "evaluate": "plugformer.training.finetune",
    "load": "plugformer.inference.predictor",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'plugformer' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from plugformer.data.recipes import DebianSource, PyPISource, Recipe
    from plugformer.inference.predictor import load
    from plugformer.tasks import Baseline, Task, TaskOptions
    from plugformer.training.finetune import evaluate, finetune
    from plugformer.training.objectives import Objective
    from plugformer.training.pretrain import pretrain
