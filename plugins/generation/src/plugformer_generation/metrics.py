"""Metrics of the generation task: perplexity and bits per byte, ROUGE-L, BLEU and chrF.

Perplexity and bits per byte accumulate three sums over the scored reference text: the
negative log-likelihood (nats), the number of scored tokens and the UTF-8 bytes of the
reference (a completion's without the space its tokens carry after ``<sep>``). Perplexity
``exp(nll / tokens)`` depends on the tokenizer; bits per byte ``nll / (ln 2 * bytes)`` does
not, and compares models with different vocabularies.

ROUGE-L is torchmetrics' ``ROUGEScore`` (F-measure of the longest common subsequence of
words, 0-1). BLEU and chrF are sacrebleu's corpus scores (0-100), shared with the translation
plugin through ``plugformer.metrics``: corpus scores are not averages of sentence scores, so they keep every
hypothesis/reference string and call sacrebleu's ``BLEU``/``CHRF`` once in ``compute``.
Strings travel as UTF-8 byte tensors plus their lengths, so the states are plain tensors
that torchmetrics can gather across processes (DDP); ``compute`` decodes them again.
"""

from __future__ import annotations

import math

import torch
from torchmetrics import Metric
from torchmetrics.text import ROUGEScore

from plugformer.metrics import CorpusBLEU, CorpusCHRF, SacreBLEUMetric

__all__ = [
    "BitsPerByte",
    "CorpusBLEU",
    "CorpusCHRF",
    "LikelihoodMetric",
    "Perplexity",
    "RougeL",
    "SacreBLEUMetric",
]


class LikelihoodMetric(Metric):
    """Base: sums of NLL (nats), scored tokens and bytes over all scored references."""

    is_differentiable = False
    full_state_update = False

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.add_state("nll", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("tokens", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("bytes", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, nll: float, tokens: int, n_bytes: int) -> None:
        """Add one batch's (or example's) summed NLL, scored tokens and UTF-8 bytes."""
        self.nll += nll
        self.tokens += tokens
        self.bytes += n_bytes


class Perplexity(LikelihoodMetric):
    """``exp(nll / tokens)``: per-token perplexity (lower is better; tokenizer-dependent)."""

    higher_is_better = False

    def compute(self) -> torch.Tensor:
        return torch.exp(self.nll / self.tokens)


class BitsPerByte(LikelihoodMetric):
    """``nll / (ln 2 * bytes)``: bits per UTF-8 byte of text (lower is better)."""

    higher_is_better = False

    def compute(self) -> torch.Tensor:
        return self.nll / (math.log(2) * self.bytes)


class RougeL(ROUGEScore):
    """ROUGE-L F-measure only (``ROUGEScore`` returns a dict of precision/recall/F)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(rouge_keys="rougeL", **kwargs)

    def compute(self) -> torch.Tensor:
        return super().compute()["rougeL_fmeasure"]
