"""The core's backbone families, registered like any plugin's.

``native``: a plugformer GPT checkpoint directory (a bare path means the same).
``scratch``: any backbone reference (``scratch:runs/x/final``, ``scratch:hf:minilm-l6``), its
architecture and tokenizer freshly initialised by its own family — the "no pretraining"
control of benchmark suites.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plugformer.hookspecs import hookimpl
from plugformer.models.families import (
    BackboneFamily,
    LoadedBackbone,
    NoOptions,
    get_family,
    invalid_model_config,
)


class NativeFamily(BackboneFamily):
    """The native GPT (:mod:`plugformer.models.gpt`): causal decoder or, with ``causal=False``, encoder."""

    name = "native"
    Options = NoOptions  # every setting of the native GPT is a [model] field

    def resolve(self, ref: str, **_: Any) -> LoadedBackbone:
        from plugformer.checkpoint import load_backbone

        return load_backbone(ref)

    def build(self, model_config: dict[str, Any]) -> Any:
        from plugformer.config import ModelConfig
        from plugformer.models.gpt import GPT

        self.read_options(model_config)  # refuses settings it would silently ignore
        return GPT(ModelConfig.model_validate(model_config))

    def load(self, path: Path, manifest: dict[str, Any]) -> LoadedBackbone:
        """Verify, then load: every hash is mandatory and checked, and the weights' shapes
        (read from the safetensors header) must match the config — all before any parameter
        is allocated, so a tampered manifest cannot make it allocate or mis-load."""
        from plugformer.checkpoint import MANIFEST, load_weights
        from plugformer.config import ModelConfig
        from plugformer.errors import CheckpointError
        from plugformer.manifest import check_shapes, native_shapes, validate_manifest, verify_files

        tokenizer = self.load_tokenizer(path, manifest)
        verify_files(path, validate_manifest(manifest, path / MANIFEST), tokenizer.hash)
        try:
            cfg = ModelConfig.model_validate(manifest["model_config"])
            self.read_options(manifest["model_config"])
        except Exception as exc:
            raise invalid_model_config(path, exc, ModelConfig) from None
        if cfg.vocab_size != tokenizer.vocab_size:
            raise CheckpointError(
                f"{path}: model_config.vocab_size {cfg.vocab_size} != the tokenizer's "
                f"{tokenizer.vocab_size}"
            )
        tied = {"lm_head.weight"} if cfg.tie_embeddings else set()
        check_shapes(path / "model.safetensors", native_shapes(cfg), tied)
        from plugformer.models.gpt import GPT

        model = GPT(cfg)
        load_weights(model, path / "model.safetensors")
        model.eval()
        return LoadedBackbone(model, tokenizer, manifest, str(path))

    def layers(self, model: Any) -> tuple[list[Any], list[Any]]:
        embeddings = [m for m in (model.wte, model.wpe) if m is not None]
        return embeddings, list(model.blocks)

    def extend_context(self, model: Any, max_seq_len: int) -> None:
        from plugformer.errors import PlugformerError

        try:
            model.extend_context(max_seq_len)
        except ValueError as exc:
            raise PlugformerError(str(exc)) from None


class ScratchFamily(BackboneFamily):
    """``scratch:REF``: the backbone REF names, re-initialised by its own family."""

    name = "scratch"

    def resolve(self, ref: str, seed: int = 0, **options: Any) -> LoadedBackbone:
        from plugformer.models.backbones import resolve_backbone
        from plugformer.models.families import family_name

        loaded = resolve_backbone(ref, seed=seed, **options)
        loaded.model = get_family(family_name(loaded.model)).untrained(loaded.model, seed)
        loaded.manifest = {**loaded.manifest, "scratch": True}
        return loaded


@hookimpl
def register_backbones(register: Any) -> None:
    register("native", NativeFamily())
    register("scratch", ScratchFamily())
