"""Pretraining objectives: how a block of token ids becomes (inputs, targets) for the LM head.

The core registers ``clm`` (causal LM) and ``mlm`` (BERT-style masked LM) through the
``register_objectives`` hook; a plugin can add others the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a batch is made: listing plugins stays light
    import torch

__all__ = ["CausalLM", "MaskedLM", "Objective"]

IGNORE = -100
"""Target id the cross-entropy ignores."""


@dataclass(frozen=True)
class Objective:
    """Base class. ``make_batch`` gets (B, T+1) token ids; returns inputs (B, T), targets (B, T)."""

    name: str = "objective"
    causal: bool = True
    """Whether the objective needs causal attention (``model.causal``)."""

    def make_batch(
        self,
        block: torch.Tensor,
        vocab_size: int,
        mask_id: int,
        generator: torch.Generator | None = None,
    ):
        raise NotImplementedError


@dataclass(frozen=True)
class CausalLM(Objective):
    """Predict token t+1 from tokens ≤ t."""

    name: str = "clm"
    causal: bool = True

    def make_batch(self, block, vocab_size, mask_id, generator=None):
        return block[:, :-1], block[:, 1:]


@dataclass(frozen=True)
class MaskedLM(Objective):
    """BERT's recipe: pick 15% of positions; of those 80% → <mask>, 10% → random, 10% kept."""

    name: str = "mlm"
    causal: bool = False
    mask_prob: float = 0.15

    def make_batch(self, block, vocab_size, mask_id, generator=None):
        import torch

        x = block[:, :-1].clone()  # same length as the causal objective's inputs
        targets = x.clone()
        r = torch.rand(x.shape, generator=generator, device=x.device)
        picked = r < self.mask_prob
        targets[~picked] = IGNORE
        r2 = torch.rand(x.shape, generator=generator, device=x.device)
        x[picked & (r2 < 0.8)] = mask_id
        rand = picked & (r2 >= 0.8) & (r2 < 0.9)
        # Random replacements avoid the reserved ids (the first 16) so they stay meaningful.
        x[rand] = torch.randint(
            16, vocab_size, (int(rand.sum()),), generator=generator, device=x.device
        )
        return x, targets
