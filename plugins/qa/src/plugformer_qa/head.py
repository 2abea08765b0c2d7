"""The ``qa`` task's model side: :class:`SpanHead` (start and end logits per token) and
:func:`best_spans` (the best-scoring span of each window), both on tensors alone.

The task (:mod:`plugformer_qa.task`) encodes windows and builds this head on a backbone;
:mod:`plugformer_qa.decoding` turns the spans back into characters of the context.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["SpanHead", "best_spans"]


class SpanHead(nn.Module):
    """Start and end logits per token: hidden (B, T, C) → two (B, T) tensors.

    Each token's logits are a linear score of its own hidden state plus a pointer score
    against the *query*, the hidden state at the window's last token (``<sep>``), which has
    read the question and the whole window — a causal backbone's context tokens have not
    seen what follows them, so only the query can compare all candidates. On a causal
    language model the start logit also gets the model's own prediction at the query: the
    log-probability that the answer begins with that token (``copy``, from
    :meth:`plugformer_qa.task.QATask.forward`), the document format task-aware pretraining teaches (``question
    <sep> context <sep> answer``). The pointer and the copy weight start at zero, so an
    untrained head is the linear head, and training decides how far to trust the language
    model's guess. (The copy weight started at one until the measurement below: the raw
    log-probabilities, spread over ten nats, then outweighed both the linear head and the
    prior, and a 4×64 language model's guess alone is a poor one, validation F1 19 zero-shot
    against the entity ranker's 55. Validation F1, 300 questions, the cells' 0.63 minutes on
    one thread of the 2-core fp32 CPU, the text+tasks backbone of commit 4b0f26b's default job
    and its untrained control, seeds 0 / 1, starting weight one → zero: news-cloze-prior
    text+tasks 53.7 / 57.7 → 57.7 / 59.4, scratch 58.0 / 58.2 → 56.8 / 60.5; news-cloze
    text+tasks 25.9 / 31.2 → 29.8 / 33.1, scratch 25.4 / 28.1 → 30.5 / 29.0: better in seven
    pairs of eight, +2.3 on average.)
    With ``prior`` the head also weighs each candidate's prior score (``batch
    ["candidate_prior"]``, the entity ranker's logit; ``QAOptions.candidate_prior``) by
    ``prior_weight``, starting at one, into ``outputs["candidate_prior"]`` (B, K).

    Positions a label cannot take (question, padding) are masked to the lowest float; the
    first ``<sep>`` stays open because it labels windows without the answer.
    """

    def __init__(self, d_model: int, prior: bool = False) -> None:
        super().__init__()
        self.proj = nn.Linear(d_model, 2)
        self.pointer = nn.Linear(d_model, 2 * d_model)
        nn.init.zeros_(self.pointer.weight)
        nn.init.zeros_(self.pointer.bias)
        self.copy_weight = nn.Parameter(torch.zeros(()))
        self.prior_weight = nn.Parameter(torch.ones(())) if prior else None
        self.scale = d_model**-0.5

    def forward(self, hidden: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        rows = torch.arange(hidden.size(0), device=hidden.device)
        query = hidden[rows, batch["query_index"]]  # (B, C)
        keys = self.pointer(query).view(-1, 2, hidden.size(-1))  # (B, 2, C)
        pointed = torch.einsum("btc,bkc->btk", hidden, keys) * self.scale  # (B, T, 2)
        start, end = (self.proj(hidden) + pointed).float().unbind(dim=-1)  # (B, T), (B, T)
        if "copy" in batch:
            start = start + self.copy_weight * batch["copy"]
        allowed = batch["context_mask"].clone()  # (B, T)
        allowed[rows, batch["context_offset"] - 1] = True
        lowest = torch.finfo(start.dtype).min
        out = {
            "start_logits": start.masked_fill(~allowed, lowest),
            "end_logits": end.masked_fill(~allowed, lowest),
        }
        if self.prior_weight is not None and "candidate_prior" in batch:
            out["candidate_prior"] = self.prior_weight * batch["candidate_prior"]  # (B, K)
        return out


def best_spans(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    context_mask: torch.Tensor,
    max_tokens: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row, the context span ``i <= j < i + max_tokens`` maximising ``start[i] + end[j]``.

    Returns ``(score, i, j)``, each (B,); ``score`` is ``-inf`` for a row without context
    tokens. Ties go to the shortest span, then the earliest.
    """
    B, T = start_logits.shape
    L = min(max_tokens, T)
    band = start_logits.new_full((B, L, T), float("-inf"))  # band[b, d, i]: span i .. i + d
    for d in range(L):
        scores = start_logits[:, : T - d] + end_logits[:, d:]  # (B, T - d)
        ok = context_mask[:, : T - d] & context_mask[:, d:]  # (B, T - d)
        band[:, d, : T - d] = scores.masked_fill(~ok, float("-inf"))
    score, flat = band.view(B, L * T).max(dim=1)  # (B,), (B,)
    start = flat % T
    return score, start, start + flat // T
