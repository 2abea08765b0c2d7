"""Native checkpoints to ``transformers`` model directories, and back.

Two native styles have an exact ``transformers`` counterpart:

============================  ===========================  =================================
native ``ModelConfig``        ``transformers`` class       weight layout
============================  ===========================  =================================
rope + rmsnorm (SwiGLU)       ``LlamaForCausalLM``         ``qkv`` split into q/k/v_proj;
                                                           ``gate/up/down`` → ``*_proj``;
                                                           RoPE rotate-half, theta 10000;
                                                           RMSNorm eps 1e-6
learned + layernorm (GELU)    ``GPT2LMHeadModel``          Conv1D weights are transposed
                                                           Linear weights; GELU tanh is
                                                           ``gelu_new``; LayerNorm eps 1e-5
============================  ===========================  =================================

:func:`export_hf` writes ``config.json``, ``model.safetensors``, ``generation_config.json``
and a ``PreTrainedTokenizerFast`` built from the checkpoint's ``tokenizer.json`` with the
reserved tokens as its special tokens, so ``AutoModelForCausalLM.from_pretrained(DIR)`` and
``AutoTokenizer.from_pretrained(DIR)`` load it and give the same logits. A native model with
``bias=False`` exported as GPT-2 gets zero biases (exact); :func:`import_hf` maps them back to
``bias=False``. Bidirectional (masked-LM) backbones and mixed styles (rope + layernorm, ...)
have no counterpart and are refused.

:func:`import_hf` is the inverse: a Llama or GPT-2 directory of matching structure (no
grouped-query attention, default RoPE, eps as above, an intermediate size our SwiGLU rule
reproduces, and a tokenizer that has plugformer's reserved tokens) → a native backbone
checkpoint.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from plugformer.checkpoint import load_backbone, save_backbone
from plugformer.config import ModelConfig
from plugformer.errors import CheckpointError, PlugformerError
from plugformer.fileio import atomic_dir
from plugformer.hf import quiet, require
from plugformer.tokenizer import SPECIAL_TOKENS

__all__ = ["export_hf", "import_hf", "native_to_hf", "style_of"]

_ROLES = {
    "pad_token": "<pad>",
    "bos_token": "<bos>",
    "eos_token": "<eos>",
    "sep_token": "<sep>",
    "mask_token": "<mask>",
}
StateDict = dict[str, torch.Tensor]


def style_of(cfg: ModelConfig) -> str:
    """``"llama"`` or ``"gpt2"``: the ``transformers`` architecture a native config maps to."""
    if not cfg.causal:
        raise PlugformerError(
            "only causal backbones export to transformers (this one is a masked-LM encoder)"
        )
    if cfg.positions == "rope" and cfg.norm == "rmsnorm":
        return "llama"
    if cfg.positions == "learned" and cfg.norm == "layernorm":
        return "gpt2"
    raise PlugformerError(
        f"positions={cfg.positions!r} with norm={cfg.norm!r} has no transformers counterpart "
        "(rope+rmsnorm → Llama, learned+layernorm → GPT-2)"
    )


def _swiglu_hidden(cfg: ModelConfig) -> int:
    return int(
        64 * math.ceil(cfg.mlp_ratio * cfg.d_model * 2 / 3 / 64)
    )  # as plugformer.models.gpt.MLP


# --------------------------------------------------------------------------- native → transformers


def native_to_hf(model: Any, tokenizer: Any) -> tuple[Any, StateDict]:
    """(``transformers`` config, state dict in its naming) of a native :class:`~plugformer.models.gpt.GPT`."""
    transformers = require("transformers")
    cfg: ModelConfig = model.config
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    C = cfg.d_model
    common = {
        "vocab_size": cfg.vocab_size,
        "bos_token_id": tokenizer.bos_id,
        "eos_token_id": tokenizer.eos_id,
        "pad_token_id": tokenizer.pad_id,
        "tie_word_embeddings": cfg.tie_embeddings,
    }
    out: StateDict = {}
    if style_of(cfg) == "llama":
        hf_cfg = transformers.LlamaConfig(
            hidden_size=C,
            intermediate_size=_swiglu_hidden(cfg),
            num_hidden_layers=cfg.n_layers,
            num_attention_heads=cfg.n_heads,
            num_key_value_heads=cfg.n_heads,
            max_position_embeddings=cfg.max_seq_len,
            rms_norm_eps=1e-6,
            hidden_act="silu",
            attention_bias=cfg.bias,
            mlp_bias=cfg.bias,
            attention_dropout=cfg.dropout,
            architectures=["LlamaForCausalLM"],
            **common,
        )
        out["model.embed_tokens.weight"] = sd["wte.weight"]
        out["model.norm.weight"] = sd["norm.weight"]
        for i in range(cfg.n_layers):
            b, h = f"blocks.{i}.", f"model.layers.{i}."
            out[h + "input_layernorm.weight"] = sd[b + "norm1.weight"]
            out[h + "post_attention_layernorm.weight"] = sd[b + "norm2.weight"]
            for kind in ("weight", "bias") if cfg.bias else ("weight",):
                q, k, v = sd[f"{b}attn.qkv.{kind}"].split(C, dim=0)  # (3C, C) → 3 x (C, C)
                out[f"{h}self_attn.q_proj.{kind}"] = q
                out[f"{h}self_attn.k_proj.{kind}"] = k
                out[f"{h}self_attn.v_proj.{kind}"] = v
                out[f"{h}self_attn.o_proj.{kind}"] = sd[f"{b}attn.proj.{kind}"]
                for name in ("gate", "up", "down"):
                    out[f"{h}mlp.{name}_proj.{kind}"] = sd[f"{b}mlp.{name}.{kind}"]
    else:
        hidden = int(cfg.mlp_ratio * C)
        hf_cfg = transformers.GPT2Config(
            n_embd=C,
            n_layer=cfg.n_layers,
            n_head=cfg.n_heads,
            n_positions=cfg.max_seq_len,
            n_inner=hidden,
            activation_function="gelu_new",
            layer_norm_epsilon=1e-5,
            resid_pdrop=cfg.dropout,
            embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout,
            architectures=["GPT2LMHeadModel"],
            **common,
        )
        out["transformer.wte.weight"] = sd["wte.weight"]
        out["transformer.wpe.weight"] = sd["wpe.weight"]
        out["transformer.ln_f.weight"], out["transformer.ln_f.bias"] = (
            sd["norm.weight"],
            sd["norm.bias"],
        )

        def linear(src: str, dst: str, n_out: int) -> None:
            out[dst + ".weight"] = sd[src + ".weight"].t().contiguous()  # Conv1D: (in, out)
            out[dst + ".bias"] = sd.get(src + ".bias", torch.zeros(n_out))

        for i in range(cfg.n_layers):
            b, h = f"blocks.{i}.", f"transformer.h.{i}."
            for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
                out[f"{h}{theirs}.weight"], out[f"{h}{theirs}.bias"] = (
                    sd[f"{b}{ours}.weight"],
                    sd[f"{b}{ours}.bias"],
                )
            linear(b + "attn.qkv", h + "attn.c_attn", 3 * C)
            linear(b + "attn.proj", h + "attn.c_proj", C)
            linear(b + "mlp.up", h + "mlp.c_fc", hidden)
            linear(b + "mlp.down", h + "mlp.c_proj", C)
    out["lm_head.weight"] = sd["wte.weight"] if cfg.tie_embeddings else sd["lm_head.weight"]
    return hf_cfg, out


def hf_tokenizer(tokenizer: Any) -> Any:
    """A ``PreTrainedTokenizerFast`` over a native tokenizer, reserved tokens as special tokens."""
    transformers = require("transformers")
    from tokenizers import Tokenizer as FastTokenizer

    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=FastTokenizer.from_str(tokenizer.to_str()),
        model_max_length=None,
        clean_up_tokenization_spaces=False,
        **_ROLES,
    )


def export_hf(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the backbone of a native checkpoint as a ``transformers`` model directory ``out``.

    The new model is loaded strictly from the converted weights before anything is written,
    so a mapping error can never produce a directory that loads wrongly. Returns ``out``.
    """
    out = Path(out)
    _check_out(out)  # before any work
    transformers = require("transformers")
    loaded = load_backbone(checkpoint)
    if loaded.manifest.get("architecture", "plugformer-gpt") != "plugformer-gpt":
        raise PlugformerError(
            f"{checkpoint}: export needs a native backbone (this one is {loaded.manifest['architecture']!r})"
        )
    hf_cfg, sd = native_to_hf(loaded.model, loaded.tokenizer)
    with quiet(transformers):
        hf_model = transformers.AutoModelForCausalLM.from_config(hf_cfg).float()
    _load_strict(hf_model, sd, f"{checkpoint}: export")
    hf_model.eval()
    with atomic_dir(out) as tmp, quiet(transformers):
        hf_model.save_pretrained(str(tmp))
        hf_tokenizer(loaded.tokenizer).save_pretrained(str(tmp))
    return out


