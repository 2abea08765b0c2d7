"""The project's error types.

Every error a user can cause by bad input (a config, a data file, a checkpoint, a
plugin) is a :class:`PlugformerError`: the CLI prints its message as one line and exits
non-zero, without a traceback unless ``--debug``.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "PlugformerError",
    "PluginError",
]


class PlugformerError(Exception):
    """Base class: a problem the user can fix; its message is one line saying what and where."""


class ConfigError(PlugformerError):
    """A configuration file or override is invalid (names the file and dotted field)."""


class DataError(PlugformerError):
    """A data file or dataset recipe is invalid or unavailable (names file and line)."""


class CheckpointError(PlugformerError):
    """A checkpoint directory is missing, corrupt, or incompatible."""


class PluginError(PlugformerError):
    """A plugin is broken, incompatible, or conflicts with another."""
