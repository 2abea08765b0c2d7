"""Aggregating suite cells: a (task spec, column) pair's main metric over seeds, its 95%
interval (over seeds and test examples when the cells carry per-example statistics,
:mod:`plugformer.resampling`; else over seeds), paired differences between columns, and the
labels reports and plots put on them. The writers are :mod:`plugformer.suites.report` and
:mod:`plugformer.suites.report_plots`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "IDENTITY_FIELDS",
    "LEVEL",
    "RESAMPLES",
    "RNG_SEED",
    "Aggregate",
    "aggregate",
    "bootstrap_ci",
    "metric_label",
    "paired_differences",
]

RESAMPLES = 1000
RNG_SEED = 0
LEVEL = 0.95

IDENTITY_FIELDS = ("spec", "task", "column", "kind", "main_metric", "higher_is_better")
"""What names an aggregate (its task, column and how to read its metric): the first fields
of :meth:`Aggregate.as_dict` and of the CSV report."""

# --------------------------------------------------------------------------- statistics


def bootstrap_ci(
    values: Sequence[float], resamples: int = RESAMPLES, seed: int = RNG_SEED, level: float = LEVEL
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean; one value or equal values give a zero-width one."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    means = x[np.random.default_rng(seed).integers(0, x.size, (resamples, x.size))].mean(axis=1)
    low, high = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


# --------------------------------------------------------------------------- aggregation


@dataclass
class Aggregate:
    """One (task spec, column) pair of a run: its main-metric values over seeds."""

    spec: str
    task: str
    column: str
    kind: str
    main_metric: str
    higher_is_better: bool
    metric_info: dict[str, Any]
    data: dict[str, Any]
    n_examples: int
    seeds: list[int | None] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    statistics: list[dict[str, Any] | None] = field(default_factory=list)
    """Per seed, the cell's per-example statistics of the main metric (or ``None``)."""
    _parsed: tuple[int, list[Any] | None] | None = field(default=None, repr=False, compare=False)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    def example_statistics(self) -> list[Any] | None:
        """Every seed's :class:`~plugformer.resampling.ExampleStatistics`, when all have them
        (of one kind, on the same number of examples); else ``None``. Parsed once per number
        of seeds aggregated (intervals, paired differences and plots all ask)."""
        from plugformer.resampling import ExampleStatistics

        cached = self._parsed
        if cached is not None and cached[0] == len(self.statistics):
            return cached[1]
        stats: list[Any] | None = None
        if self.statistics and all(s is not None for s in self.statistics):
            stats = [ExampleStatistics.from_dict(s) for s in self.statistics if s is not None]
            if len({(s.kind, len(s.rows)) for s in stats}) != 1 or not stats[0].rows:
                stats = None
        self._parsed = (len(self.statistics), stats)
        return stats

    @property
    def interval_method(self) -> str:
        """What the interval resamples: ``seeds+examples`` or ``seeds``."""
        return "seeds+examples" if self.example_statistics() else "seeds"

    @property
    def interval(self) -> tuple[float, float]:
        from plugformer.resampling import interval

        stats = self.example_statistics()
        if stats is None:
            return bootstrap_ci(self.values)
        return interval(stats, RESAMPLES, RNG_SEED, LEVEL)

    def as_dict(self) -> dict[str, Any]:
        low, high = self.interval
        keep = (*IDENTITY_FIELDS, "seeds", "values")
        return {
            **{k: getattr(self, k) for k in keep},
            "mean": self.mean,
            "ci_low": low,
            "ci_high": high,
            "interval_resamples": self.interval_method,
        }


