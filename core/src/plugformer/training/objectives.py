"""Pretraining objectives: how a block of token ids becomes (inputs, targets) for the LM head.

The core registers ``clm`` (causal LM), ``mlm`` (BERT-style masked LM) and ``denoise``
(BART-style text infilling as ``corrupted <sep> original``, for encoder–decoders) through the
``register_objectives`` hook; a plugin can add others the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a batch is made: listing plugins stays light
    import torch

__all__ = ["CausalLM", "Denoising", "MaskedLM", "Objective"]

IGNORE = -100
"""Target id the cross-entropy ignores."""


@dataclass(frozen=True)
class Objective:
    """Base class. ``make_batch`` gets (B, T+1) token ids; returns inputs (B, T), targets (B, T)."""

    name: str = "objective"
    causal: bool = True
    """Whether the objective needs causal attention (``model.causal``)."""
    next_token: bool = True
    """Whether the loss is the next-token loss of the text itself (so validation reports bits
    per byte beside the unigram baseline); false for objectives that reconstruct a corrupted copy."""

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


@dataclass(frozen=True)
class Denoising(Objective):
    """BART's text infilling as one sequence: ``corrupted <sep> original``, loss on the original.

    The first ``(T - 1) // 2`` tokens of a block are the original. Spans (lengths drawn from a
    Poisson of mean ``mean_span``, at least 1) covering about ``noise`` of its tokens are
    each replaced by a single ``<mask>``, so the model must also infer how long each gap is.
    The target predicts every original token after ``<sep>``; the rest of the row is
    ``<pad>`` (ignored). An encoder–decoder reads the corrupted copy with its encoder and
    writes the original with its decoder; a decoder-only model learns the same mapping as a
    language model. ``<sep>`` tokens inside the corrupted copy (task documents) become
    ``<mask>``, so the row's first ``<sep>`` is the split.
    """

    name: str = "denoise"
    causal: bool = True
    next_token: bool = False
    noise: float = 0.3
    mean_span: float = 3.0

    def make_batch(self, block, vocab_size, mask_id, generator=None):
        import torch

        from plugformer.tokenizer import SPECIAL_TOKENS

        pad_id, sep_id = SPECIAL_TOKENS.index("<pad>"), SPECIAL_TOKENS.index("<sep>")
        B, T = block.size(0), block.size(1) - 1
        n = (T - 1) // 2
        x = torch.full((B, T), pad_id, dtype=block.dtype, device=block.device)
        y = torch.full((B, T), IGNORE, dtype=block.dtype, device=block.device)
        n_spans = max(1, round(n * self.noise / self.mean_span))
        rate = torch.full((B, n_spans), self.mean_span)
        lengths = torch.poisson(rate, generator=generator).clamp(min=1).long()  # (B, spans)
        starts = torch.rand(B, n, generator=generator).argsort(1)[:, :n_spans]  # (B, spans)
        covered = torch.arange(n)[None, None] - starts[..., None]  # (B, spans, n)
        noised = ((covered >= 0) & (covered < lengths[..., None])).any(1)  # (B, n)
        # A noised token survives only as the <mask> opening its span.
        opens = noised & ~torch.cat([torch.zeros(B, 1, dtype=torch.bool), noised[:, :-1]], 1)
        keep = ~noised | opens  # (B, n)
        for b in range(B):
            original = block[b, :n]
            corrupted = original.masked_fill(opens[b].to(block.device), mask_id)
            corrupted = corrupted[keep[b].to(block.device)]
            corrupted = corrupted.masked_fill(corrupted == sep_id, mask_id)
            m = corrupted.numel()
            x[b, :m] = corrupted
            x[b, m] = sep_id
            x[b, m + 1 : m + 1 + n] = original
            y[b, m : m + n] = original
        return x, y
