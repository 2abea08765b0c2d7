"""The native backbone: a GPT-style Transformer, read top to bottom as in nanoGPT.

norm → rotary embedding → attention → MLP → block → KV cache → model. ``forward`` returns
hidden states (the task heads' input); ``lm_logits`` applies the tied LM head. With
``causal=False`` the same network is a bidirectional encoder (masked-LM pretraining).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from plugformer.config import ModelConfig

__all__ = ["GPT", "KVCache"]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)


def make_norm(cfg: ModelConfig) -> nn.Module:
    return RMSNorm(cfg.d_model) if cfg.norm == "rmsnorm" else nn.LayerNorm(cfg.d_model)


def rope_tables(
    head_size: int, max_len: int, base: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and signed sin tables, each (max_len, head_size), in the rotate-half layout (as Llama).

    The sin table carries the sign of the rotation (−sin on the first half of each head) so
    that :func:`apply_rope` needs no negation or concatenation per call.
    """
    inv_freq = 1.0 / (base ** (torch.arange(0, head_size, 2, dtype=torch.float32) / head_size))
    t = torch.arange(max_len, dtype=torch.float32)
    freqs = torch.outer(t, inv_freq)  # (T, hs/2)
    sin = freqs.sin()
    return torch.cat([freqs, freqs], dim=-1).cos(), torch.cat([-sin, sin], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (..., T, hs) by position; cos/sin from :func:`rope_tables`, broadcastable.

    Llama's ``x·cos + rotate_half(x)·sin`` with ``rotate_half(x) = (−x2, x1)``: the swap of the
    halves is one ``flip`` and the sign lives in the table, so q and k together are 4 ops.
    """
    swapped = x.unflatten(-1, (2, -1)).flip(-2).flatten(-2)  # (x2, x1)
    return torch.addcmul(x * cos, swapped, sin).to(x.dtype)


@dataclass
class KVCache:
    """Per-layer keys and values, preallocated to ``max_len`` positions.

    ``k[i]``/``v[i]`` are (B, nh, max_len, hs); ``length`` positions are filled. Beam search
    reorders rows with :meth:`reorder`.
    """

    k: list[torch.Tensor]
    v: list[torch.Tensor]
    length: int = 0

    @classmethod
    def empty(
        cls, cfg: ModelConfig, batch: int, max_len: int, dtype: torch.dtype, device: torch.device
    ) -> KVCache:
        hs = cfg.d_model // cfg.n_heads
        shape = (batch, cfg.n_heads, max_len, hs)
        return cls(
            [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.n_layers)],
            [torch.zeros(shape, dtype=dtype, device=device) for _ in range(cfg.n_layers)],
        )

    def reorder(self, index: torch.Tensor) -> None:
        """Row ``i`` becomes old row ``index[i]``: beams reordered, finished rows dropped.

        In place when the batch does not grow: only the filled positions are gathered, into
        the first ``len(index)`` rows of the same buffers (no new cache per step).
        """
        n, L = index.numel(), self.length
        if n > self.k[0].size(0):  # growing (one row per beam, once): new buffers
            self.k = [k.index_select(0, index) for k in self.k]
            self.v = [v.index_select(0, index) for v in self.v]
            return
        for buf in (*self.k, *self.v):
            # (n, nh, L, hs), gathered before written; index_select + copy_ took half the time
            # of advanced indexing (beam 4 × 32 rows, 100 positions, 1 CPU thread)
            buf[:n, :, :L].copy_(buf[:, :, :L].index_select(0, index))
        self.k = [k[:n] for k in self.k]
        self.v = [v[:n] for v in self.v]


EXPLICIT_ATTENTION_MAX_KEYS = 256
"""Longest key span at which training in bfloat16 on a CPU takes :func:`explicit_attention`."""


def _explicit_pays(q: torch.Tensor, k: torch.Tensor) -> bool:
    """Whether :func:`explicit_attention` beats SDPA here: training (gradients wanted) in
    bfloat16 on a CPU, over at most :data:`EXPLICIT_ATTENTION_MAX_KEYS` keys. There PyTorch's
    CPU kernels are slow in bfloat16, the flash kernel's backward most of all. Forward +
    backward, causal, 2 cores with AVX512-BF16, ms for flash / math / explicit, at (B, nh, T,
    hs) = (16, 2, 128, 32): 7.5 / 4.6 / 3.1; (32, 4, 128, 64): 36.7 / 27.9 / 14.9; (16, 4, 256,
    64): 36.3 / 40.8 / 27.0; (8, 2, 256, 32): 6.8 / 6.2 / 7.7; (4, 4, 512, 64): 34.5 / 38.5 /
    39.0. In float32, and without gradients, SDPA was as fast or faster."""
    return (
        q.device.type == "cpu"
        and q.dtype == torch.bfloat16
        and k.size(-2) <= EXPLICIT_ATTENTION_MAX_KEYS
        and torch.is_grad_enabled()
        and q.requires_grad
    )


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    dropout: float,
    impl: str = "auto",
) -> torch.Tensor:
    """Scaled dot-product attention of q (B, nh, T, hs) over k, v (B, nh, L, hs), computed as
    ``impl`` (``ModelConfig.attention``) says: ``sdpa`` (PyTorch's fused kernels),
    ``explicit`` (:func:`explicit_attention`) or ``auto`` (explicit where it pays)."""
    if impl == "explicit" or (impl == "auto" and _explicit_pays(q, k)):
        return explicit_attention(q, k, v, mask, is_causal, dropout)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=is_causal
    )


def explicit_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool,
    dropout: float = 0.0,
) -> torch.Tensor:
    """``F.scaled_dot_product_attention`` as two batched products and a softmax.
    ``mask`` is boolean (True = may attend), broadcastable to (B, nh, T, L).

    The softmax runs in the scores' dtype: PyTorch's CPU kernel accumulates bfloat16 in
    float32 and rounds the probabilities once, as the float32 softmax cast back to bfloat16
    that this replaced did (the forward is bit-identical), without two casts of the
    (B, nh, T, L) scores. Forward + backward at the quickstart's (16, 2, 128, 32), one
    thread: 2.8 ms against 7.0; at the benchmark's (32, 4, 128, 64): 20.9 against 28.7."""
    T, L = q.size(-2), k.size(-2)
    # Scaled in place: the product's backward needs q and k, not its output.
    att = torch.matmul(q, k.transpose(-2, -1)).mul_(q.size(-1) ** -0.5)  # (B, nh, T, L)
    if is_causal:
        # An additive (T, L) bias, not masked_fill_: broadcast over (B, nh) it is 3x faster in
        # bfloat16 on a CPU, and its backward is the identity
        att.add_(torch.full((T, L), -torch.inf, dtype=att.dtype, device=q.device).triu(1))
    if mask is not None:
        att.masked_fill_(~mask, -torch.inf)
    att = att.softmax(dim=-1)
    if dropout:
        att = F.dropout(att, dropout)
    return torch.matmul(att, v)  # (B, nh, T, hs)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.head_size = cfg.d_model // cfg.n_heads
        self.causal = cfg.causal
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.impl = cfg.attention

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        mask: torch.Tensor | None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.qkv(x).view(B, T, 3, self.n_heads, self.head_size)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, nh, T, hs)
        if rope is None:
            q, k, v = qkv.unbind(0)  # each (B, nh, T, hs)
        else:
            q, k = apply_rope(qkv[:2], *rope).unbind(0)  # q and k rotated in one pass
            v = qkv[2]
        if cache is not None:
            start = cache.length
            cache.k[layer][:, :, start : start + T] = k
            cache.v[layer][:, :, start : start + T] = v
            k = cache.k[layer][:, :, : start + T]  # (B, nh, L, hs)
            v = cache.v[layer][:, :, : start + T]  # (B, nh, L, hs)
        # Without an explicit mask, SDPA's is_causal picks the fused kernels (the fast path).
        is_causal = self.causal and mask is None and cache is None
        dropout = self.dropout if self.training else 0.0
        y = attend(q, k, v, mask, is_causal, dropout, self.impl)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    """SwiGLU (Llama-style, with RMSNorm) or GELU (GPT-2-style, with LayerNorm)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.swiglu = cfg.norm == "rmsnorm"
        if self.swiglu:
            # 2/3 of the GELU MLP's hidden width keeps parameters and FLOPs equal.
            hidden = int(64 * math.ceil(cfg.mlp_ratio * cfg.d_model * 2 / 3 / 64))
            self.gate = nn.Linear(cfg.d_model, hidden, bias=cfg.bias)
        else:
            hidden = int(cfg.mlp_ratio * cfg.d_model)
        self.up = nn.Linear(cfg.d_model, hidden, bias=cfg.bias)
        self.down = nn.Linear(hidden, cfg.d_model, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout else None
        self.gate_up: nn.Linear | None = None  # set by fuse_for_inference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_up is not None:  # fused for inference: one product instead of two
            gate, up = self.gate_up(x).chunk(2, dim=-1)  # (B, T, hidden) each
            h = F.silu(gate) * up
        elif self.swiglu:
            h = F.silu(self.gate(x)) * self.up(x)
        else:
            h = F.gelu(self.up(x), approximate="tanh")
        return self.down(h) if self.dropout is None else self.dropout(self.down(h))

    def fuse_for_inference(self) -> None:
        """Replace SwiGLU's ``gate`` and ``up`` by one linear layer of both (rows stacked):
        a decode step then makes one product of twice the width, not two, which saved 3-15 %
        of a batch-8 decode step (benchmarks/perf/README.md). Inference only
        (:func:`plugformer.inference.quantize.prepare`): the parameters change names, so a
        fused module is not saved or trained."""
        if not self.swiglu or self.gate_up is not None:
            return
        gate, up = self.gate, self.up
        # skip_init: the weights are copied in, so no random init (and no global-RNG draw)
        fused = nn.utils.skip_init(
            nn.Linear,
            gate.in_features,
            2 * gate.out_features,
            bias=gate.bias is not None,
            device=gate.weight.device,
            dtype=gate.weight.dtype,
        )
        with torch.no_grad():
            fused.weight.copy_(torch.cat([gate.weight, up.weight]))  # (2 * hidden, C)
            if gate.bias is not None:
                fused.bias.copy_(torch.cat([gate.bias, up.bias]))
        self.gate_up = fused
        del self.gate, self.up


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1 = make_norm(cfg)
        self.attn = Attention(cfg)
        self.norm2 = make_norm(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x, rope, mask, cache=None, layer=0):
        x = x + self.attn(self.norm1(x), rope, mask, cache, layer)
        return x + self.mlp(self.norm2(x))


def add_lm_head_and_rope(model: nn.Module, cfg: ModelConfig) -> None:
    """Give ``model`` (which has ``wte``) its LM head (tied to ``wte`` when
    ``cfg.tie_embeddings``) and, for rotary positions, the ``rope_cos``/``rope_sin`` tables:
    the output side every native family shares."""
    model.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.wte.weight
    if cfg.positions == "rope":
        cos, sin = rope_tables(cfg.d_model // cfg.n_heads, cfg.max_seq_len)
        model.register_buffer("rope_cos", cos, persistent=False)
        model.register_buffer("rope_sin", sin, persistent=False)


def scale_residual_init(model: nn.Module, branches: int) -> None:
    """GPT-2's scaled init of the projections that write into the residual stream (std
    0.02 / sqrt(branches)): keeps the stream's variance flat however deep the model."""
    for name, p in model.named_parameters():
        if name.endswith(("proj.weight", "down.weight")):
            nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(branches))


