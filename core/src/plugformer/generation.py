"""Autoregressive decoding with the KV cache: greedy, temperature, top-k, top-p, repetition
penalty, stop on eos or stop strings. Batched prompts are left-padded.

Beam search lives with the translation task; it uses the same cache (``KVCache.reorder``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["SamplingConfig", "generate", "left_pad", "sample_next"]


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 64
    temperature: float = 0.0
    """0 means greedy (argmax)."""
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    """> 1 discourages tokens already in the sequence (CTRL-style: divide positive logits)."""
    seed: int | None = None


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu"):
    """(ids, mask, positions), each (B, T): prompts right-aligned so new tokens line up."""
    T = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), T), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), T), dtype=torch.long, device=device)
    for i, p in enumerate(prompts):
        if len(p):
            ids[i, T - len(p) :] = torch.tensor(list(p), dtype=torch.long, device=device)
            mask[i, T - len(p) :] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    return ids, mask, positions


def sample_next(
    logits: torch.Tensor,
    cfg: SamplingConfig,
    seen: torch.Tensor | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Next token ids (B,) from last-position logits (B, V)."""
    logits = logits.float()
    if cfg.repetition_penalty != 1.0 and seen is not None:
        picked = logits.gather(1, seen)
        picked = torch.where(
            picked > 0, picked / cfg.repetition_penalty, picked * cfg.repetition_penalty
        )
        logits = logits.scatter(1, seen, picked)
    if cfg.temperature <= 0:
        return logits.argmax(-1)
    logits = logits / cfg.temperature
    if cfg.top_k:
        kth = torch.topk(logits, min(cfg.top_k, logits.size(-1))).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if cfg.top_p is not None and cfg.top_p < 1.0:
        sorted_logits, order = logits.sort(-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > cfg.top_p  # keep the smallest set reaching top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
    probs = logits.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.inference_mode()
def generate(
    model,
    prompts: Sequence[Sequence[int]],
    cfg: SamplingConfig,
    eos_id: int | None,
    pad_id: int = 0,
    stop_check=None,
    use_cache: bool = True,
) -> list[list[int]]:
    """New token ids for each prompt (eos and what follows are not included)."""
    device = next(model.parameters()).device
    ids, mask, positions = left_pad(prompts, pad_id, device)
    B, T = ids.shape
    budget = min(cfg.max_new_tokens, model.max_seq_len - T)
    generator = None
    if cfg.seed is not None:
        generator = torch.Generator(device=device).manual_seed(cfg.seed)
    out: list[list[int]] = [[] for _ in range(B)]
    done = [False] * B
    padded = bool((mask == 0).any())
    # Bookkeeping is per step in Python on one ``tolist()`` of the new tokens: no per-row tensor
    # indexing, and the sequence/mask/positions only grow when something reads them.
    keep_seen = cfg.repetition_penalty != 1.0 or not use_cache
    if use_cache:
        cache = model.new_cache(B, T + budget)
        hidden = model(ids, mask if padded else None, cache, positions if padded else None)
    else:
        hidden = model(ids, mask if padded else None, None, positions if padded else None)
    seen = ids
    for _ in range(budget):
        nxt = sample_next(model.lm_logits(hidden[:, -1]), cfg, seen, generator)  # (B,)
        for i, tok in enumerate(nxt.tolist()):
            if done[i]:
                continue
            if tok == eos_id:
                done[i] = True
                continue
            out[i].append(tok)
            if stop_check is not None and stop_check(out[i]):
                done[i] = True
        if all(done):
            break
        if any(done):
            nxt = nxt.masked_fill(torch.tensor(done, device=device), pad_id)
        if keep_seen:
            seen = torch.cat([seen, nxt[:, None]], dim=1)
        if padded:
            mask = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype, device=device)], dim=1)
            positions = positions[:, -1:] + 1
        if use_cache:
            hidden = model(
                nxt[:, None], mask if padded else None, cache, positions if padded else None
            )
        else:  # recompute everything (the reference the cache must match)
            full_pos = (mask.cumsum(1) - 1).clamp(min=0) if padded else None
            hidden = model(seen, mask if padded else None, None, full_pos)
    return out
