"""The core's backbone families, registered like any plugin's.

``native``: a plugformer GPT checkpoint directory (a bare path means the same).
``scratch``: any backbone reference (``scratch:runs/x/final``, ``scratch:hf:minilm-l6``), its
architecture and tokenizer freshly initialised by its own family — the "no pretraining"
control of benchmark suites.
"""

from __future__ import annotations

from typing import Any

from plugformer.families import BackboneFamily, LoadedBackbone, get_family
from plugformer.hookspecs import hookimpl


class NativeFamily(BackboneFamily):
    """The native GPT (:mod:`plugformer.model`): causal decoder or, with ``causal=False``, encoder."""

    name = "native"

    def resolve(self, ref: str, **_: Any) -> LoadedBackbone:
        from plugformer.checkpoint import load_backbone

        return load_backbone(ref)

    def build(self, model_config: dict[str, Any]) -> Any:
        from plugformer.config import ModelConfig
        from plugformer.model import GPT

        return GPT(ModelConfig.model_validate(model_config))

    def layers(self, model: Any) -> tuple[list[Any], list[Any]]:
        embeddings = [m for m in (model.wte, model.wpe) if m is not None]
        return embeddings, list(model.blocks)


class ScratchFamily(BackboneFamily):
    """``scratch:REF``: the backbone REF names, re-initialised by its own family."""

    name = "scratch"

    def resolve(self, ref: str, seed: int = 0, **options: Any) -> LoadedBackbone:
        from plugformer.backbones import resolve_backbone
        from plugformer.families import family_name

        loaded = resolve_backbone(ref, seed=seed, **options)
        loaded.model = get_family(family_name(loaded.model)).untrained(loaded.model, seed)
        loaded.manifest = {**loaded.manifest, "scratch": True}
        return loaded


@hookimpl
def register_backbones(register: Any) -> None:
    register("native", NativeFamily())
    register("scratch", ScratchFamily())
