"""Hugging Face ``transformers`` models as plugformer backbones (the ``hf`` family).

``hf:DIR`` wraps any local model directory (``config.json`` + weights + a fast tokenizer),
``hf:NAME`` a model recipe (:mod:`plugformer.hf.recipes`, e.g. ``hf:minilm-l6``). Nothing is
fetched from a model hub: every ``from_pretrained`` runs with ``local_files_only=True``.

* :class:`HFTokenizer` puts the model's own tokenizer behind the plugformer tokenizer
  interface. The reserved ids map to the tokenizer's special tokens: BERT-style
  ``pad``/``sep``/``mask`` are ``[PAD]``/``[SEP]``/``[MASK]``, ``bos`` is ``[CLS]`` and
  ``eos`` is ``[SEP]``; a GPT-2-style tokenizer without pad/sep uses its eos token for both
  (and has no mask: ``mask_id`` is ``None``). Offsets come from the ``tokenizers`` fast
  tokenizer; truncation and padding stored in ``tokenizer.json`` are switched off (tasks
  truncate and pad themselves).
* :class:`HFBackbone` is an ``nn.Module`` meeting the backbone protocol:
  ``forward(input_ids, attention_mask) -> last hidden state (B, T, C)``, ``d_model``,
  ``max_seq_len``, ``causal`` (the model is a decoder), ``lm_logits`` and ``new_cache``
  (decoders; KV-cache decoding through the model's own cache), and a ``config`` that task
  checkpoints store (``model_dump()``).

A task checkpoint of an HF backbone has ``"architecture": "hf"`` in its manifest and the
``transformers`` config, the causal flag and the special-token map under ``model_config``;
:func:`plugformer.checkpoint.load_backbone` hands such checkpoints (``"family": "hf"``) to the
``hf`` family (:mod:`plugformer.default_plugins.hf`), which loads them with
:func:`load_hf_checkpoint`.
"""

from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer as _FastTokenizer
from torch import nn

from plugformer.errors import CheckpointError, PlugformerError
from plugformer.hf import quiet, require
from plugformer.models.families import LoadedBackbone
from plugformer.tokenizer import Tokenizer

__all__ = [
    "ARCHITECTURE",
    "HFBackbone",
    "HFBackboneConfig",
    "HFCache",
    "HFTokenizer",
    "load_hf_backbone",
    "load_hf_checkpoint",
    "load_hf_dir",
]

ARCHITECTURE = "hf"
"""The manifest ``architecture`` of checkpoints whose backbone is a ``transformers`` model."""

# plugformer's reserved names -> the HF special-token attributes tried in order.
_SPECIAL_SOURCES: dict[str, tuple[str, ...]] = {
    "pad": ("pad_token", "eos_token"),
    "bos": ("bos_token", "cls_token", "eos_token"),
    "eos": ("eos_token", "sep_token"),
    "sep": ("sep_token", "eos_token"),
    "mask": ("mask_token",),
}


# --------------------------------------------------------------------------- tokenizer


