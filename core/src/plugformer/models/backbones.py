"""Backbones: the protocol every backbone model meets, and resolution of backbone references.

A reference is ``family:rest`` (``native:runs/x/final``, ``scratch:runs/x/final``,
``hf:minilm-l6``, ``encdec:runs/y/final``) or a plain checkpoint directory (read by the
family its manifest names). Families (:mod:`plugformer.models.families`) are registered through the
``register_backbones`` hook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

__all__ = ["Backbone", "resolve_backbone", "split_ref"]


class Backbone(Protocol):
    """What tasks and decoding may rely on in a backbone model.

    ``forward`` returns hidden states (B, T, d_model); ``attention_mask`` (B, T) is 1 for
    tokens, 0 for padding. Generative backbones (``causal``) also decode incrementally:
    ``new_cache(batch, max_len)`` gives a KV cache (``length``, ``reorder(index)``) and
    ``forward(ids, mask, cache, positions)`` extends it, ``positions`` (B, T) overriding
    0..T-1 for left-padded prompts — or the model provides ``incremental(prompts, ...)``
    itself (:mod:`plugformer.inference.decoding`).
    """

    family: str
    """The registered family that builds, loads and freezes it."""
    d_model: int
    max_seq_len: int
    causal: bool
    """Whether it can continue a sequence left to right (decoders, encoder–decoders)."""

    def __call__(
        self, input_ids: Any, attention_mask: Any = None, cache: Any = None, positions: Any = None
    ) -> Any: ...
    def lm_logits(self, hidden: Any) -> Any: ...
    def new_cache(self, batch: int, max_len: int | None = None) -> Any: ...


def split_ref(ref: str) -> tuple[str, str]:
    """``"hf:minilm-l6"`` → ("hf", "minilm-l6"); a path (even with a drive colon) → ("native", path)."""
    family, sep, rest = ref.partition(":")
    if sep and family.isidentifier() and not Path(ref).exists():
        return family, rest
    return "native", ref


def resolve_backbone(ref: str, **options: Any) -> Any:
    """Build the backbone a reference names; returns a :class:`plugformer.models.families.LoadedBackbone`."""
    from plugformer.errors import PlugformerError
    from plugformer.models.families import check_loaded, get_family

    family, rest = split_ref(str(ref))
    try:
        fam = get_family(family)
    except PlugformerError as exc:
        raise PlugformerError(f"backbone {ref!r}: {exc}") from None
    return check_loaded(family, fam.resolve(rest, **options))