EXPORT_FILES = re.compile(
    r"(config|generation_config|tokenizer|tokenizer_config|special_tokens_map)\.json"
    r"|model(-\d+-of-\d+)?\.safetensors|model\.safetensors\.index\.json"
)
"""The files ``save_pretrained`` writes for a causal LM and its tokenizer: an earlier export."""


def _check_out(out: Path) -> None:
    """``out`` is replaced whole: refuse a file, or a directory holding anything but an earlier
    export (a run directory or a checkpoint would be lost)."""
    if out.exists() and not out.is_dir():
        raise PlugformerError(f"{out}: exists and is not a directory")
    other = (
        sorted(p.name for p in out.iterdir() if not EXPORT_FILES.fullmatch(p.name))
        if out.is_dir()
        else []
    )
    if other:
        raise PlugformerError(
            f"{out}: exists and holds files an export does not write ({', '.join(other[:3])}); "
            "export replaces the whole directory: choose a new one, or remove it first"
        )


def _load_strict(module: torch.nn.Module, sd: StateDict, what: str) -> None:
    """Load ``sd`` into ``module``: every parameter covered (tied ones once), nothing extra."""
    missing, unexpected = module.load_state_dict(sd, strict=False)
    params = dict(module.named_parameters(remove_duplicate=False))
    tied = {
        n for n, p in params.items() if any(p is q for m, q in params.items() if m != n and m in sd)
    }
    missing = [
        k for k in missing if k in params and k not in tied
    ]  # persistent buffers are config-derived
    if missing or unexpected:
        raise CheckpointError(
            f"{what}: weight mapping mismatch (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )


# --------------------------------------------------------------------------- transformers → native


def _close(a: float, b: float) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-6)


