"""The benchmark shape, and the models compared on it.

4 layers, width 256, 4 heads, context 128, vocabulary 8192, batch 32 (the "small" preset):
plugformer's ``ModelConfig`` for it, and its ``transformers`` twin, built through
:func:`plugformer.hf.export.native_to_hf` so both have the same layers and the same weights.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

import torch

SHAPE = {"n_layers": 4, "d_model": 256, "n_heads": 4, "max_seq_len": 128}
VOCAB = 8192
BATCH = 32


def model_config(**over: Any) -> Any:
    from plugformer.config import ModelConfig

    return ModelConfig(**{**SHAPE, "vocab_size": VOCAB, **over})


def hf_twin(model: torch.nn.Module) -> Any:
    """``LlamaForCausalLM`` (SDPA attention) with ``model``'s shape and weights: RMSNorm,
    SwiGLU, RoPE, no biases, tied embeddings; no bos/eos, so generation never stops early."""
    from transformers import LlamaForCausalLM

    from plugformer.hf.export import native_to_hf

    ids = SimpleNamespace(bos_id=None, eos_id=None, pad_id=0)
    hf_cfg, state = native_to_hf(model, ids)
    hf_cfg._attn_implementation = "sdpa"
    hf = LlamaForCausalLM(hf_cfg)
    hf.load_state_dict(state, strict=False)  # strict=False: the tied lm_head is not stored
    hf.generation_config.pad_token_id = 0
    hf.generation_config.eos_token_id = None
    hf.generation_config.bos_token_id = None
    return hf


def autocast(precision: str, device: str) -> contextlib.AbstractContextManager:
    if precision == "bf16-mixed":
        return torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext()