class HFTokenizer(Tokenizer):
    """A ``transformers`` model's fast tokenizer with plugformer's tokenizer interface.

    :param backend: the ``tokenizers.Tokenizer`` (as in the model's ``tokenizer.json``).
    :param special_tokens: plugformer role (``pad``, ``bos``, ``eos``, ``sep``, ``mask``) ->
        token string, or ``None`` where the tokenizer has no such token (only ``mask``).
    """

    def __init__(self, backend: _FastTokenizer, special_tokens: dict[str, str | None]) -> None:
        self.hf = backend
        self.hf.no_truncation()
        self.hf.no_padding()
        self.special_tokens = dict(special_tokens)
        ids: dict[str, int | None] = {}
        for role in _SPECIAL_SOURCES:
            token = self.special_tokens.get(role)
            ids[role] = None if token is None else backend.token_to_id(token)
            if ids[role] is None and (token is not None or role != "mask"):
                raise CheckpointError(
                    f"tokenizer has no {role} token ({token!r} is not in its vocabulary)"
                )
        self.pad_id: int = ids["pad"]  # type: ignore[assignment]
        self.bos_id: int = ids["bos"]  # type: ignore[assignment]
        self.eos_id: int = ids["eos"]  # type: ignore[assignment]
        self.sep_id: int = ids["sep"]  # type: ignore[assignment]
        self.mask_id: int | None = ids["mask"]

    @classmethod
    def from_pretrained(cls, path: str | Path) -> HFTokenizer:
        """The fast tokenizer of a local model directory, special tokens as its config says."""
        transformers = require("transformers")
        try:
            auto = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"{path}: cannot load its tokenizer ({str(exc).splitlines()[0]})"
            ) from None
        backend = getattr(auto, "backend_tokenizer", None)
        if backend is None:
            raise CheckpointError(
                f"{path}: needs a fast tokenizer (tokenizer.json); {type(auto).__name__} is slow"
            )
        special: dict[str, str | None] = {}
        for role, sources in _SPECIAL_SOURCES.items():
            special[role] = next((str(t) for a in sources if (t := getattr(auto, a, None))), None)
        return cls(_FastTokenizer.from_str(backend.to_str()), special)

    # Serialisation, hash, vocab_size, encode*, decode: inherited from Tokenizer.

    def special(self, token: str) -> int:
        """Id of ``"<pad>"``, ``"<bos>"``, ``"<eos>"``, ``"<sep>"``, ``"<mask>"`` or any token string."""
        role = token.strip("<>")
        if token.startswith("<") and role in _SPECIAL_SOURCES:
            tid = getattr(self, f"{role}_id")
        else:
            tid = self.hf.token_to_id(token)
        if tid is None:
            raise KeyError(f"{token!r} is not a token of this tokenizer")
        return int(tid)


# --------------------------------------------------------------------------- model


@dataclass
class HFBackboneConfig:
    """What a checkpoint needs to rebuild an :class:`HFBackbone` (``model_config`` in manifests)."""

    hf_config: dict[str, Any]
    """``PretrainedConfig.to_dict()`` of the wrapped model."""
    causal: bool
    """A decoder (``AutoModelForCausalLM``) or an encoder (``AutoModel``)."""
    special_tokens: dict[str, str | None] = field(default_factory=dict)
    """The tokenizer's role -> token map (see :class:`HFTokenizer`)."""
    tie_embeddings: bool = False
    """Always False here: tied HF weights are declared by :attr:`HFBackbone.tied_weights`."""

    def model_dump(self) -> dict[str, Any]:
        return {
            "hf_config": self.hf_config,
            "causal": self.causal,
            "special_tokens": self.special_tokens,
        }


@dataclass
class HFCache:
    """A KV cache for :class:`HFBackbone` decoders: the model's own ``past_key_values``.

    Same surface as :class:`plugformer.models.gpt.KVCache` (``length``, ``reorder``), so
    :func:`plugformer.inference.generation.generate` and beam search work unchanged.
    """

    past: Any
    length: int = 0

    def reorder(self, index: torch.Tensor) -> None:
        self.past.reorder_cache(index)


