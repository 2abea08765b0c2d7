"""Suite reports: aggregate cells over seeds, write JSON/Markdown/CSV/PNG.

Aggregation: a (task spec, column) pair's main metric is averaged over its seeds, with a
95% percentile-bootstrap interval (1000 resamples, fixed RNG seed). When the cells carry
per-example statistics of the metric (:mod:`plugformer.resampling`) the bootstrap resamples
both the seeds and the test examples, the same draws of examples for every column of a spec,
and the report adds paired differences between its model columns and against the best
baseline; otherwise it resamples the seeds only (with two seeds, their range), and a
deterministic baseline has one value and no interval. Comparing two runs is
:mod:`plugformer.suites.compare`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Aggregate",
    "aggregate",
    "bootstrap_ci",
    "paired_differences",
    "write_reports",
]

RESAMPLES = 1000
RNG_SEED = 0
LEVEL = 0.95


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

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    def example_statistics(self) -> list[Any] | None:
        """Every seed's :class:`~plugformer.resampling.ExampleStatistics`, when all have them
        (of one kind, on the same number of examples); else ``None``."""
        from plugformer.resampling import ExampleStatistics

        if not self.statistics or any(s is None for s in self.statistics):
            return None
        stats = [ExampleStatistics.from_dict(s) for s in self.statistics if s is not None]
        if len({(s.kind, len(s.rows)) for s in stats}) != 1 or not stats[0].rows:
            return None
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
        keep = (
            "spec",
            "task",
            "column",
            "kind",
            "main_metric",
            "higher_is_better",
            "seeds",
            "values",
        )
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


def _cell_text(agg: Aggregate) -> str:
    if len(agg.values) == 1 and agg.interval_method == "seeds":
        return f"{agg.mean:.4g}"
    low, high = agg.interval
    return f"{agg.mean:.4g} [{low:.4g}, {high:.4g}]"


# --------------------------------------------------------------------------- writers


def _markdown(
    aggs: Sequence[Aggregate], records: Sequence[dict[str, Any]], suite: Any, plots: list[Path]
) -> str:
    cols = _columns(aggs)
    seeds = sorted({r["seed"] for r in records if r["kind"] == "model"})
    lines = [f"# Suite `{suite.name}`", ""] + ([suite.description, ""] if suite.description else [])
    resampled = any(a.interval_method == "seeds+examples" for a in aggs)
    if resampled:
        lines += [
            f"Each entry is the task's main metric on its test split, the mean over seeds "
            f"{', '.join(map(str, seeds)) or '-'}, with a {LEVEL:.0%} percentile-bootstrap "
            f"interval in brackets ({RESAMPLES} resamples, RNG seed {RNG_SEED}) that resamples "
            "both the seeds and the test examples (the same draws of examples for every "
            "column of a task), so it counts the noise of the test sample as well as the "
            "seed's. Baselines are deterministic, computed once per task: their interval is "
            "the test sample's alone.",
        ]
        others = sorted({a.spec for a in aggs if a.interval_method == "seeds"})
        if others:
            lines.append(
                f"Without per-example statistics ({', '.join(others)}), an interval resamples "
                "the seeds only."
            )
    elif len(seeds) > 1:
        lines += [
            f"Each entry is the task's main metric on its test split: the mean over seeds "
            f"{', '.join(map(str, seeds))}, with its {LEVEL:.0%} percentile-bootstrap interval "
            f"of the mean over seeds in brackets ({RESAMPLES} resamples, RNG seed {RNG_SEED}; "
            "it does not count the noise of the test sample).",
            "Baselines are deterministic: computed once per task, one value.",
        ]
    else:
        lines += [
            f"Each entry is the task's main metric on its test split from one seed ({seeds[0] if seeds else '-'}): "
            "single runs, so no intervals are shown.",
            "Baselines are deterministic: computed once per task, one value.",
        ]
    lines += ["↑: higher is better; ↓: lower is better.", ""]
    header = ["task", "metric", *(f"{c} (baseline)" if k == "baseline" else c for c, k in cols)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for spec in dict.fromkeys(a.spec for a in aggs):
        row = {(a.column, a.kind): a for a in aggs if a.spec == spec}
        first = next(iter(row.values()))
        arrow = "↑" if first.higher_is_better else "↓"
        cells = [_cell_text(row[c]) if c in row else "—" for c in cols]
        lines.append(
            f"| {spec} ({first.task}) | {first.main_metric} {arrow} | " + " | ".join(cells) + " |"
        )
    lines += _paired(aggs)
    lines += _other_metrics(aggs, records, getattr(suite, "report_metrics", []), cols)
    lines += ["", "## Backbones", ""]
    for r in {r["column"]: r for r in records if r["kind"] == "model"}.values():
        b = r["backbone"]
        ident = (
            f"weights sha256 {b['weights_sha256'][:12]}"
            if b.get("weights_sha256")
            else "identified by reference"
        )
        lines.append(
            f"- **{b['label']}**: `{b['ref']}` ({ident}{', re-initialised' if b.get('scratch') else ''})"
        )
    lines += ["", "## Metrics", ""]
    for a in {a.spec: a for a in aggs}.values():
        info = _definition(a.metric_info, a.main_metric)
        lines.append(f"- {a.spec}: `{a.main_metric}`" + (f": {info}" if info else ""))
    first = records[0]
    versions = ", ".join(
        f"{k} {v}" for k, v in first["versions"].items() if not k.startswith("task_plugin")
    )
    hw = first["hardware"]
    total = sum(r["wall_seconds"] for r in records)
    lines += [
        "",
        "## Environment",
        "",
        f"- {versions}",
        f"- {hw['platform']}, {hw['cpu_count']} CPUs, {hw['torch_threads']} torch threads"
        + (f", GPU {hw['gpu']}" if hw.get("gpu") else ""),
        f"- {len(records)} cells, {total:.0f} s of cell time (cached cells count their first run)",
        "",
    ]
    lines += [f"![{p.stem.replace('_', ' ')}]({p.name})" for p in plots]
    return "\n".join(lines) + "\n"


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


def _paired(aggs: Sequence[Aggregate]) -> list[str]:
    rows = paired_differences(aggs)
    if not rows:
        return []
    lines = [
        "",
        "## Paired differences",
        "",
        f"A − B in the main metric, with a {LEVEL:.0%} paired bootstrap interval (both columns "
        "rescored on the same resamples of the test examples, seeds resampled as above). "
        "**apart**: the interval excludes 0.",
        "",
        "| task | metric | A | B | A − B | |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = f"{r['b']} (baseline)" if r["b_kind"] == "baseline" else r["b"]
        verdict = "**apart**" if r["apart"] else "overlap"
        lines.append(
            f"| {r['spec']} | {r['main_metric']} | {r['a']} | {b} | "
            f"{r['difference']:+.4g} [{r['ci_low']:+.4g}, {r['ci_high']:+.4g}] | {verdict} |"
        )
    return lines


def _other_metrics(
    aggs: Sequence[Aggregate],
    records: Sequence[dict[str, Any]],
    names: Sequence[str],
    cols: Sequence[tuple[str, str]],
) -> list[str]:
    """A table of the suite's ``report_metrics`` (other than each task's main one): the mean
    over seeds per column, with the bootstrap interval when there are several seeds."""
    if not names:
        return []
    header = ["task", "metric", *(f"{c} (baseline)" if k == "baseline" else c for c, k in cols)]
    lines = [
        "",
        "## Other metrics",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for spec in dict.fromkeys(a.spec for a in aggs):
        first = next(a for a in aggs if a.spec == spec)
        for metric in names:
            if metric == first.main_metric:
                continue
            cells = []
            for col, kind in cols:
                values = [
                    float(r["metrics"][metric])
                    for r in records
                    if r["spec"] == spec
                    and (r["column"], r["kind"]) == (col, kind)
                    and metric in r["metrics"]
                ]
                if not values:
                    cells.append("—")
                    continue
                low, high = bootstrap_ci(values)
                mean = float(np.mean(values))
                cells.append(
                    f"{mean:.4g}" if len(values) == 1 else f"{mean:.4g} [{low:.4g}, {high:.4g}]"
                )
            if any(c != "—" for c in cells):
                lines.append(f"| {spec} ({first.task}) | {metric} | " + " | ".join(cells) + " |")
    return lines


def _csv(aggs: Sequence[Aggregate]) -> str:
    buf = io.StringIO()
    fields = [
        "spec",
        "task",
        "column",
        "kind",
        "main_metric",
        "higher_is_better",
        "n",
        "mean",
        "ci_low",
        "ci_high",
        "seeds",
        "values",
    ]
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for a in aggs:
        d = {k: f"{v:.6g}" if isinstance(v, float) else v for k, v in a.as_dict().items()}
        writer.writerow(
            {
                **{k: d[k] for k in fields if k in d},
                "n": len(a.values),
                "seeds": ";".join("" if s is None else str(s) for s in a.seeds),
                "values": ";".join(f"{v:.6g}" for v in a.values),
            }
        )
    return buf.getvalue()


def _colours(cols: Sequence[tuple[str, str]]) -> dict[str, tuple[Any, str]]:
    """Column → (colour, hatch): backbones in tab10 colours, baselines in greys, hatched."""
    from matplotlib import colormaps

    models = [c for c, k in cols if k == "model"]
    baselines = [c for c, k in cols if k == "baseline"]
    out = {c: (colormaps["tab10"](i % 10), "") for i, c in enumerate(models)}
    greys = colormaps["Greys"]
    out.update(
        {c: (greys(0.3 + 0.5 * i / max(1, len(baselines))), "//") for i, c in enumerate(baselines)}
    )
    return out


def _grid(n: int) -> tuple[int, int]:
    ncols = min(n, 2)
    return math.ceil(n / ncols), ncols


def plot_main_metric(aggs: Sequence[Aggregate], path: Path, title: str) -> Path:
    """One panel per task: a bar per backbone and baseline, with the bootstrap interval."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    cols = _columns(aggs)
    colour = _colours(cols)
    specs = list(dict.fromkeys(a.spec for a in aggs))
    rows, ncols = _grid(len(specs))
    fig = Figure(figsize=(6 * ncols, 3.6 * rows + 1.0), layout="constrained")
    axes = list(fig.subplots(rows, ncols, squeeze=False).flat)
    for ax, spec in zip(axes, specs, strict=False):
        row = [a for a in aggs if a.spec == spec]
        for x, a in enumerate(row):
            low, high = a.interval
            ax.bar(
                x,
                a.mean,
                color=colour[a.column][0],
                hatch=colour[a.column][1],
                edgecolor="black",
                linewidth=0.6,
                yerr=(
                    [[a.mean - low], [high - a.mean]]
                    if len(a.values) > 1 or a.interval_method != "seeds"
                    else None
                ),
                capsize=5,
            )
            ax.annotate(
                f"{a.mean:.3g}",
                (x, max(high, a.mean)),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_xticks(range(len(row)), [a.column for a in row], rotation=15, ha="right", fontsize=8)
        ax.set_title(f"{spec} ({row[0].task})", fontsize=10)
        ax.set_ylabel(metric_label(row[0]), fontsize=9)
        ax.set_xlabel("backbone / baseline", fontsize=9)
        ax.margins(y=0.18)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    for ax in axes[len(specs) :]:
        ax.set_visible(False)
    handles = [
        Patch(
            facecolor=colour[c][0],
            hatch=colour[c][1],
            edgecolor="black",
            label=f"{c} (baseline)" if k == "baseline" else c,
        )
        for c, k in cols
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 5),
        fontsize=9,
        frameon=False,
    )
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=120)
    return path


