"""Training a cloze reader on the choice it decodes (``answer_candidates = "entities"``).

Each training window carries its candidate entity occurrences as ``(start, end, gold,
prior)`` input positions, first its ``<sep>`` (no answer in this window); the loss is a
cross-entropy over them, each scored ``start[i] + end[j]`` as decoding scores them (plus the
head's weighted ``prior``, the entity ranker's logit, with ``candidate_prior``), where every
occurrence of the answer's text is right (Kadlec et al., 2016's attention-sum reader sums
over an entity's occurrences too)::

    features' candidates ──collate_candidates──▶ candidate_spans (B, K, 2),
                                                 candidate_gold, candidate_valid,
                                                 candidate_prior (B, K)
    start/end logits (B, T) ──candidate_loss──▶ scalar
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["candidate_loss", "collate_candidates", "window_candidates"]


Candidate = tuple[int, int, bool, float]
"""``(first token, last token, is it the answer's text?, prior score)`` of one occurrence."""


def window_candidates(
    candidates: list[Candidate],
    feature: dict[str, Any],
    start: int,
    end: int,
    offset: int,
) -> list[Candidate]:
    """The candidate occurrences a window holds whole, as ``(start, end, gold, prior)``
    positions of its input; first the window's ``<sep>`` (no answer here, prior 0), gold
    when no occurrence of the answer's text is in the window. A labelled answer that is not
    itself a candidate is added (prior 0), so every window with the answer has a gold
    choice."""
    inside = [
        (offset + i - start, offset + j - start, g, p)
        for i, j, g, p in candidates
        if start <= i and j < end
    ]
    labelled = (feature["start_position"], feature["end_position"])
    if labelled[0] != offset - 1 and not any(g for _, _, g, _ in inside):
        inside.append((*labelled, True, 0.0))
    has_answer = any(g for _, _, g, _ in inside)
    return [(offset - 1, offset - 1, not has_answer, 0.0), *inside]


def collate_candidates(rows: Sequence[Sequence[Candidate]]) -> dict[str, torch.Tensor]:
    """A batch's windows' candidates, padded to the longest list."""
    B, K = len(rows), max(len(r) for r in rows)
    # candidate k of window b spans input positions spans[b, k, 0] .. spans[b, k, 1]
    spans = torch.zeros((B, K, 2), dtype=torch.long)
    gold = torch.zeros((B, K), dtype=torch.bool)
    valid = torch.zeros((B, K), dtype=torch.bool)
    prior = torch.zeros((B, K), dtype=torch.float)
    for b, row in enumerate(rows):
        spans[b, : len(row)] = torch.tensor([(i, j) for i, j, _, _ in row])
        gold[b, : len(row)] = torch.tensor([g for _, _, g, _ in row])
        prior[b, : len(row)] = torch.tensor([p for _, _, _, p in row])
        valid[b, : len(row)] = True
    return {
        "candidate_spans": spans,
        "candidate_gold": gold,
        "candidate_valid": valid,
        "candidate_prior": prior,
    }


def candidate_loss(outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
    """Cross-entropy over each window's candidates (and its ``<sep>``), each scored
    ``start[i] + end[j]`` (plus ``outputs["candidate_prior"]``, the head's weighted prior,
    when it has one); the right ones are every occurrence of the answer's text."""
    spans = batch["candidate_spans"]  # (B, K, 2)
    scores = outputs["start_logits"].gather(1, spans[..., 0]) + outputs["end_logits"].gather(
        1, spans[..., 1]
    )  # (B, K)
    if "candidate_prior" in outputs:
        scores = scores + outputs["candidate_prior"]
    every = torch.logsumexp(scores.masked_fill(~batch["candidate_valid"], float("-inf")), dim=1)
    gold = torch.logsumexp(scores.masked_fill(~batch["candidate_gold"], float("-inf")), dim=1)
    return (every - gold).mean()  # -log of the right candidates' share, per window