def hf_to_native(hf_model: Any) -> tuple[ModelConfig, StateDict]:
    """(native config, native state dict) of a Llama or GPT-2 model of matching structure."""
    c = hf_model.config
    sd = {k: v.detach().float().cpu() for k, v in hf_model.state_dict().items()}
    tie = bool(getattr(c, "tie_word_embeddings", False))
    out: StateDict = {}

    def refuse(why: str) -> PlugformerError:
        return PlugformerError(f"{c.model_type} model cannot become a native backbone: {why}")

    if c.model_type == "llama":
        if (c.num_key_value_heads or c.num_attention_heads) != c.num_attention_heads:
            raise refuse("grouped-query attention (num_key_value_heads != num_attention_heads)")
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        if head_dim * c.num_attention_heads != c.hidden_size:
            raise refuse("head_dim * num_attention_heads != hidden_size")
        # transformers >= 5: rope_parameters; before: rope_theta and rope_scaling.
        rope = dict(getattr(c, "rope_parameters", None) or getattr(c, "rope_scaling", None) or {})
        theta = rope.get("rope_theta", getattr(c, "rope_theta", 10000.0))
        if rope.get("rope_type", rope.get("type", "default")) != "default" or not _close(
            theta, 10000.0
        ):
            raise refuse(f"RoPE must be the default with theta 10000 (got {rope or theta})")
        if not _close(c.rms_norm_eps, 1e-6) or c.hidden_act != "silu":
            raise refuse(f"needs rms_norm_eps 1e-6 and silu (got {c.rms_norm_eps}, {c.hidden_act})")
        if bool(c.attention_bias) != bool(getattr(c, "mlp_bias", False)):
            raise refuse("attention_bias and mlp_bias must agree")
        bias = bool(c.attention_bias)
        if c.intermediate_size % 64:
            raise refuse(
                f"intermediate_size {c.intermediate_size} is not a multiple of 64 (the SwiGLU width rule)"
            )
        # A ratio strictly inside the rounding step, so ceil() lands on intermediate_size exactly.
        ratio = (c.intermediate_size - 32) * 3 / (2 * c.hidden_size)
        cfg = ModelConfig(
            n_layers=c.num_hidden_layers, d_model=c.hidden_size, n_heads=c.num_attention_heads,
            max_seq_len=c.max_position_embeddings, mlp_ratio=ratio, positions="rope", norm="rmsnorm",
            causal=True, tie_embeddings=tie, bias=bias, vocab_size=c.vocab_size,
        )  # fmt: skip
        assert _swiglu_hidden(cfg) == c.intermediate_size
        out["wte.weight"] = sd["model.embed_tokens.weight"]
        out["norm.weight"] = sd["model.norm.weight"]
        for i in range(cfg.n_layers):
            b, h = f"blocks.{i}.", f"model.layers.{i}."
            out[b + "norm1.weight"] = sd[h + "input_layernorm.weight"]
            out[b + "norm2.weight"] = sd[h + "post_attention_layernorm.weight"]
            for kind in ("weight", "bias") if bias else ("weight",):
                out[f"{b}attn.qkv.{kind}"] = torch.cat(
                    [sd[f"{h}self_attn.{p}_proj.{kind}"] for p in "qkv"]
                )
                out[f"{b}attn.proj.{kind}"] = sd[f"{h}self_attn.o_proj.{kind}"]
                for name in ("gate", "up", "down"):
                    out[f"{b}mlp.{name}.{kind}"] = sd[f"{h}mlp.{name}_proj.{kind}"]
    elif c.model_type == "gpt2":
        if c.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
            raise refuse(f"activation {c.activation_function!r} is not tanh-approximated GELU")
        if not _close(c.layer_norm_epsilon, 1e-5):
            raise refuse(f"layer_norm_epsilon {c.layer_norm_epsilon} is not 1e-5")
        if getattr(c, "scale_attn_by_inverse_layer_idx", False) or not getattr(
            c, "scale_attn_weights", True
        ):
            raise refuse("non-standard attention scaling")
        hidden = c.n_inner or 4 * c.n_embd
        linear_biases = [
            v for k, v in sd.items() if k.endswith("bias") and (".attn.c_" in k or ".mlp.c_" in k)
        ]
        bias = any(bool(v.any()) for v in linear_biases)  # all zero: a native bias=False export
        cfg = ModelConfig(
            n_layers=c.n_layer, d_model=c.n_embd, n_heads=c.n_head, max_seq_len=c.n_positions,
            mlp_ratio=hidden / c.n_embd, positions="learned", norm="layernorm", causal=True,
            tie_embeddings=tie, bias=bias, vocab_size=c.vocab_size,
        )  # fmt: skip
        if int(cfg.mlp_ratio * cfg.d_model) != hidden:
            raise refuse(f"n_inner {hidden} is not representable as mlp_ratio * n_embd")
        out["wte.weight"] = sd["transformer.wte.weight"]
        out["wpe.weight"] = sd["transformer.wpe.weight"]
        out["norm.weight"], out["norm.bias"] = (
            sd["transformer.ln_f.weight"],
            sd["transformer.ln_f.bias"],
        )
        for i in range(cfg.n_layers):
            b, h = f"blocks.{i}.", f"transformer.h.{i}."
            for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
                out[f"{b}{ours}.weight"], out[f"{b}{ours}.bias"] = (
                    sd[f"{h}{theirs}.weight"],
                    sd[f"{h}{theirs}.bias"],
                )
            for ours, theirs in (
                ("attn.qkv", "attn.c_attn"),
                ("attn.proj", "attn.c_proj"),
                ("mlp.up", "mlp.c_fc"),
                ("mlp.down", "mlp.c_proj"),
            ):
                out[f"{b}{ours}.weight"] = (
                    sd[f"{h}{theirs}.weight"].t().contiguous()
                )  # Conv1D (in, out) → Linear
                if bias:
                    out[f"{b}{ours}.bias"] = sd[f"{h}{theirs}.bias"]
    else:
        raise PlugformerError(
            f"cannot import model type {c.model_type!r}: only llama and gpt2 map to the native backbone"
        )
    out["lm_head.weight"] = out["wte.weight"] if tie else sd["lm_head.weight"]
    return cfg, out


