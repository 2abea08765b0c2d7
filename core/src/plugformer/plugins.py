"""The plugin API in one place: what :mod:`plugformer.plugin_manager` loads and
:mod:`plugformer.plugin_registries` collects.

``from plugformer import plugins`` then ``plugins.tasks()``, ``plugins.plugin_infos()``,
``plugins.register_plugin(module, name)``: the names callers and plugin authors use, whichever
of the two modules does the work. Neither module imports this one.
"""

from __future__ import annotations

from plugformer.plugin_manager import (
    DEFAULT_PLUGINS,
    ENTRY_POINT_GROUP,
    PluginExit,
    PluginInfo,
    PluginTimeout,
    get_plugin_manager,
    hook_timeout,
    register_plugin,
    reset,
    set_strict,
    strict,
    unregister_plugin,
)
from plugformer.plugin_registries import (
    REGISTRATION_HOOKS,
    SPEC_KINDS,
    backbones,
    check_lazy_references,
    datasets,
    decoding_strategies,
    get_task_class,
    named_specs,
    objectives,
    plugin_infos,
    raise_if_broken,
    tasks,
)
from plugformer.registries import Registry

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "REGISTRATION_HOOKS",
    "SPEC_KINDS",
    "PluginExit",
    "PluginInfo",
    "PluginTimeout",
    "Registry",
    "backbones",
    "check_lazy_references",
    "datasets",
    "decoding_strategies",
    "get_plugin_manager",
    "get_task_class",
    "hook_timeout",
    "named_specs",
    "objectives",
    "plugin_infos",
    "raise_if_broken",
    "register_plugin",
    "reset",
    "set_strict",
    "strict",
    "tasks",
    "unregister_plugin",
]