def aggregate(records: Sequence[dict[str, Any]]) -> list[Aggregate]:
    """Group cells by (spec, column): specs in run order, backbones before baselines."""
    groups: dict[tuple[str, str], Aggregate] = {}
    for r in records:
        agg = groups.setdefault(
            (r["spec"], r["kind"], r["column"]),
            Aggregate(
                r["spec"],
                r["task"],
                r["column"],
                r["kind"],
                r["main_metric"],
                r["higher_is_better"],
                r["metric_info"],
                r["data"],
                r["n_examples"],
            ),
        )
        agg.seeds.append(r["seed"])
        agg.values.append(float(r["metrics"][r["main_metric"]]))
        agg.statistics.append(r.get("example_statistics"))
    specs = list(dict.fromkeys(k[0] for k in groups))
    return sorted(groups.values(), key=lambda a: (specs.index(a.spec), a.kind == "baseline"))


def _columns(aggs: Sequence[Aggregate]) -> list[tuple[str, str]]:
    """(column, kind) in report order: backbones, then baselines, each in first-seen order."""
    seen = dict.fromkeys((a.column, a.kind) for a in aggs)
    return [c for c in seen if c[1] == "model"] + [c for c in seen if c[1] == "baseline"]


def _definition(info: dict[str, Any], metric: str) -> str | None:
    """What metric_info says of ``metric``: its own entry, else the task-wide ``definition``."""
    text = info.get(metric, info.get("definition"))
    if isinstance(text, dict):  # a typed MetricInfo
        text = text.get("definition")
    return text if isinstance(text, str) else None


def _scale(info: dict[str, Any], metric: str) -> str | None:
    """The scale of ``metric``: its typed :class:`MetricInfo` range; for results written before
    MetricInfo, a ``scale`` entry ("0-100"), a range in its text ("(0-1)") or a sacreBLEU
    signature (0 to 100)."""
    typed = info.get(metric)
    if isinstance(typed, dict) and "range" in typed:
        from plugformer.metric_info import MetricInfo

        return MetricInfo.model_validate(typed).scale
    text = _definition(info, metric) or ""
    if "nrefs:" in text:
        return "0 to 100, sacreBLEU"
    pattern = r"(-?[\d.]+)\s*(?:-|–|to)\s*(-?[\d.]+)"
    scale = info.get("scale")
    m = re.search(rf"\({pattern}\)", text) or re.fullmatch(
        pattern, scale if isinstance(scale, str) else ""
    )
    return f"{m.group(1)} to {m.group(2)}" if m else None


def metric_label(agg: Aggregate) -> str:
    """``accuracy (0 to 1), higher is better``: an axis label with scale and direction."""
    scale = _scale(agg.metric_info, agg.main_metric)
    better = "higher" if agg.higher_is_better else "lower"
    return f"{agg.main_metric}{f' ({scale})' if scale else ''}, {better} is better"


def paired_differences(aggs: Sequence[Aggregate]) -> list[dict[str, Any]]:
    """Per task spec, each pair of model columns and each model column against the best
    baseline: the difference of their main metric with its paired two-level bootstrap
    interval (the same draws of test examples for both). Only columns with per-example
    statistics on the same examples; ``apart`` when the interval excludes 0."""
    from plugformer.resampling import paired_difference

    out = []
    for spec in dict.fromkeys(a.spec for a in aggs):
        mine = [a for a in aggs if a.spec == spec and a.example_statistics()]
        models = [a for a in mine if a.kind == "model"]
        baselines = [a for a in mine if a.kind == "baseline"]
        pairs = [(a, b) for i, a in enumerate(models) for b in models[i + 1 :]]
        if baselines and models:
            sign = 1 if baselines[0].higher_is_better else -1
            best = max(baselines, key=lambda b: sign * b.mean)
            pairs += [(a, best) for a in models]
        for a, b in pairs:
            sa, sb = a.example_statistics(), b.example_statistics()
            if sa is None or sb is None or len(sa[0].rows) != len(sb[0].rows):
                continue
            diff, low, high = paired_difference(sa, sb, RESAMPLES, RNG_SEED, LEVEL)
            out.append(
                {
                    "spec": spec,
                    "task": a.task,
                    "main_metric": a.main_metric,
                    "a": a.column,
                    "b": b.column,
                    "b_kind": b.kind,
                    "difference": diff,
                    "ci_low": low,
                    "ci_high": high,
                    "apart": low > 0 or high < 0,
                }
            )
    return out
