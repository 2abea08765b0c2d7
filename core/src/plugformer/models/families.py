"""Backbone families: the contract a model architecture meets to be a plugformer backbone.

A family is registered through the ``register_backbones`` hook (``register(name, family)``),
the core's own (``native``, ``hf``, ``encdec``) exactly like a plugin's. It knows how to:

* **resolve** a reference ``name:rest`` into a :class:`LoadedBackbone` (model + tokenizer);
* **build** a model from a manifest's ``model_config`` — which gives an untrained twin
  (``scratch:REF`` for any family) and checkpoint loading for free;
* **load** its checkpoints: the manifest names the family (``"family"``) and
  :func:`plugformer.checkpoint.load_backbone` picks the loader from the registry;
* **freeze** its lowest N layers (:meth:`BackboneFamily.layers`: embeddings, then blocks);
* report its model's **kind**: ``decoder`` (causal), ``encoder`` (bidirectional) or
  ``encoder-decoder``;
* decode incrementally where it can generate: its model meets the causal decoding surface
  (``forward(ids, mask, cache, positions)``, ``lm_logits``, ``new_cache``) or provides
  ``incremental(prompts, ...)`` (see :mod:`plugformer.inference.decoding`).

A model names its family in a ``family`` attribute (``"native"`` when absent). A plain
callable registered as a family (the older form) still resolves references; it must return a
:class:`LoadedBackbone`. What pretraining and decoding need of a model is checked once, before
any work, by :func:`check_pretrainable` and :func:`check_decodable`; the guide is
docs/plugins.md#backbone-families.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from plugformer.errors import CheckpointError, PlugformerError

__all__ = [
    "KINDS",
    "BackboneFamily",
    "LoadedBackbone",
    "NoOptions",
    "check_decodable",
    "check_loaded",
    "check_model_family",
    "check_pretrainable",
    "extend_context",
    "family_name",
    "freeze_layers",
    "get_family",
    "invalid_model_config",
    "kind_of",
]

KINDS = ("decoder", "encoder", "encoder-decoder")
"""What a backbone is: causal decoder, bidirectional encoder, or encoder–decoder."""

GUIDE = "docs/plugins.md#backbone-families"
"""Where a family's author reads what a model must provide (named in every refusal)."""

PRETRAIN_SURFACE = ("lm_logits", "config.model_dump", "family")
"""Members pretraining needs of a model besides ``forward(ids) -> hidden (B, T, C)``."""


@dataclass
class LoadedBackbone:
    """A backbone model with its tokenizer and manifest (what :meth:`BackboneFamily.resolve` returns)."""

    model: Any
    tokenizer: Any
    manifest: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """Refused: ``plugformer.load`` of a *backbone* checkpoint gives this, which has no task
        head to predict with (a task checkpoint gives a ``Predictor``)."""
        raise PlugformerError(
            f"{self.path or 'this backbone'} is a backbone checkpoint, with no task head to "
            "predict with: fine-tune it (plugformer.finetune(SPEC, backbone=...)) and load the "
            "task checkpoint that writes"
        )


