"""The encoder–decoder backbone: fairseq's translation Transformer, pre-norm, as plugformer builds it.

A bidirectional encoder over the source and a causal decoder with cross-attention, sharing
one token embedding (one tokenizer for both sides) tied to the LM head; RMSNorm or LayerNorm,
rotary or learned positions, the same attention and MLP as the native GPT
(:mod:`plugformer.models.gpt`), whose pieces it reuses.

Task-level transparency. Causal LM tasks feed one sequence per example,
``source <sep> target <eos>``, labelled on the target. :meth:`EncoderDecoder.forward` splits
each row at its first ``<sep>``: the encoder reads the source, the decoder reads
``<sep> target ...``, and the decoder's hidden states come back at the positions they had in
the row, so the LM head and the labels line up as for a decoder-only backbone (the source
positions hold copies of the first decoder state: they carry no labels). A row without
``<sep>`` has an empty source and is all decoder. An empty source is encoded as one ``<pad>``
token that cross-attention may see (so no attention row is empty).

Decoding. :meth:`EncoderDecoder.incremental` reads prompts ``source <sep> [prefix]``: it
encodes the sources once, computes every decoder layer's cross-attention keys and values
once (:class:`Memory`), and runs the decoder over a KV cache for its self-attention; beam
search reorders both by index.

Layer counts: ``n_layers`` decoder blocks, ``encoder_layers`` encoder blocks (default
``n_layers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from plugformer.config import ModelConfig
from plugformer.inference.decoding import CausalIncremental
from plugformer.models.gpt import (
    GPT,
    MLP,
    Attention,
    Block,
    KVCache,
    add_lm_head_and_rope,
    attend,
    make_norm,
    scale_residual_init,
)
from plugformer.tokenizer import SPECIAL_TOKENS

__all__ = ["EncDecIncremental", "EncoderDecoder", "Memory", "split_prompt"]

PAD_ID = SPECIAL_TOKENS.index("<pad>")
SEP_ID = SPECIAL_TOKENS.index("<sep>")


def split_prompt(ids: Sequence[int]) -> tuple[list[int], list[int]]:
    """(source, decoder prefix) of one row: split at its first ``<sep>`` (kept in the prefix)."""
    ids = list(ids)
    cut = ids.index(SEP_ID) if SEP_ID in ids else 0
    return ids[:cut], ids[cut:]


@dataclass
class Memory:
    """The encoded sources as each decoder layer reads them: cross-attention K/V, once per source.

    ``k[i]``/``v[i]`` are (B, nh, S, hs); ``mask`` (B, 1, 1, S) is True on keys that may be
    attended to.
    """

    k: list[torch.Tensor]
    v: list[torch.Tensor]
    mask: torch.Tensor

    def reorder(self, index: torch.Tensor) -> None:
        """Row ``i`` becomes old row ``index[i]`` (beams, finished sources dropped)."""
        self.k = [k.index_select(0, index) for k in self.k]
        self.v = [v.index_select(0, index) for v in self.v]
        self.mask = self.mask.index_select(0, index)


class CrossAttention(nn.Module):
    """Queries from the decoder, keys and values from the encoder output (no positions)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.head_size = cfg.d_model // cfg.n_heads
        self.q = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.impl = cfg.attention

    def memory(self, enc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (each (B, nh, S, hs)) of the encoder output ``enc`` (B, S, C)."""
        B, S, _ = enc.shape
        kv = self.kv(enc).view(B, S, 2, self.n_heads, self.head_size)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, nh, S, hs)
        return k, v

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor):
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.n_heads, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        dropout = self.dropout if self.training else 0.0
        y = attend(q, k, v, mask, False, dropout, self.impl)  # (B, nh, T, hs)
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))  # (B, T, C)


class DecoderBlock(nn.Module):
    """Pre-norm: causal self-attention, cross-attention, MLP, each on the residual stream."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.norm1 = make_norm(cfg)
        self.attn = Attention(cfg)
        self.norm2 = make_norm(cfg)
        self.cross = CrossAttention(cfg)
        self.norm3 = make_norm(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x, rope, mask, memory: Memory, layer: int, cache=None):
        x = x + self.attn(self.norm1(x), rope, mask, cache, layer)
        x = x + self.cross(self.norm2(x), memory.k[layer], memory.v[layer], memory.mask)
        return x + self.mlp(self.norm3(x))


class EncoderDecoder(nn.Module):
    """Shared embeddings → encoder blocks | decoder blocks (cross-attending) → tied LM head."""

    family = "encdec"
    """The backbone family that builds, loads and freezes it (:mod:`plugformer.models.families`)."""
    kind = "encoder-decoder"
    architecture = "plugformer-encdec"
    causal = True
    """It continues a sequence left to right (the decoder); the encoder is bidirectional."""
    compilable = False
    """Pretraining does not ``torch.compile`` it: the split at ``<sep>`` gives data-dependent
    shapes, on which torch 2.x's compiler fails (a fake-tensor stride assertion)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.vocab_size is None:
            raise ValueError("ModelConfig.vocab_size must be set (from the tokenizer)")
        if not cfg.causal:
            raise ValueError(
                "the encoder-decoder's decoder is causal: model.causal must be true "
                "(pretrain it with objective 'denoise' or 'clm', not 'mlm')"
            )
        self.config = cfg
        self.d_model = cfg.d_model
        self.max_seq_len = cfg.max_seq_len
        n_enc = cfg.encoder_layers or cfg.n_layers
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        learned = cfg.positions == "learned"
        self.enc_wpe = nn.Embedding(cfg.max_seq_len, cfg.d_model) if learned else None
        self.dec_wpe = nn.Embedding(cfg.max_seq_len, cfg.d_model) if learned else None
        enc_cfg = cfg.model_copy(update={"causal": False})
        self.encoder = nn.ModuleList(Block(enc_cfg) for _ in range(n_enc))
        self.enc_norm = make_norm(cfg)
        self.decoder = nn.ModuleList(DecoderBlock(cfg) for _ in range(cfg.n_layers))
        self.norm = make_norm(cfg)
        add_lm_head_and_rope(self, cfg)
        self.apply(GPT._init_weights)
        scale_residual_init(self, n_enc + 2 * cfg.n_layers)  # residual branches that write

    def num_params(self, non_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - (self.wte.weight.numel() if non_embedding else 0)

    # ------------------------------------------------------------------ pieces
    def _embed(self, ids, wpe, offset: int = 0, positions=None):
        """Token (+ learned position) embeddings (B, T, C) and the rotary tables, if any."""
        T = ids.size(1)
        if offset + T > self.max_seq_len:
            raise ValueError(
                f"sequence of {offset + T} tokens exceeds max_seq_len={self.max_seq_len}"
            )
        x = self.wte(ids)  # (B, T, C)
        if positions is None and wpe is None:
            sl = slice(offset, offset + T)
            return x, (self.rope_cos[None, None, sl], self.rope_sin[None, None, sl])  # (1,1,T,hs)
        if positions is None:
            positions = torch.arange(offset, offset + T, device=ids.device)[None]  # (1, T)
        if wpe is not None:
            return x + wpe(positions), None
        rope = (
            self.rope_cos[positions].unsqueeze(1),
            self.rope_sin[positions].unsqueeze(1),
        )  # (B|1, 1, T, hs)
        return x, rope

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> Memory:
        """Encode sources ``src`` (B, S), right-padded, ``src_mask`` (B, S) True on tokens.

        Position 0 is always a visible key (an empty source is one ``<pad>``), so no
        attention row is empty.
        """
        keys = src_mask.bool().clone()
        keys[:, 0] = True
        src = src.masked_fill(~keys, PAD_ID)
        mask = keys[:, None, None, :]  # (B, 1, 1, S)
        x, rope = self._embed(src, self.enc_wpe)
        for block in self.encoder:
            x = block(x, rope, mask)  # (B, S, C)
        enc = self.enc_norm(x)
        kv = [block.cross.memory(enc) for block in self.decoder]
        return Memory([k for k, _ in kv], [v for _, v in kv], mask)

    def decode(
        self,
        ids: torch.Tensor,
        memory: Memory,
        attention_mask: torch.Tensor | None = None,
        cache: KVCache | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decoder hidden states (B, T, C); arguments as :meth:`plugformer.models.gpt.GPT.forward`."""
        T = ids.size(1)
        offset = cache.length if cache is not None else 0
        x, rope = self._embed(ids, self.dec_wpe, offset, positions)
        # The same causal/padding mask as the native decoder (None: the fused causal kernel).
        mask = GPT._attention_mask(self, attention_mask, T, offset, cache, ids.device)
        for i, block in enumerate(self.decoder):
            x = block(x, rope, mask, memory, i, cache)
        if cache is not None:
            cache.length += T
        return self.norm(x)

    # ------------------------------------------------------------------ backbone surface
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        cache: Any = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden states (B, T, C) aligned with ``input_ids`` (B, T) rows ``source <sep> target``.

        Position ``t >= sep`` holds the decoder state of ``input_ids[t]``; earlier positions
        (the source) hold the state at ``<sep>``. Rows may be right-padded.
        """
        if cache is not None or positions is not None:
            raise ValueError("encoder-decoder: decode incrementally with model.incremental()")
        B, T = input_ids.shape
        dev = input_ids.device
        is_sep = input_ids == SEP_ID
        start = torch.where(is_sep.any(1), is_sep.int().argmax(1), 0)  # (B,) first <sep>
        S, D = max(int(start.max()), 1), T - int(start.min())
        src_mask = torch.arange(S, device=dev)[None] < start[:, None]  # (B, S)
        if attention_mask is not None:
            src_mask = src_mask & attention_mask[:, :S].bool()
        memory = self.encode(input_ids[:, :S], src_mask)
        at = start[:, None] + torch.arange(D, device=dev)[None]  # (B, D) row position of each
        dec = input_ids.gather(1, at.clamp(max=T - 1)).masked_fill(at >= T, PAD_ID)  # (B, D)
        hidden = self.decode(dec, memory)  # (B, D, C), right-padded: causal needs no mask
        back = (torch.arange(T, device=dev)[None] - start[:, None]).clamp(min=0)  # (B, T)
        return hidden.gather(1, back[..., None].expand(B, T, hidden.size(-1)))  # (B, T, C)

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits (B, T, V) from hidden states (B, T, C)."""
        return self.lm_head(hidden)

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        """A KV cache for the decoder's self-attention."""
        p = self.wte.weight
        return KVCache.empty(self.config, batch, max_len or self.max_seq_len, p.dtype, p.device)

    def incremental(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        pad_id: int,
        max_new_tokens: int,
        use_cache: bool = True,
    ) -> EncDecIncremental:
        """Incremental decoding of prompts ``source <sep> [prefix]`` (:mod:`plugformer.inference.decoding`)."""
        return EncDecIncremental(
            self, prompts, pad_id=pad_id, max_new_tokens=max_new_tokens, use_cache=use_cache
        )


class _BoundDecoder(nn.Module):
    """The decoder bound to one batch's :class:`Memory`: the causal decoding surface."""

    def __init__(self, model: EncoderDecoder, memory: Memory) -> None:
        super().__init__()
        self.model, self.memory = model, memory
        self.max_seq_len = model.max_seq_len

    def forward(self, ids, attention_mask=None, cache=None, positions=None):
        return self.model.decode(ids, self.memory, attention_mask, cache, positions)

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.lm_logits(hidden)

    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        return self.model.new_cache(batch, max_len)


class EncDecIncremental(CausalIncremental):
    """Sources encoded once; the decoder prefixes (``<sep> ...``) decoded as a causal model's
    prompts are, over the decoder's KV cache (or recomputed, without ``use_cache``)."""

    def __init__(
        self,
        model: EncoderDecoder,
        prompts: Sequence[Sequence[int]],
        *,
        pad_id: int,
        max_new_tokens: int,
        use_cache: bool = True,
    ) -> None:
        sources, prefixes = zip(*(split_prompt(p) for p in prompts), strict=True)
        device = model.wte.weight.device
        S = max(1, *(len(s) for s in sources))
        src = torch.full((len(prompts), S), PAD_ID, dtype=torch.long, device=device)
        for i, s in enumerate(sources):
            src[i, : len(s)] = torch.tensor(s, dtype=torch.long, device=device)
        src_mask = (
            torch.arange(S, device=device)[None]
            < torch.tensor([len(s) for s in sources], device=device)[:, None]
        )  # (B, S)
        self.decoder = _BoundDecoder(model, model.encode(src, src_mask))
        super().__init__(
            self.decoder,
            prefixes,
            pad_id=pad_id,
            max_new_tokens=max_new_tokens,
            use_cache=use_cache,
        )

    def reorder(self, index: torch.Tensor) -> None:
        super().reorder(index)
        self.decoder.memory.reorder(index)
