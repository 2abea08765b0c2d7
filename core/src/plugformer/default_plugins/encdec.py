"""The ``encdec`` backbone family (:mod:`plugformer.models.encdec`), registered like any plugin's.

``encdec:DIR`` names an encoder–decoder checkpoint directory (a bare path works too: the
manifest names the family). Pretrain one with ``model.family = "encdec"`` and objective
``denoise`` (or ``clm``); the causal LM tasks (translation, generation) fine-tune on it
unchanged.
"""

from __future__ import annotations

from typing import Any

from plugformer.hookspecs import hookimpl
from plugformer.models.families import BackboneFamily, LoadedBackbone, NoOptions


class EncDecFamily(BackboneFamily):
    """Encoder–decoder Transformers built from a :class:`plugformer.config.ModelConfig`."""

    name = "encdec"
    Options = NoOptions  # every setting is a [model] field

    def resolve(self, ref: str, **_: Any) -> LoadedBackbone:
        from plugformer.checkpoint import load_backbone

        return load_backbone(ref)

    def build(self, model_config: dict[str, Any]) -> Any:
        from plugformer.config import ModelConfig
        from plugformer.models.encdec import EncoderDecoder

        self.read_options(model_config)  # refuses settings it would silently ignore
        return EncoderDecoder(ModelConfig.model_validate({**model_config, "family": self.name}))

    def layers(self, model: Any) -> tuple[list[Any], list[Any]]:
        """Embeddings, then the encoder's blocks, then the decoder's (input upwards)."""
        embeddings = [m for m in (model.wte, model.enc_wpe, model.dec_wpe) if m is not None]
        return embeddings, [*model.encoder, *model.decoder]

    def kind(self, model: Any) -> str:
        return "encoder-decoder"


@hookimpl
def register_backbones(register: Any) -> None:
    register("encdec", EncDecFamily())
