"""Backbones: the protocol every backbone meets, and resolution of backbone references.

A reference is ``family:rest`` (``native:runs/x/final``, ``scratch:runs/x/final``,
``hf:minilm-l6``) or a plain checkpoint directory (the ``native`` family). Families are
registered through the ``register_backbones`` hook.

The protocol (what tasks may rely on)::

    backbone(input_ids (B, T), attention_mask (B, T) | None) -> hidden (B, T, d_model)
    backbone.d_model, backbone.max_seq_len, backbone.causal
    backbone.lm_logits(hidden) -> (B, T, V)        # generative tasks
    backbone.new_cache(batch, max_len) -> KVCache  # KV-cache decoding (causal only)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from plugformer.errors import PlugformerError

__all__ = ["Backbone", "resolve_backbone"]


class Backbone(Protocol):
    d_model: int
    max_seq_len: int
    causal: bool

    def __call__(self, input_ids: Any, attention_mask: Any = None) -> Any: ...
    def lm_logits(self, hidden: Any) -> Any: ...


def split_ref(ref: str) -> tuple[str, str]:
    """``"hf:minilm-l6"`` → ("hf", "minilm-l6"); a path (even with a drive colon) → ("native", path)."""
    family, sep, rest = ref.partition(":")
    if sep and family.isidentifier() and not Path(ref).exists():
        return family, rest
    return "native", ref


def resolve_backbone(ref: str, **options: Any) -> Any:
    """Build the backbone a reference names; returns a :class:`LoadedBackbone`."""
    from plugformer import plugins

    family, rest = split_ref(str(ref))
    registry = plugins.backbones()
    if family not in registry:
        raise PlugformerError(
            f"backbone {ref!r}: unknown family {family!r} (installed: {', '.join(registry.names())})"
        )
    return registry.get(family)(rest, **options)