class HFBackbone(nn.Module):
    """A ``transformers`` model behind the backbone protocol.

    :param model: a ``PreTrainedModel``: a ``...ForCausalLM`` for decoders, the bare model
        (``BertModel``, ...) for encoders.
    :param causal: whether ``model`` is a decoder.
    :param special_tokens: the tokenizer's special-token map (stored in checkpoints).
    """

    architecture = ARCHITECTURE
    family = "hf"

    def __init__(
        self, model: nn.Module, causal: bool, special_tokens: dict[str, str | None]
    ) -> None:
        super().__init__()
        self.hf_model = model
        hf_cfg = model.config
        self.causal = causal
        self.d_model = int(hf_cfg.hidden_size)
        self.max_seq_len = int(
            getattr(hf_cfg, "max_position_embeddings", None)
            or getattr(hf_cfg, "n_positions", None)
            or 512
        )
        self.config = HFBackboneConfig(hf_cfg.to_dict(), causal, dict(special_tokens))
        self.tied_weights = _tied_names(self)
        """Parameter names sharing storage with an earlier one (left out of checkpoints)."""
        params = inspect.signature(self.body.forward).parameters
        self._cache_arg = (
            "cache" if "cache" in params else "past_key_values"
        )  # transformers >= 5.x: cache

    @property
    def body(self) -> nn.Module:
        """The model without its LM head (its forward returns ``last_hidden_state``)."""
        return self.hf_model.base_model if self.causal else self.hf_model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: HFCache | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Last hidden states (B, T, C) for ``input_ids`` (B, T).

        ``attention_mask`` (B, T), or with a cache (B, L) over every position so far (1 =
        token, 0 = padding). ``cache`` and ``positions`` (B, T) serve KV-cache decoding of
        left-padded prompts and are for decoders only.
        """
        kwargs: dict[str, Any] = {}
        if self.causal:
            kwargs["use_cache"] = cache is not None
            if cache is not None:
                kwargs[self._cache_arg] = cache.past  # a DynamicCache, updated in place
            if positions is not None:
                kwargs["position_ids"] = positions
        elif cache is not None:
            raise PlugformerError("a bidirectional (encoder) backbone has no KV cache")
        if attention_mask is not None:
            attention_mask = attention_mask.long()
        out = self.body(
            input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs
        )
        if cache is not None:
            cache.length += input_ids.size(1)
        return out.last_hidden_state  # (B, T, C)

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits (B, T, V) from hidden states (B, T, C) (decoders)."""
        head = self.hf_model.get_output_embeddings() if self.causal else None
        if head is None:
            raise PlugformerError(
                f"{type(self.hf_model).__name__} has no language-model head: use it for encoder tasks"
            )
        return head(hidden)

    def new_cache(self, batch: int, max_len: int | None = None) -> HFCache:
        """An empty KV cache (``batch`` and ``max_len`` are implied: the cache grows)."""
        if not self.causal:
            raise PlugformerError(
                "a bidirectional (encoder) backbone cannot decode with a KV cache"
            )
        transformers = require("transformers")
        try:
            past = transformers.DynamicCache(config=self.hf_model.config)
        except TypeError:  # transformers < 4.56
            past = transformers.DynamicCache()
        return HFCache(past)


def _tied_names(module: nn.Module) -> tuple[str, ...]:
    seen: set[int] = set()
    tied: list[str] = []
    for name, tensor in module.state_dict(keep_vars=True).items():
        ptr = tensor.data_ptr()
        if ptr in seen and tensor.numel():
            tied.append(name)
        seen.add(ptr)
    return tuple(tied)


# --------------------------------------------------------------------------- loading


