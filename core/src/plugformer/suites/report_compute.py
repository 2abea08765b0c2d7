"""What each suite result cost: the compute table and the quality-vs-compute plot.

Every model cell records its fine-tuning compute (``record["compute"]``: parameters total and
trained, training seconds, steps, examples and tokens seen, training FLOPs as 6·N·D). Here
they are averaged over seeds per task × backbone, shown beside the main metric, and plotted:
the main metric against training FLOPs, one panel per task, baselines as horizontal lines.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from plugformer.fileio import atomic_open

__all__ = ["compute_markdown", "compute_rows", "plot_quality_vs_compute"]

FIELDS = ("params_total", "params_trained", "train_seconds", "examples_seen", "tokens_seen")


def _seconds(value: float) -> str:
    """Whole seconds, but tenths under ten (a sub-second cell read as 0)."""
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def compute_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task spec, backbone): seed means of the compute fields and main metric."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r.get("kind") == "model" and r.get("compute"):
            groups[(r["spec"], r["column"])].append(r)
    rows = []
    for (spec, column), cells in groups.items():
        main = cells[0]["main_metric"]
        row: dict[str, Any] = {"spec": spec, "column": column, "metric": main, "seeds": len(cells)}
        for field in (*FIELDS, "train_flops"):
            row[field] = statistics.fmean(float(c["compute"].get(field, 0)) for c in cells)
        row["value"] = statistics.fmean(float(c["metrics"][main]) for c in cells)
        rows.append(row)
    return rows


def _si(x: float) -> str:
    for unit, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"


def compute_markdown(records: Sequence[dict[str, Any]]) -> str:
    """The compute table (Markdown), or an empty string when no cell recorded its compute."""
    rows = compute_rows(records)
    if not rows:
        return ""
    lines = [
        "## Compute",
        "",
        "Fine-tuning cost per task and backbone (mean over seeds): parameters trained of the "
        "total, training seconds (validation passes included), examples and tokens read, and "
        "training FLOPs (6·N·D, N the non-embedding parameters, D the tokens read).",
        "",
        "| task | backbone | trained / total parameters | train s | examples | tokens | FLOPs | main metric |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['spec']} | {r['column']} | {_si(r['params_trained'])} / {_si(r['params_total'])} "
            f"| {_seconds(r['train_seconds'])} | {r['examples_seen']:,.0f} | {_si(r['tokens_seen'])} "
            f"| {_si(r['train_flops'])} | {r['metric']} {r['value']:.4g} |"
        )
    return "\n".join(lines) + "\n"


def plot_quality_vs_compute(records: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Main metric against training FLOPs, a panel per task; None when nothing to plot."""
    rows = [r for r in compute_rows(records) if r["train_flops"] > 0]
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = list(dict.fromkeys(r["spec"] for r in rows))
    fig, axes = plt.subplots(1, len(specs), figsize=(4.2 * len(specs), 3.6), squeeze=False)
    baselines = [r for r in records if r.get("kind") == "baseline"]
    for ax, spec in zip(axes[0], specs, strict=True):
        mine = [r for r in rows if r["spec"] == spec]
        for r in mine:
            ax.scatter(r["train_flops"], r["value"], s=40)
            ax.annotate(r["column"], (r["train_flops"], r["value"]), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")  # fmt: skip
        for b in (b for b in baselines if b["spec"] == spec):
            value = float(b["metrics"][b["main_metric"]])
            ax.axhline(value, linestyle="--", linewidth=0.8, color="grey")
            ax.annotate(b["column"], (ax.get_xlim()[0], value), fontsize=7, color="grey",
                        xytext=(2, 2), textcoords="offset points")  # fmt: skip
        flops = [r["train_flops"] for r in mine]
        if max(flops) > 10 * min(flops):  # decades apart: a log axis; else plain, in 1e12s
            ax.set_xscale("log")
        else:
            ax.ticklabel_format(style="sci", axis="x", scilimits=(0, 0))
            ax.margins(x=0.3)
        ax.set_title(spec, fontsize=10)
        ax.set_xlabel("training FLOPs")
        ax.set_ylabel(mine[0]["metric"])
    fig.suptitle("Test main metric vs fine-tuning compute (dashed: baselines)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:  # a killed report leaves no half-written PNG
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return path
