"""plugformer: a plugin-based NLP task framework.

Importing this package is cheap (no torch, no Lightning): heavy names are loaded on first
use. Plugins import only what is listed in ``__all__``.

Layout of the package (each subpackage's ``__init__`` says what its modules hold)::

    plugformer/
      __init__.py        this facade: the public names, imported lazily
      config.py          pydantic configs (HardwareConfig shared by trainer and finetune),
                         TOML loading, --set overrides
      hookspecs.py       every hook and its contract;  plugins.py  the plugin API, from:
      plugin_manager.py  loading, broken plugins, hook calls;  plugin_registries.py  what
                         plugins register;  registries.py  the Registry class
      tasks.py           the Task base;  lm_task.py  the causal-LM task base
      checkpoint.py      checkpoint format;  manifest.py  its manifest
      tokenizer.py       byte-level BPE;  testing.py  the conformance kit for task plugins
      specs.py, specfiles.py, scaffold.py, metrics.py, metric_info.py, errors.py,
      fileio.py, outdir.py, signals.py, threads.py       small shared pieces
      models/            gpt (native backbone), encdec, families, backbones
      training/          pretrain, finetune, common (Trainer, precision), schedule,
                         objectives, losses
      inference/         predictor (load, Predictor), generation, decoding, samples
      suites/            config, bench, cellcache, report, report_compute, compare,
                         ngram, quickstart
      cli/               main (root group, entry point); run, predict, inspect, catalog,
                         bench, quickstart: the built-in commands, one family a module
      blocks/            task bases by shape (classification, span, seq2seq, tagging)
      data/              corpus cache, dataset recipes, readers, mixtures
      hf/                Hugging Face backbones, export, lm-eval adapter
      default_plugins/   the core's own plugins (backbones, objectives, corpora, specs,
                         commands, ...), registered like any third-party plugin
      configs/, templates/   package data: named configs, new-plugin templates
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
