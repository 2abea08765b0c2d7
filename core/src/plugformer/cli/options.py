"""Option help shared by several families of built-in commands."""

from __future__ import annotations

__all__ = ["SET_HELP"]

SET_HELP = "Override a config value, e.g. --set model.d_model=128 (repeatable)."