class BackboneFamily:
    """Base class of a family. Subclasses set :attr:`name` and implement :meth:`resolve`,
    :meth:`build` and :meth:`layers`; the rest has working defaults."""

    name: str = ""
    Options: ClassVar[Any] = None
    """A pydantic model of the family's own settings (``[model.options]`` of a pretraining
    config), checked when the config is validated; ``None`` takes any table."""

    def resolve(self, ref: str, **options: Any) -> LoadedBackbone:
        """The backbone ``ref`` names (the part after ``name:``). ``options``: ``seed``, ..."""
        raise NotImplementedError

    def build(self, model_config: dict[str, Any]) -> Any:
        """A freshly initialised model for a manifest's ``model_config`` (a pretraining
        config's ``[model]``, its ``options`` table included)."""
        raise PlugformerError(f"backbone family {self.name!r} cannot build a model from a config")

    def read_options(self, model_config: dict[str, Any]) -> Any:
        """``model_config["options"]`` validated by :attr:`Options` (a plain dict when it is
        None); a bad key or value is one line naming the family."""
        raw = model_config.get("options") or {}
        if self.Options is None:
            return dict(raw)
        from plugformer.config import parse_model

        return parse_model(self.Options, dict(raw), f"backbone family {self.name!r}", (), "options")

    def untrained(self, model: Any, seed: int = 0) -> Any:
        """The same architecture as ``model``, freshly initialised (``scratch:``)."""
        import torch

        torch.manual_seed(seed)
        return self.build(model.config.model_dump())

    def load_tokenizer(self, path: Path, manifest: dict[str, Any]) -> Any:
        """The checkpoint's tokenizer, checked against the manifest's hash."""
        from plugformer.tokenizer import Tokenizer

        tokenizer = Tokenizer.from_file(path / "tokenizer.json")
        want = manifest.get("tokenizer_sha256")
        if want and want != tokenizer.hash:
            raise CheckpointError(
                f"{path}: tokenizer.json does not match the manifest's tokenizer_sha256"
            )
        return tokenizer

    def load(self, path: Path, manifest: dict[str, Any]) -> LoadedBackbone:
        """A checkpoint of this family (backbone, or the backbone of a task checkpoint)."""
        from plugformer.checkpoint import load_weights

        tokenizer = self.load_tokenizer(path, manifest)
        try:
            model = self.build(manifest["model_config"])
        except (KeyError, TypeError, ValueError) as exc:  # ValidationError is a ValueError
            raise invalid_model_config(path, exc) from None
        load_weights(model, path / "model.safetensors")
        model.eval()
        return LoadedBackbone(model, tokenizer, manifest, str(path))

    def layers(self, model: Any) -> tuple[list[Any], list[Any]]:
        """(embedding modules, blocks from the input upwards): what ``freeze_layers`` counts."""
        raise PlugformerError(f"backbone family {self.name!r} cannot freeze layers")

    def freeze_layers(self, model: Any, n: int) -> None:
        """Freeze the embeddings and the lowest ``n`` blocks."""
        embeddings, blocks = self.layers(model)
        if n > len(blocks):
            raise PlugformerError(
                f"finetune.freeze_layers={n}, but this {self.name} backbone has {len(blocks)} layers"
            )
        for module in [*embeddings, *blocks[:n]]:
            module.requires_grad_(False)

    def extend_context(self, model: Any, max_seq_len: int) -> None:
        """Let ``model`` read ``max_seq_len`` tokens, more than it was built for
        (``finetune.max_seq_len``); families whose positions cannot be extended refuse."""
        raise PlugformerError(
            f"backbone family {self.name!r} cannot extend its context to {max_seq_len} tokens"
        )

    def kind(self, model: Any) -> str:
        """One of :data:`KINDS`."""
        return getattr(model, "kind", None) or ("decoder" if model.causal else "encoder")


class _CallableFamily(BackboneFamily):
    """A family registered as a plain ``factory(ref, **options)``: it only resolves references."""

    def __init__(self, name: str, factory: Callable[..., LoadedBackbone]) -> None:
        self.name, self.factory = name, factory

    def resolve(self, ref: str, **options: Any) -> LoadedBackbone:
        return check_loaded(self.name, self.factory(ref, **options))


class NoOptions(BaseModel):
    """The :attr:`BackboneFamily.Options` of a family that has no settings of its own."""

    model_config = ConfigDict(extra="forbid")


def invalid_model_config(
    path: Path, exc: Exception, model: type[BaseModel] = BaseModel
) -> CheckpointError:
    """A manifest's ``model_config`` that a family's config model (``model``, whose fields an
    unknown key's did-you-mean is drawn from) refuses, as one line naming the field
    (pydantic's own message spans lines and ends in a URL)."""
    from pydantic import ValidationError

    where = f"{path}: invalid model_config in manifest"
    if isinstance(exc, ValidationError):
        from plugformer.tomlconfig import format_validation_error

        return CheckpointError(format_validation_error(exc, model, where, "model_config"))
    first = str(exc).splitlines()[0] if str(exc) else repr(exc)
    return CheckpointError(f"{where} ({first})")


def check_loaded(name: str, result: Any) -> LoadedBackbone:
    """``result`` of family ``name``'s resolve, refused in one line unless a LoadedBackbone."""
    if not isinstance(result, LoadedBackbone):
        raise PlugformerError(
            f"backbone family {name!r} returned a {type(result).__name__} from resolve, expected "
            f"a plugformer.models.families.LoadedBackbone (model, tokenizer); see {GUIDE}"
        )
    return result