class GPT(nn.Module):
    """Token embeddings → blocks → final norm; ``lm_logits`` on top (tied to the embeddings)."""

    family = "native"
    """The backbone family that builds, loads and freezes it (:mod:`plugformer.models.families`)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.vocab_size is None:
            raise ValueError("ModelConfig.vocab_size must be set (from the tokenizer)")
        self.config = cfg
        self.causal = cfg.causal
        self.d_model = cfg.d_model
        self.max_seq_len = cfg.max_seq_len
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.wpe = (
            nn.Embedding(cfg.max_seq_len, cfg.d_model) if cfg.positions == "learned" else None
        )
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = make_norm(cfg)
        add_lm_head_and_rope(self, cfg)
        self.apply(self._init_weights)
        scale_residual_init(self, 2 * cfg.n_layers)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def extend_context(self, max_seq_len: int) -> None:
        """Read up to ``max_seq_len`` tokens (more than pretraining's ``max_seq_len``): the
        rotary tables are recomputed for the longer span and positions past the old end are
        extrapolated, those before it keep exactly the angles they were trained with (no
        position interpolation, which would move every position). Fine-tuning then trains
        the new positions. Learned position embeddings have no rows to extrapolate: refused.
        ``config.max_seq_len`` follows, so a checkpoint saved afterwards reloads extended."""
        if max_seq_len <= self.max_seq_len:
            return
        if self.wpe is not None:
            raise ValueError(
                f"learned position embeddings stop at {self.max_seq_len} tokens: only a rotary "
                "(positions = 'rope') backbone can extend its context"
            )
        cos, sin = rope_tables(self.config.d_model // self.config.n_heads, max_seq_len)
        self.rope_cos = cos.to(self.rope_cos)  # the old tables' device and dtype
        self.rope_sin = sin.to(self.rope_sin)
        self.max_seq_len = max_seq_len
        self.config = self.config.model_copy(update={"max_seq_len": max_seq_len})

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - (self.wte.weight.numel() if non_embedding else 0)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states (B, T, C) for ``input_ids`` (B, T).

        ``attention_mask`` (B, T) or, with a cache, (B, L) over all positions so far: 1 for
        real tokens, 0 for padding. ``positions`` (B, T) overrides 0..T-1 (left-padded
        generation). Omit both on unpadded batches to get the fused causal kernel.
        """
        T = input_ids.size(1)
        offset = cache.length if cache is not None else 0
        if offset + T > self.max_seq_len:
            raise ValueError(
                f"sequence of {offset + T} tokens exceeds max_seq_len={self.max_seq_len}"
            )
        x = self.wte(input_ids)  # (B, T, C)
        rope = None
        if positions is None and self.wpe is None:
            # Unpadded: positions offset..offset+T-1 are a slice of the tables (no gather per step).
            rope = (
                self.rope_cos[None, None, offset : offset + T],
                self.rope_sin[None, None, offset : offset + T],
            )  # (1, 1, T, hs)
        else:
            if positions is None:
                positions = torch.arange(offset, offset + T, device=input_ids.device)[
                    None
                ]  # (1, T)
            if self.wpe is not None:
                x = x + self.wpe(positions)
            else:
                rope = (
                    self.rope_cos[positions].unsqueeze(1),
                    self.rope_sin[positions].unsqueeze(1),
                )  # (B|1, 1, T, hs)
        mask = self._attention_mask(attention_mask, T, offset, cache, input_ids.device)
        for i, block in enumerate(self.blocks):
            x = block(x, rope, mask, cache, i)
        if cache is not None:
            cache.length += T
        return self.norm(x)

    def _attention_mask(self, attention_mask, T, offset, cache, device):
        """A boolean (B, 1, T, L) mask (True = may attend), or None for the fused fast path."""
        L = offset + T
        need_causal = self.causal and (cache is not None and T > 1)
        if attention_mask is None and not need_causal:
            return None  # unpadded: is_causal (no cache) or full attention (decode step / encoder)
        mask = torch.ones(1, 1, T, L, dtype=torch.bool, device=device)
        if self.causal:
            q_pos = torch.arange(offset, L, device=device).unsqueeze(1)  # (T, 1)
            mask = mask & (torch.arange(L, device=device).unsqueeze(0) <= q_pos)  # (1, 1, T, L)
        if attention_mask is not None:
            keys = (
                attention_mask.bool()[:, -L:]
                if attention_mask.size(1) >= L
                else attention_mask.bool()
            )
            mask = mask & keys[:, None, None, :]  # (B, 1, T, L)
            # A fully masked row (a pad query) would make softmax NaN: let it attend to itself.
            eye = torch.zeros(T, L, dtype=torch.bool, device=device)
            eye[torch.arange(T), torch.arange(offset, L)] = True
            mask = mask | eye
        return mask

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits (B, T, V) from hidden states (B, T, C)."""
        return self.lm_head(hidden)

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        p = self.wte.weight
        return KVCache.empty(self.config, batch, max_len or self.max_seq_len, p.dtype, p.device)