def plot_val_curves(
    records: Sequence[dict[str, Any]], aggs: Sequence[Aggregate], path: Path
) -> Path | None:
    """Validation main metric vs step, one panel per task, one line per backbone (mean over
    seeds, each seed faint); None when no cell validated."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    curves: dict[str, dict[str, list[list[tuple[int, float]]]]] = {}
    for r in records:
        history = (r.get("finetune") or {}).get("val_history") or []
        points = [
            (int(h["step"]), float(h[r["main_metric"]])) for h in history if r["main_metric"] in h
        ]
        if points:
            curves.setdefault(r["spec"], {}).setdefault(r["column"], []).append(points)
    if not curves:
        return None
    colour = _colours(_columns(aggs))
    label, task = {a.spec: metric_label(a) for a in aggs}, {a.spec: a.task for a in aggs}
    rows, ncols = _grid(len(curves))
    fig = Figure(figsize=(6 * ncols, 3.6 * rows + 0.6), layout="constrained")
    axes = list(fig.subplots(rows, ncols, squeeze=False).flat)
    for ax, (spec, by_column) in zip(axes, curves.items(), strict=False):
        for column, runs in by_column.items():
            for points in runs:
                ax.plot(
                    *zip(*points, strict=True), color=colour[column][0], alpha=0.3, linewidth=0.8
                )
            steps = sorted({s for points in runs for s, _ in points})
            mean = [
                np.mean([v for points in runs for s, v in points if s == step]) for step in steps
            ]
            ax.plot(
                steps,
                mean,
                color=colour[column][0],
                marker="o",
                markersize=3,
                linewidth=2,
                label=f"{column} ({len(runs)} seed{'s' if len(runs) > 1 else ''})",
            )
        ax.set_title(f"{spec} ({task[spec]})", fontsize=10)
        ax.set_xlabel("fine-tuning step", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"validation {label[spec]}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(curves) :]:
        ax.set_visible(False)
    fig.suptitle(
        "Validation main metric during fine-tuning (bold: mean over seeds; faint: each seed)",
        fontsize=11,
    )
    fig.savefig(path, dpi=120)
    return path


def write_reports(records: Sequence[dict[str, Any]], out: Path, suite: Any) -> list[Path]:
    """results.json, report.md, report.csv and the PNG plots; returns the paths written."""
    from plugformer.fileio import atomic_write_json, atomic_write_text

    aggs = aggregate(records)
    seeds = sorted({r["seed"] for r in records if r["kind"] == "model"})
    resampled = any(a.interval_method == "seeds+examples" for a in aggs)
    title = f"Suite {suite.name}: test main metric" + (
        f" (mean over {len(seeds)} seed(s), {LEVEL:.0%} bootstrap over seeds and examples)"
        if resampled
        else f" (mean over {len(seeds)} seeds, {LEVEL:.0%} bootstrap interval)"
        if len(seeds) > 1
        else " (one seed)"
    )
    plots = [plot_main_metric(aggs, out / "main_metric.png", title)]
    curves = plot_val_curves(records, aggs, out / "val_curves.png")
    plots += [curves] if curves else []
    from plugformer.suites.report_compute import compute_markdown, plot_quality_vs_compute

    cost = plot_quality_vs_compute(records, out / "quality_vs_compute.png")
    plots += [cost] if cost else []
    results = {
        "suite": suite.model_dump(mode="json"),
        "aggregation": {
            "statistic": "mean over seeds",
            "interval": f"{LEVEL:.0%} percentile bootstrap of the mean, resampling seeds and "
            "test examples where the cells have per-example statistics (each summary entry's "
            "interval_resamples), else seeds only",
            "resamples": RESAMPLES,
            "rng_seed": RNG_SEED,
        },
        "summary": [a.as_dict() for a in aggs],
        "paired_differences": paired_differences(aggs),
        "cells": list(records),
    }
    atomic_write_json(out / "results.json", results)
    text = _markdown(aggs, records, suite, plots)
    compute = compute_markdown(records)
    if compute:  # before the backbones section: what each result cost
        at = text.find("\n## Backbones")
        text = text[:at] + "\n" + compute + text[at:] if at >= 0 else text + "\n" + compute
    atomic_write_text(out / "report.md", text)
    atomic_write_text(out / "report.csv", _csv(aggs))
    return [out / "results.json", out / "report.md", out / "report.csv", *plots]
