"""The core's backbone families, registered like any plugin's.

``native``: a plugformer backbone checkpoint directory (a bare path means the same).
``scratch``: the architecture and tokenizer of a checkpoint, freshly initialised — the
"no pretraining" control of benchmark suites.
"""

from __future__ import annotations

from typing import Any

from plugformer.hookspecs import hookimpl


def _native(ref: str, **_: Any) -> Any:
    from plugformer.checkpoint import load_backbone

    return load_backbone(ref)


def _scratch(ref: str, seed: int = 0, **_: Any) -> Any:
    import torch

    from plugformer.checkpoint import load_backbone
    from plugformer.model import GPT

    loaded = load_backbone(ref)
    torch.manual_seed(seed)
    loaded.model = GPT(loaded.model.config)
    loaded.manifest = {**loaded.manifest, "scratch": True}
    return loaded


@hookimpl
def register_backbones(register: Any) -> None:
    register("native", _native)
    register("scratch", _scratch)