def _check_import_out(out: Path) -> None:
    """``out`` is replaced whole: refuse a file, or a non-empty directory that is not a
    plugformer checkpoint (an earlier import may be replaced; a run directory may not)."""
    from plugformer.checkpoint import MANIFEST

    if out.exists() and not out.is_dir():
        raise PlugformerError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise PlugformerError(
            f"{out}: exists, holds files and is not a plugformer checkpoint; the import replaces "
            "the whole directory: choose a new one, or remove it first"
        )


def import_hf(src: str | Path, out: str | Path) -> Path:
    """Turn a ``transformers`` Llama/GPT-2 directory ``src`` into a native backbone checkpoint ``out``.

    The tokenizer (``src/tokenizer.json``) must have plugformer's reserved tokens (as every
    directory written by :func:`export_hf` has); for other models use ``hf:DIR`` instead.
    """
    transformers = require("transformers")
    from plugformer.models.gpt import GPT
    from plugformer.tokenizer import Tokenizer

    src, out = Path(src), Path(out)
    if not (src / "config.json").is_file() or not (src / "tokenizer.json").is_file():
        raise CheckpointError(f"{src}: not a transformers model directory with a tokenizer.json")
    _check_import_out(out)
    try:
        tokenizer = Tokenizer.from_file(src / "tokenizer.json")
    except CheckpointError as exc:
        raise CheckpointError(
            f"{src}: its tokenizer lacks plugformer's reserved tokens {SPECIAL_TOKENS[:5]} ({exc}); "
            f"use it as a backbone through 'hf:{src}' instead"
        ) from None
    with quiet(transformers):
        hf_model = transformers.AutoModelForCausalLM.from_pretrained(
            str(src), local_files_only=True
        ).float()
    cfg, sd = hf_to_native(hf_model)
    if cfg.vocab_size != tokenizer.vocab_size:
        raise CheckpointError(
            f"{src}: vocab_size {cfg.vocab_size} != the tokenizer's {tokenizer.vocab_size}"
        )
    model = GPT(cfg)
    model.load_state_dict(sd, strict=True)
    model.eval()
    return save_backbone(
        out,
        model,
        tokenizer,
        extra={
            "imported_from": {"path": str(src.resolve()), "model_type": hf_model.config.model_type}
        },
    )