def is_decoder(hf_config: Any) -> bool:
    """Whether a ``transformers`` config describes a decoder (causal LM).

    The saved ``architectures`` decide (``...ForCausalLM``/``...LMHeadModel`` → decoder);
    without them, a model type that has a masked-LM class is taken as an encoder (BERT also
    has a causal-LM class, but is an encoder first).
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    archs = list(getattr(hf_config, "architectures", None) or [])
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return True
    if archs:
        return False
    model_type = getattr(hf_config, "model_type", "")
    return (
        model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    )


def _build(transformers: Any, hf_config: Any, causal: bool, path: Path | None) -> nn.Module:
    """The model for ``hf_config``: pretrained weights from ``path``, or fresh from the config."""
    auto = transformers.AutoModelForCausalLM if causal else transformers.AutoModel
    # Encoders are used for their hidden states: a BERT-like pooler would be an unused layer.
    kwargs: dict[str, Any] = {} if causal else {"add_pooling_layer": False}
    with quiet(transformers):
        for attempt in (kwargs, {}):
            try:
                if path is None:
                    return auto.from_config(hf_config, **attempt)
                return auto.from_pretrained(
                    str(path), config=hf_config, local_files_only=True, **attempt
                )
            except TypeError:
                if not attempt:
                    raise
    raise AssertionError("unreachable")


def load_hf_dir(path: str | Path, *, causal: bool | None = None) -> LoadedBackbone:
    """A local ``transformers`` model directory as a backbone.

    :param causal: force decoder (``True``) or encoder (``False``) instead of detecting it.
    """
    transformers = require("transformers")
    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"{path}: not a transformers model directory (no config.json)")
    try:
        hf_config = transformers.AutoConfig.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(
            f"{path}: unreadable config.json ({str(exc).splitlines()[0]})"
        ) from None
    causal = is_decoder(hf_config) if causal is None else causal
    tokenizer = HFTokenizer.from_pretrained(path)
    try:
        model = _build(transformers, hf_config, causal, path)
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: cannot load the model ({str(exc).splitlines()[0]})"
        ) from None
    backbone = HFBackbone(model.float().eval(), causal, tokenizer.special_tokens)
    manifest = {
        "kind": "backbone",
        "architecture": ARCHITECTURE,
        "hf_model_type": hf_config.model_type,
        "hf_path": str(path.resolve()),
        "weights_sha256": _weights_hash(path),
        "tokenizer_sha256": tokenizer.hash,
    }
    return LoadedBackbone(backbone, tokenizer, manifest, str(path))


def load_hf_backbone(ref: str, *, causal: bool | None = None, **_: Any) -> LoadedBackbone:
    """The ``hf`` backbone factory: ``ref`` is a model directory or a model recipe name."""
    from plugformer.hf.recipes import get_model

    path = Path(ref).expanduser()
    if not path.is_dir():
        path = get_model(ref)
    loaded = load_hf_dir(path, causal=causal)
    loaded.manifest["backbone_ref"] = f"hf:{ref}"
    return loaded


def load_hf_checkpoint(path: str | Path, manifest: dict[str, Any]) -> LoadedBackbone:
    """The backbone of a plugformer checkpoint whose manifest says ``"architecture": "hf"``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    transformers = require("transformers")
    path = Path(path)
    mc = manifest.get("model_config") or {}
    try:
        hf_dict = dict(mc["hf_config"])
        config_class = transformers.CONFIG_MAPPING[hf_dict["model_type"]]
        hf_config = config_class.from_dict(hf_dict)
        causal, special = bool(mc["causal"]), dict(mc["special_tokens"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid hf model_config in manifest ({exc!r})") from None
    tokenizer = HFTokenizer(_FastTokenizer.from_file(str(path / "tokenizer.json")), special)
    want = manifest.get("tokenizer_sha256")
    if want and want != tokenizer.hash:
        raise CheckpointError(
            f"{path}: tokenizer.json does not match the manifest's tokenizer_sha256"
        )
    backbone = HFBackbone(_build(transformers, hf_config, causal, None), causal, special)
    try:
        sd = load_file(str(path / "model.safetensors"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}/model.safetensors: corrupt weights ({exc})") from None
    missing, unexpected = backbone.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k not in backbone.tied_weights]
    if missing or unexpected:
        raise CheckpointError(
            f"{path}/model.safetensors: weights do not match the manifest's model "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    backbone.eval()
    return LoadedBackbone(backbone, tokenizer, manifest, str(path))


def _weights_hash(path: Path) -> str:
    """sha256 over the directory's weight files (the identity of the pretrained weights)."""
    from plugformer.fileio import sha256_file

    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    if len(files) == 1:
        return sha256_file(files[0])
    return hashlib.sha256("".join(f"{f.name}:{sha256_file(f)}" for f in files).encode()).hexdigest()


def untrained_twin(backbone: HFBackbone) -> HFBackbone:
    """The same ``transformers`` architecture, freshly initialised from its config."""
    transformers = require("transformers")
    model = _build(transformers, backbone.hf_model.config, backbone.causal, None)
    return HFBackbone(model.float(), backbone.causal, backbone.config.special_tokens)


def layers(backbone: HFBackbone) -> tuple[list[nn.Module], list[nn.Module]]:
    """(embedding modules, transformer blocks from the input up) of a wrapped model.

    The blocks are the longest ``ModuleList`` of the body (BERT ``encoder.layer``, GPT-2
    ``h``, Llama ``layers``); the embeddings are the body's embedding modules (BERT's
    ``embeddings`` with its positions and norm, GPT-2's ``wte``/``wpe``, Llama's
    ``embed_tokens``).
    """
    body = backbone.body
    lists = [m for m in body.modules() if isinstance(m, nn.ModuleList)]
    if not lists:
        raise PlugformerError(f"{type(body).__name__}: no list of layers to freeze")
    blocks = list(max(lists, key=len))
    embeddings = [
        m
        for name in ("embeddings", "wte", "wpe", "embed_tokens", "embed_positions")
        if isinstance(m := getattr(body, name, None), nn.Module)
    ]
    if not embeddings:
        embeddings = [body.get_input_embeddings()]
    return embeddings, blocks
