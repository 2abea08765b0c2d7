"""Corpus BLEU and chrF as torchmetrics metrics, computed by sacrebleu itself.

Shared by every task that scores text against references (translation, generation).

Corpus-level scores are not averages of sentence scores, so the metrics keep every
hypothesis/reference string (list states, updated batch by batch) and call sacrebleu's
``BLEU``/``CHRF`` once in ``compute``: the figures are sacrebleu's own, with its signature.

Strings travel as UTF-8 byte tensors plus their lengths, so the states are plain tensors
that torchmetrics can gather across processes (DDP); ``compute`` decodes them again.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from sacrebleu.metrics import BLEU, CHRF
from sacrebleu.metrics.base import Metric as SacreMetric
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

__all__ = ["CorpusBLEU", "CorpusCHRF", "SacreBLEUMetric"]


def _pack(texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """UTF-8 bytes of ``texts`` concatenated (N,), and each text's byte length (n,)."""
    encoded = [t.encode("utf-8") for t in texts]
    data = torch.tensor(list(b"".join(encoded)), dtype=torch.uint8)
    return data, torch.tensor([len(e) for e in encoded], dtype=torch.long)


def _unpack(
    data: list[torch.Tensor] | torch.Tensor, lengths: list[torch.Tensor] | torch.Tensor
) -> list[str]:
    """Inverse of :func:`_pack` over the accumulated (possibly gathered) states."""
    if isinstance(lengths, list) and not lengths:
        return []
    raw = bytes(dim_zero_cat(data).to(torch.uint8).tolist())
    out, start = [], 0
    for n in dim_zero_cat(lengths).long().tolist():
        out.append(raw[start : start + n].decode("utf-8"))
        start += n
    return out


class SacreBLEUMetric(Metric):
    """Base: accumulates (hypothesis, reference) strings; subclasses name the sacrebleu metric."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.add_state("hyp_bytes", default=[], dist_reduce_fx="cat")
        self.add_state("hyp_lengths", default=[], dist_reduce_fx="cat")
        self.add_state("ref_bytes", default=[], dist_reduce_fx="cat")
        self.add_state("ref_lengths", default=[], dist_reduce_fx="cat")

    def sacrebleu(self) -> SacreMetric:
        """A fresh sacrebleu metric object (configured by the subclass)."""
        raise NotImplementedError

    def update(self, hypotheses: Sequence[str], references: Sequence[str]) -> None:
        if len(hypotheses) != len(references):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
        for prefix, texts in (("hyp", hypotheses), ("ref", references)):
            data, lengths = _pack(texts)
            getattr(self, f"{prefix}_bytes").append(data.to(self.device))
            getattr(self, f"{prefix}_lengths").append(lengths.to(self.device))

    def texts(self) -> tuple[list[str], list[str]]:
        """(hypotheses, references) accumulated so far, in update order."""
        return (
            _unpack(self.hyp_bytes, self.hyp_lengths),
            _unpack(self.ref_bytes, self.ref_lengths),
        )

    def compute(self) -> torch.Tensor:
        hyps, refs = self.texts()
        return torch.tensor(self.sacrebleu().corpus_score(hyps, [refs]).score)

    def signature(self) -> str:
        """sacrebleu's reproducibility signature (``nrefs:1|case:mixed|...|version:2.x``)."""
        metric = self.sacrebleu()
        metric.num_refs = 1  # set by sacrebleu when scoring; we always score one reference
        return metric.get_signature().format()


class CorpusBLEU(SacreBLEUMetric):
    """sacrebleu corpus BLEU (0-100); ``target_lang`` picks the tokenizer as sacrebleu's ``-l``."""

    def __init__(self, target_lang: str | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.target_lang = target_lang

    def sacrebleu(self) -> BLEU:
        return BLEU(trg_lang=self.target_lang or "")


class CorpusCHRF(SacreBLEUMetric):
    """sacrebleu corpus chrF (character n-gram F-score, beta 2; 0-100)."""

    def sacrebleu(self) -> CHRF:
        return CHRF()
