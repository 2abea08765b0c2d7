"""The core's named config files: pretraining configs and the default benchmark suites.

They ship inside the ``plugformer`` package (``plugformer/configs/pretrain/*.toml`` and
``plugformer/configs/suites/*.toml``) and are registered like any plugin's task specs, so
``plugformer pretrain tiny`` and ``plugformer bench default`` work from an installed wheel.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from plugformer.hookspecs import hookimpl

__all__ = ["register_specs"]


@hookimpl
def register_specs(register: Any) -> None:
    root = files("plugformer") / "configs"
    register(root / "pretrain", kind="pretrain")
    register(root / "suites", kind="suite")
