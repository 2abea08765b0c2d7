"""The suite report's plots (PNG): the main metric per task and column with its interval,
and the validation curves of the model cells. :mod:`plugformer.suites.report` calls them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plugformer.fileio import atomic_open
from plugformer.suites.aggregate import Aggregate, _columns, metric_label

__all__ = ["plot_main_metric", "plot_val_curves"]


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
    with atomic_open(path, "wb") as f:  # a killed report leaves no half-written PNG
        fig.savefig(f, format="png", dpi=120)
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
    with atomic_open(path, "wb") as f:  # a killed report leaves no half-written PNG
        fig.savefig(f, format="png", dpi=120)
    return path
