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
    "Interrupted",
    "PlugformerError",
    "PluginError",
    "raise_if_interrupted",
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


class Interrupted(BaseException):
    """The run was stopped by a signal; the CLI exits ``128 + signum`` (130 SIGINT, 143 SIGTERM).

    A ``BaseException``, like ``KeyboardInterrupt``: ``except Exception`` blocks (plugin
    isolation, readers) must not swallow it.
    """

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum

    def __reduce__(self) -> tuple[type[Interrupted], tuple[int, str]]:
        # a suite's worker process sends it back to the parent pickled
        return type(self), (self.signum, str(self))

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


def raise_if_interrupted(exc: BaseException) -> None:
    """Re-raise the interruption (Ctrl-C, or a signal's :class:`Interrupted`) behind ``exc``.

    A signal that lands while a plugin's module is being imported can reach an ``except
    Exception`` block wrapped: Python turns an exception raised inside ``__set_name__`` into
    a ``RuntimeError`` ("Error calling __set_name__ on ..."), its cause the interruption. Code
    that isolates plugin failures calls this first, so an interrupted run still ends as one
    (exit 130 / 143), not as a plugin reported broken."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (KeyboardInterrupt, Interrupted)):
            raise current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
