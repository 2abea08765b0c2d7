"""Suite reports: results.json, report.md and report.csv from a run's cells.

The numbers come from :mod:`plugformer.suites.aggregate` (means over seeds, 95% intervals over
seeds and test examples where the cells carry per-example statistics, else over seeds,
paired differences); the PNG plots from :mod:`plugformer.suites.report_plots`; the compute
table from :mod:`plugformer.suites.report_compute`. Comparing two runs is
:mod:`plugformer.suites.compare`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from plugformer.suites.aggregate import (
    IDENTITY_FIELDS,
    LEVEL,
    RESAMPLES,
    RNG_SEED,
    Aggregate,
    _columns,
    _definition,
    aggregate,
    bootstrap_ci,
    paired_differences,
)

__all__ = ["write_reports"]


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
    columns = {r["column"]: r for r in records if r["kind"] == "model" and "ensemble" not in r}
    for r in columns.values():
        b = r["backbone"]
        ident = (
            f"weights sha256 {b['weights_sha256'][:12]}"
            if b.get("weights_sha256")
            else f"directory sha256 {b['directory_sha256'][:12]}"
            if b.get("directory_sha256")
            else "identified by reference"
        )
        lines.append(
            f"- **{b['label']}**: `{b['ref']}` ({ident}{', re-initialised' if b.get('scratch') else ''})"
        )
    lines += _ensembles(records)
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


def _ensembles(records: Sequence[dict[str, Any]]) -> list[str]:
    """What each ensemble column pooled, and the weight validation chose per seed."""
    pooled = [r for r in records if r["kind"] == "model" and "ensemble" in r]
    if not pooled:
        return []
    lines = ["", "## Ensembles", ""]
    for column in dict.fromkeys(r["column"] for r in pooled):
        mine = [r for r in pooled if r["column"] == column]
        e = mine[0]["ensemble"]
        weights = ", ".join(
            f"{r['spec']} seed {r['seed']}: {r['ensemble']['weight']:g}" for r in mine
        )
        lines.append(
            f"- **{column}**: {e['model']}'s fine-tuned model pooled with the {e['baseline']} "
            "baseline (the task's `fuse`: for classification, a weighted geometric mean of the "
            "label probabilities; for compression, of each word's keep probability), the "
            "weight on the model chosen on the validation split "
            f"among {len(e['weights_tried'])} weights from {min(e['weights_tried']):g} to "
            f"{max(e['weights_tried']):g}; no more training. "
            f"Weights chosen: {weights}."
        )
    return lines


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
    over seeds per column, with the bootstrap interval when there are several seeds; below it,
    the names that no cell reports (a typo) beside those the cells do."""
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
    unknown, reported = unreported_metrics(records, names)
    if unknown:  # a misspelt name had left the table silently empty
        lines += [
            "",
            f"No cell reports {', '.join(f'`{m}`' for m in unknown)} (the suite's "
            f"`report_metrics`); the cells report {', '.join(f'`{m}`' for m in reported)}.",
        ]
    return lines


def _csv(aggs: Sequence[Aggregate]) -> str:
    buf = io.StringIO()
    fields = [
        *IDENTITY_FIELDS,
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


def unreported_metrics(
    records: Sequence[dict[str, Any]], names: Sequence[str]
) -> tuple[list[str], list[str]]:
    """The ``report_metrics`` ``names`` no cell reports, and the metrics the cells do report
    (sorted): a misspelt name is known only once the cells have run."""
    reported = sorted({m for r in records for m in r["metrics"]})
    return [m for m in names if m not in reported], reported


REPORT_FILES = (
    "results.json",
    "report.md",
    "report.csv",
    "main_metric.png",
    "val_curves.png",
    "quality_vs_compute.png",
)
"""What :func:`write_reports` writes in a run directory, from the cells alone."""


def write_reports(records: Sequence[dict[str, Any]], out: Path, suite: Any) -> list[Path]:
    """results.json, report.md, report.csv and the PNG plots; returns the paths written."""
    from plugformer.fileio import atomic_write_json, atomic_write_text
    from plugformer.suites.report_plots import plot_main_metric, plot_val_curves

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
