"""Batched beam search over the backbone's KV cache.

Each prompt gets ``K`` rows (beams) in one batch of ``B * K`` rows; the cache is shared by
index: after every step :meth:`KVCache.reorder` copies each surviving beam's keys and values
to its new row, and drops the rows of prompts that are finished (the batch shrinks).

The search follows fairseq: at each step the ``2K`` best continuations of a prompt's beams
are ranked; an end-of-sequence among the first ``K`` of them completes a hypothesis, and the
``K`` best other continuations become the next beams. A prompt is finished when ``K``
hypotheses are complete, or when its token budget is spent (its live beams then complete as
they stand). The winner is the complete hypothesis with the best length-normalised score.

Length penalty (GNMT, Wu et al. 2016): a hypothesis of ``L`` new tokens (its end-of-sequence
included) with summed log-probability ``s`` scores ``s / ((5 + L) / 6) ** alpha``. ``alpha =
0`` ranks by raw log-probability (short hypotheses win); larger ``alpha`` favours longer
ones. With ``K = 1`` the search is greedy decoding, whatever ``alpha``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from plugformer.generation import left_pad

__all__ = ["beam_search", "gnmt_length_penalty"]


def gnmt_length_penalty(length: int, alpha: float) -> float:
    """GNMT's length normaliser ``((5 + length) / 6) ** alpha``."""
    return ((5 + length) / 6) ** alpha


@torch.inference_mode()
def beam_search(
    model: Any,  # a backbone: forward(ids, mask, cache, positions), lm_logits, new_cache, max_seq_len
    prompts: Sequence[Sequence[int]],
    *,
    beam_size: int,
    max_new_tokens: int | Sequence[int],
    eos_id: int,
    pad_id: int = 0,
    length_penalty: float = 0.6,
    use_cache: bool = True,
) -> list[list[int]]:
    """The best hypothesis (new token ids, without the end-of-sequence) for each prompt.

    ``max_new_tokens`` is one budget for all prompts or one per prompt; budgets are capped by
    the model's context. ``use_cache=False`` recomputes the whole sequence at every step
    (the reference the cached search must equal).
    """
    B, K = len(prompts), beam_size
    if K < 1:
        raise ValueError(f"beam_size must be >= 1, got {K}")
    wanted = [max_new_tokens] * B if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(wanted) != B or min(wanted, default=1) < 1:
        raise ValueError("max_new_tokens must be >= 1, one value or one per prompt")
    device = next(model.parameters()).device
    ids, mask, positions = left_pad(prompts, pad_id, device)  # (B, T) each
    T = ids.size(1)
    room = model.max_seq_len - T
    if room < 1:
        return [[] for _ in range(B)]
    budgets = [min(w, room) for w in wanted]
    padded = bool((mask == 0).any())

    rows = torch.arange(B, device=device).repeat_interleave(K)  # (B*K,) prompt of each row
    seq, mask, positions = ids[rows], mask[rows], positions[rows]  # (B*K, T)
    cache = model.new_cache(B * K, T + max(budgets)) if use_cache else None
    hidden = model(seq, mask if padded else None, cache, positions if padded else None)[
        :, -1
    ]  # (B*K, C)
    # All K beams of a prompt start identical: only the first is live, or the top-K would repeat.
    scores = torch.full((B, K), float("-inf"), device=device)  # (B, K) summed log-probs
    scores[:, 0] = 0.0
    active = list(range(B))  # prompt index of each group of K rows
    best: list[tuple[float, list[int]] | None] = [None] * B
    completed = [0] * B

    def complete(prompt: int, score: float, length: int, hypothesis: list[int]) -> None:
        completed[prompt] += 1
        normalised = score / gnmt_length_penalty(length, length_penalty)
        current = best[prompt]
        if current is None or normalised > current[0]:
            best[prompt] = (normalised, hypothesis)

    for step in range(max(budgets)):
        n, length = len(active), step + 1
        logp = torch.log_softmax(model.lm_logits(hidden).float(), dim=-1)  # (n*K, V)
        V = logp.size(-1)
        candidates = (scores.reshape(-1, 1) + logp).view(n, K * V)  # (n, K*V)
        top_scores, top_index = candidates.topk(min(2 * K, K * V), dim=1)  # (n, 2K)
        top_beam, top_token = top_index // V, top_index % V  # (n, 2K) each
        is_eos = top_token == eos_id  # (n, 2K)
        new = seq[:, T:]  # (n*K, step) tokens generated so far

        for g, prompt in enumerate(active):
            for j in range(K):
                if is_eos[g, j] and top_scores[g, j] > float("-inf"):
                    complete(
                        prompt,
                        float(top_scores[g, j]),
                        length,
                        new[g * K + int(top_beam[g, j])].tolist(),
                    )

        scores, pick = top_scores.masked_fill(is_eos, float("-inf")).topk(K, dim=1)  # (n, K)
        source_row = (torch.arange(n, device=device)[:, None] * K + top_beam.gather(1, pick)).view(
            -1
        )  # (n*K,)
        token = top_token.gather(1, pick).view(-1, 1)  # (n*K, 1)

        keep = []
        for g, prompt in enumerate(active):
            if completed[prompt] >= K:
                continue
            if length >= budgets[prompt]:  # budget spent: live beams complete unfinished
                for j in range(K):
                    row = int(source_row[g * K + j])
                    hypothesis = [*new[row].tolist(), int(token[g * K + j])]
                    if scores[g, j] > float("-inf"):
                        complete(prompt, float(scores[g, j]), length, hypothesis)
                continue
            keep.append(g)
        if not keep:
            break

        kept_rows = (
            torch.tensor(keep, device=device)[:, None] * K + torch.arange(K, device=device)
        ).view(-1)
        index = source_row[kept_rows]  # (n'*K,) old row of each new row
        token = token[kept_rows]  # (n'*K, 1)
        scores = scores[keep]  # (n', K)
        active = [active[g] for g in keep]
        seq = torch.cat([seq[index], token], dim=1)  # (n'*K, T+step+1)
        mask = torch.cat([mask[index], torch.ones_like(token)], dim=1)  # (n'*K, T+step+1)
        positions = mask.sum(1, keepdim=True) - 1  # (n'*K, 1) position of the new token
        if cache is not None:
            cache.reorder(index)
            hidden = model(token, mask if padded else None, cache, positions if padded else None)
        else:
            full_positions = (mask.cumsum(1) - 1).clamp(min=0)  # (n'*K, L)
            hidden = model(seq, mask if padded else None, None, full_positions if padded else None)
        hidden = hidden[:, -1]  # (n'*K, C)

    return [b[1] if b is not None else [] for b in best]
