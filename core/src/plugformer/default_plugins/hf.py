"""The ``hf`` backbone family and the ``plugformer export`` command (the ``hf`` extra).

``hf:DIR`` (a local ``transformers`` model directory) and ``hf:NAME`` (a model recipe such
as ``hf:minilm-l6``) resolve through :func:`plugformer.hf.backbone.load_hf_backbone`.
Registering imports nothing heavy: ``transformers`` and torch are imported when an ``hf``
backbone is built or a command runs, so ``plugformer plugins`` works without the extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plugformer.hookspecs import hookimpl
from plugformer.models.families import BackboneFamily


class HFFamily(BackboneFamily):
    """``transformers`` decoders and encoders (:mod:`plugformer.hf.backbone`)."""

    name = "hf"

    def resolve(self, ref: str, **options: Any) -> Any:
        from plugformer.hf.backbone import load_hf_backbone

        return load_hf_backbone(ref, **options)

    def load(self, path: Path, manifest: dict[str, Any]) -> Any:
        from plugformer.hf.backbone import load_hf_checkpoint

        return load_hf_checkpoint(path, manifest)

    def untrained(self, model: Any, seed: int = 0) -> Any:
        import torch

        from plugformer.hf.backbone import untrained_twin

        torch.manual_seed(seed)
        return untrained_twin(model)

    def layers(self, model: Any) -> tuple[list[Any], list[Any]]:
        from plugformer.hf.backbone import layers

        return layers(model)


@hookimpl
def register_backbones(register: Any) -> None:
    register("hf", HFFamily())


@hookimpl
def register_commands(cli: Any) -> None:
    import click

    @cli.command("export")
    @click.argument("checkpoint", type=click.Path(path_type=Path))
    @click.option("--to", "fmt", type=click.Choice(["hf"]), required=True, help="Target format.")
    @click.argument("out", type=click.Path(path_type=Path))
    def export(checkpoint: Path, fmt: str, out: Path) -> None:
        """Export a native CHECKPOINT's backbone to OUT (a transformers model directory).

        Rotary/RMSNorm/SwiGLU backbones become LlamaForCausalLM, learned/LayerNorm/GELU ones
        GPT2LMHeadModel; load them with AutoModelForCausalLM / AutoTokenizer.from_pretrained(OUT).
        """
        from plugformer.hf.export import export_hf

        path = export_hf(checkpoint, out)
        click.echo(f"exported {checkpoint} -> {path}", err=True)