def _lacks(model: Any, members: tuple[str, ...]) -> list[str]:
    """The dotted members (``config.model_dump``) ``model`` does not have."""
    missing = []
    for dotted in members:
        obj = model
        for part in dotted.split("."):
            if not hasattr(obj, part):
                missing.append(dotted)
                break
            obj = getattr(obj, part)
    return missing


def check_pretrainable(model: Any, name: str) -> None:
    """Refuse, in one line, a model of family ``name`` that pretraining cannot train and save
    (:data:`PRETRAIN_SURFACE`); ``lm_head`` and ``num_params`` are optional."""
    missing = _lacks(model, PRETRAIN_SURFACE)
    if missing:
        raise PlugformerError(
            f"backbone family {name!r}: its model lacks {', '.join(missing)} (needed to "
            f"pretrain; see {GUIDE})"
        )
    if model.family != name:  # the manifest names model.family: its checkpoints must load here
        raise PlugformerError(
            f"backbone family {name!r}: its model's family attribute is {model.family!r}, "
            f"expected {name!r} (needed to pretrain; see {GUIDE})"
        )


def check_decodable(model: Any) -> None:
    """Refuse, in one line, a model that cannot generate: it needs the causal decoding
    surface (``new_cache`` and ``lm_logits``) or its own ``incremental()``."""
    if hasattr(model, "incremental") or not _lacks(model, ("new_cache", "lm_logits")):
        return
    raise PlugformerError(
        f"backbone family {family_name(model)!r} cannot decode (its model needs new_cache and "
        f"lm_logits, or incremental(); see {GUIDE})"
    )


def get_family(name: str) -> BackboneFamily:
    """The family registered as ``name``; one clear error naming the installed ones."""
    from plugformer.plugin_registries import backbones

    registry = backbones()
    if name not in registry:
        raise PlugformerError(
            f"unknown backbone family {name!r} (installed: {', '.join(registry.names())})"
        )
    item = registry.get(name)
    return item if isinstance(item, BackboneFamily) else _CallableFamily(name, item)


def check_model_family(
    model: Any, source: str, overrides: list[str] | tuple[str, ...] = ()
) -> None:
    """Check a pretraining config's ``model.family`` (a :class:`plugformer.config.ModelConfig`)
    names an installed family that can build a model, and ``model.options`` against the
    family's ``Options``: one ConfigError line naming ``source`` and the field, before any work
    starts (``config validate`` and ``pretrain`` both call it)."""
    import difflib

    from plugformer.config import parse_model
    from plugformer.errors import ConfigError
    from plugformer.plugin_registries import backbones

    installed = backbones().names()
    if model.family not in installed:
        hint = difflib.get_close_matches(model.family, installed, n=1)
        raise ConfigError(
            f"{source}: model.family: unknown backbone family {model.family!r} ("
            + (f"did you mean {hint[0]!r}?; " if hint else "")
            + f"installed: {', '.join(installed)})"
        )
    family = get_family(model.family)
    if type(family).build is BackboneFamily.build:
        raise ConfigError(
            f"{source}: model.family: backbone family {model.family!r} cannot build a model from "
            f"a config, which pretraining needs (see {GUIDE})"
        )
    if family.Options is not None:
        parse_model(family.Options, dict(model.options), source, overrides, "model.options")


def family_name(model: Any) -> str:
    """The family a model belongs to (its ``family`` attribute; ``native`` by default)."""
    return getattr(model, "family", "native")


def kind_of(model: Any) -> str:
    """``decoder``, ``encoder`` or ``encoder-decoder``, as the model's family reports it."""
    return get_family(family_name(model)).kind(model)


def freeze_layers(model: Any, n: int) -> None:
    """Freeze a backbone's embeddings and lowest ``n`` layers, whatever its family."""
    get_family(family_name(model)).freeze_layers(model, n)


def extend_context(model: Any, max_seq_len: int) -> None:
    """Extend a backbone's context to ``max_seq_len`` tokens, whatever its family (a no-op
    when it already reads that many)."""
    if max_seq_len > model.max_seq_len:
        get_family(family_name(model)).extend_context(model, max_seq_len)
