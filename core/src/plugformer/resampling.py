"""Per-example statistics of a main metric, and intervals that resample seeds *and* test examples.

A suite cell's score is one fine-tuning seed measured on one test sample, so it has two
sources of noise. An interval over seeds alone misses the second, and with two seeds a
bootstrap of their mean is just their range. Reports here resample both (a two-level
bootstrap): each resample draws the seeds with replacement and, independently, the test
examples with replacement, the same draw of examples for every seed and every column of a
spec (they were all scored on the same test set), and recomputes the metric from
per-example *statistics*:

* ``mean`` — the metric is the mean of one number per example (accuracy, SQuAD EM/F1,
  ROUGE-L F), times ``scale``;
* ``ratio`` — ``Σa / Σb`` of two numbers per example (word accuracy: words right, words);
* ``f1`` — micro F1 ``2·Σtp / (Σpredicted + Σgold)`` (span F1 of tagging);
* ``bleu`` / ``chrf`` — sacrebleu's own sufficient statistics per sentence (n-gram matches
  and totals, lengths); the corpus score of a resample is sacrebleu's score of their column
  sums, as sacrebleu's paired bootstrap (``sacrebleu --paired-bs``) computes it.

A task gives them through ``Task.example_statistics(predictions, examples)``, whose default
asks the main metric's object when that keeps per-example state (:func:`metric_statistics`:
:class:`plugformer.metrics.CorpusBLEU` / ``CorpusCHRF``, :class:`plugformer.blocks.metrics.MeanOf`,
torchmetrics' ``ROUGEScore``). A metric without them (macro-F1, perplexity) keeps the
seeds-only interval, and the report says which one it shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ExampleStatistics",
    "interval",
    "metric_statistics",
    "paired_difference",
    "resampled_scores",
    "score",
]


@dataclass(frozen=True)
class ExampleStatistics:
    """One row of numbers per test example; column sums determine the metric (:func:`score`)."""

    kind: str
    """``mean``, ``ratio``, ``f1``, ``bleu`` or ``chrf``."""
    rows: list[list[float]]
    """(N, k): per-example statistics, in test-set order."""
    scale: float = 1.0
    """``mean`` only: the metric is ``scale`` times the mean of the first column."""

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "scale": self.scale, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExampleStatistics:
        return cls(str(data["kind"]), [list(map(float, r)) for r in data["rows"]], data["scale"])


def _sacrebleu(kind: str) -> Any:
    from sacrebleu.metrics import BLEU, CHRF

    return BLEU() if kind == "bleu" else CHRF()


def score(kind: str, totals: Sequence[float], n: int, scale: float = 1.0) -> float:
    """The metric of ``n`` examples whose statistics sum to ``totals``."""
    if kind == "mean":
        return scale * float(totals[0]) / max(n, 1)
    if kind == "ratio":
        return scale * float(totals[0]) / float(totals[1]) if totals[1] else 0.0
    if kind == "f1":
        denom = float(totals[1]) + float(totals[2])
        return scale * 2 * float(totals[0]) / denom if denom else 0.0
    if kind in ("bleu", "chrf"):
        # sacrebleu's corpus score from summed sentence statistics (what corpus_score and its
        # paired bootstrap do); BLEU's settings that matter here (smoothing) are the defaults
        # the tasks score with, and the tokenizer only shaped the statistics.
        stats = [round(float(t)) for t in totals]
        return float(_sacrebleu(kind)._compute_score_from_stats(stats).score)
    raise ValueError(f"unknown statistics kind {kind!r}")


def metric_statistics(metric: Any) -> ExampleStatistics | None:
    """Per-example statistics held by an updated metric object, or ``None``."""
    from torchmetrics.text import ROUGEScore

    from plugformer.blocks.metrics import MeanOf
    from plugformer.metrics import CorpusBLEU, CorpusCHRF, SacreBLEUMetric

    if isinstance(metric, SacreBLEUMetric) and isinstance(metric, CorpusBLEU | CorpusCHRF):
        hyps, refs = metric.texts()
        kind = "bleu" if isinstance(metric, CorpusBLEU) else "chrf"
        rows = metric.sacrebleu()._extract_corpus_statistics(hyps, [refs])
        return ExampleStatistics(kind, [list(map(float, r)) for r in rows])
    if isinstance(metric, MeanOf):
        return ExampleStatistics("mean", [[v] for v in metric.example_values()])
    if isinstance(metric, ROUGEScore) and "rougeL" in getattr(metric, "rouge_keys", ()):
        values = [float(v) for v in getattr(metric, "rougeL_fmeasure", [])]
        return ExampleStatistics("mean", [[v] for v in values])
    return None


def _example_draws(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(R, n) counts: how often each example is drawn in each resample (n draws each)."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)


def resampled_scores(
    stats: Sequence[ExampleStatistics], draws: np.ndarray, seed_draws: np.ndarray
) -> np.ndarray:
    """(R,) metric of each resample: mean over the drawn seeds (``seed_draws`` (R, S) indices
    into ``stats``) of the metric recomputed on the drawn examples (``draws`` (R, N))."""
    n = draws.shape[1]
    per_seed = []  # (S, R): each seed's metric on each resample of the examples
    for st in stats:
        totals = draws @ np.asarray(st.rows, dtype=float)  # (R, k)
        if st.kind == "mean":
            per_seed.append(st.scale * totals[:, 0] / n)
        elif st.kind in ("ratio", "f1"):  # vectorised forms of score()
            num = totals[:, 0] * (2 if st.kind == "f1" else 1)
            den = totals[:, 1] + (totals[:, 2] if st.kind == "f1" else 0)
            per_seed.append(st.scale * np.divide(num, den, out=np.zeros_like(num), where=den > 0))
        else:
            per_seed.append(np.array([score(st.kind, t, n) for t in totals]))
    matrix = np.stack(per_seed)  # (S, R)
    return matrix[seed_draws.T, np.arange(draws.shape[0])].mean(axis=0)


def interval(
    stats: Sequence[ExampleStatistics], resamples: int, seed: int, level: float
) -> tuple[float, float]:
    """Percentile interval of the two-level bootstrap (seeds, then shared examples)."""
    values = _two_level(stats, resamples, seed)
    low, high = np.percentile(values, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def _two_level(stats: Sequence[ExampleStatistics], resamples: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = len(stats[0].rows)
    draws = _example_draws(n, resamples, rng)
    # The seed draws come from their own stream, so the examples drawn depend only on
    # (seed, n): two columns of one spec see the same resamples of the test set.
    seed_rng = np.random.default_rng([seed, 1])
    seed_draws = seed_rng.integers(0, len(stats), (resamples, len(stats)))
    return resampled_scores(stats, draws, seed_draws)


def paired_difference(
    a: Sequence[ExampleStatistics],
    b: Sequence[ExampleStatistics],
    resamples: int,
    seed: int,
    level: float,
) -> tuple[float, float, float]:
    """(mean difference, low, high): ``a`` minus ``b`` on the same resamples of the test set.

    Paired: both columns are rescored on each draw of examples, and seeds are drawn by the
    same indices for both (seed ``i`` of ``a`` with seed ``i`` of ``b``: a suite runs every
    column with the same seeds, which fix the same data order)."""
    n = len(a[0].rows)
    if any(len(s.rows) != n for s in (*a, *b)):
        raise ValueError("paired comparison needs the same test examples in both columns")
    diff = _two_level(a, resamples, seed) - _two_level(b, resamples, seed)
    full = np.ones((1, n), dtype=float)
    point = float(
        resampled_scores(a, full, np.arange(len(a))[None]).item()
        - resampled_scores(b, full, np.arange(len(b))[None]).item()
    )
    low, high = np.percentile(diff, [50 * (1 - level), 50 * (1 + level)])
    return point, float(low), float(high)
