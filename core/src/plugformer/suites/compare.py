"""Comparing two suite runs: per (task spec, column) pair, the difference of means.

``compare_runs`` reads two run directories' ``results.json``, aggregates each (as
:mod:`plugformer.suites.aggregate` does) and puts them side by side: per pair, the difference of means
over the seeds both ran, with a paired sign-flip permutation p-value (:func:`paired_permutation_p`;
exact: a handful of seeds cannot give a small p, unlike a bootstrap of 2-3 differences) and,
when both runs' cells keep per-example statistics of the metric, a 95% interval of the
difference that resamples seeds and test examples (the same draws for both runs, which
scored the same test set: :func:`plugformer.resampling.paired_difference`). Pairs
whose data, metric definition, main metric or test set size differ, or that one run lacks,
are flagged and never compared; pairs whose spec settings differ (two suites, changed
overrides) are compared, the differences named in the row's note. ``format_comparison``
renders the rows as a Markdown table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plugformer.errors import PlugformerError
from plugformer.suites.aggregate import LEVEL, RESAMPLES, RNG_SEED, Aggregate, aggregate

__all__ = [
    "Comparison",
    "compare_runs",
    "format_comparison",
    "paired_bootstrap_p",
    "paired_permutation_p",
]


def paired_bootstrap_p(
    a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES, seed: int = RNG_SEED
) -> float | None:
    """Two-sided p-value that the mean paired difference ``b - a`` is zero (bootstrap of the
    differences, centred on the null); ``None`` with fewer than two pairs."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if d.size < 2:
        return None
    observed = d.mean()
    means = d[np.random.default_rng(seed).integers(0, d.size, (resamples, d.size))].mean(axis=1)
    extreme = np.abs(means - observed) >= abs(observed) - 1e-12
    return float((extreme.sum() + 1) / (resamples + 1))


def paired_permutation_p(
    a: Sequence[float], b: Sequence[float], resamples: int = RESAMPLES, seed: int = RNG_SEED
) -> float | None:
    """Two-sided p-value that the mean paired difference ``b - a`` is zero: the share of sign
    flips of the differences whose mean is at least as far from zero as the observed one (all
    ``2**n`` flips up to 16 pairs, else ``resamples`` random ones); ``None`` with fewer than two
    pairs. With n pairs it is never below ``2 / 2**n`` (0.5 for two seeds), as it should be:
    the centred bootstrap gave 0.001 for any two differences of one sign."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if d.size < 2:
        return None
    observed = abs(d.mean())
    if d.size <= 16:
        signs = 1 - 2 * ((np.arange(2**d.size)[:, None] >> np.arange(d.size)) & 1)
        return float(np.mean(np.abs((signs * d).mean(axis=1)) >= observed - 1e-12))
    signs = np.random.default_rng(seed).choice((-1.0, 1.0), (resamples, d.size))
    extreme = np.abs((signs * d).mean(axis=1)) >= observed - 1e-12
    return float((extreme.sum() + 1) / (resamples + 1))


PER_RUN_SETTINGS = ("seed", "name", "out_dir", "backbone")
"""Spec fields that are no setting of the comparison: the seed (paired seed by seed), the
spec's name (the row's), and where and from what the cell was trained (the run's own)."""


@dataclass
class Comparison:
    """One (task spec, column) pair of two runs: the difference of means, or why there is none."""

    spec: str
    column: str
    main_metric: str
    seeds: list[int | None]
    mean_a: float | None = None
    mean_b: float | None = None
    p_value: float | None = None
    problem: str | None = None
    interval: tuple[float, float] | None = None
    """95% interval of B − A over seeds and test examples, when both keep statistics."""
    settings: list[str] = field(default_factory=list)
    """Spec settings in which B's cells differ from A's (``finetune.max_steps: 8 → 40``): a
    comparison of two suites, or of changed overrides, is shown but not like for like."""

    @property
    def delta(self) -> float | None:
        return None if self.mean_a is None or self.mean_b is None else self.mean_b - self.mean_a


def _load_cells(run: str | Path) -> list[dict[str, Any]]:
    path = Path(run)
    path = path / "results.json" if path.is_dir() else path
    if not path.is_file():
        raise PlugformerError(
            f"{run}: no results.json (run `plugformer bench SUITE --out {run}` first)"
        )
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise PlugformerError(f"{path}: not a suite results file ({exc})") from None
    if not isinstance(cells, list):
        raise PlugformerError(f"{path}: not a suite results file ('cells' is not a list)")
    for i, cell in enumerate(cells):
        problem = _cell_problem(cell)
        if problem:
            raise PlugformerError(f"{path}: cells[{i}]: {problem} (damaged or edited?)")
    return cells


def _cell_problem(cell: Any) -> str | None:
    """Why a cell of results.json cannot be compared (a field missing or of the wrong type)."""
    if not isinstance(cell, dict):
        return f"not a JSON object ({type(cell).__name__})"
    for name, kind in (
        ("spec", str), ("task", str), ("column", str), ("kind", str), ("main_metric", str),
        ("higher_is_better", bool), ("metric_info", dict), ("metrics", dict), ("data", dict),
    ):  # fmt: skip
        if not isinstance(cell.get(name), kind):
            return f"{name!r} is missing or not a {kind.__name__} (got {cell.get(name)!r:.40})"
    value = cell["metrics"].get(cell["main_metric"])
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"main metric {cell['main_metric']!r} is not a number (got {value!r:.40})"
    for name in ("seed", "n_examples"):
        if (
            name not in cell
            or isinstance(cell[name], bool)
            or not isinstance(cell[name], int | None)
        ):
            return f"{name!r} is missing or not an integer (got {cell.get(name)!r:.40})"
    return None


def _incomparable(a: Aggregate, b: Aggregate) -> str | None:
    if a.main_metric != b.main_metric:
        return f"main metric differs ({a.main_metric} vs {b.main_metric})"
    if a.data != b.data:
        return "data version differs"
    if a.metric_info != b.metric_info:
        return "metric definition (metric_info / signature) differs"
    if a.n_examples != b.n_examples:
        return f"test set size differs ({a.n_examples} vs {b.n_examples})"
    return None


def _compare(a: Aggregate, b: Aggregate) -> Comparison:
    out = Comparison(a.spec, a.column, a.main_metric, [])
    out.problem = _incomparable(a, b)
    if out.problem:
        return out
    va, vb = dict(zip(a.seeds, a.values, strict=True)), dict(zip(b.seeds, b.values, strict=True))
    out.seeds = [s for s in a.seeds if s in vb]
    if not out.seeds:
        out.problem = "no seeds in common"
        return out
    xa, xb = [va[s] for s in out.seeds], [vb[s] for s in out.seeds]
    out.mean_a, out.mean_b = float(np.mean(xa)), float(np.mean(xb))
    out.p_value = paired_permutation_p(xa, xb)
    sa, sb = a.example_statistics(), b.example_statistics()
    if sa is not None and sb is not None and len(sa[0].rows) == len(sb[0].rows):
        from plugformer.resampling import paired_difference

        ia = {s: st for s, st in zip(a.seeds, sa, strict=True)}
        ib = {s: st for s, st in zip(b.seeds, sb, strict=True)}
        _, low, high = paired_difference(
            [ib[s] for s in out.seeds], [ia[s] for s in out.seeds], RESAMPLES, RNG_SEED, LEVEL
        )
        out.interval = (low, high)
    return out


def _flat(config: Any, prefix: str = "") -> dict[str, Any]:
    """A spec's settings as ``{"finetune.max_steps": 40, ...}``."""
    if not isinstance(config, dict):
        return {prefix.rstrip("."): config}
    out: dict[str, Any] = {}
    for key, value in config.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return out


def _settings(cells: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """Per (spec, kind, column), the settings of its first cell that decide results: not the
    seed (compared seed by seed), names or progress bars; a baseline's without ``finetune``."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for cell in cells:
        key = (cell["spec"], cell["kind"], cell["column"])
        config = cell.get("spec_config")
        if key in out or not isinstance(config, dict):
            continue
        flat = _flat({k: v for k, v in config.items() if k not in PER_RUN_SETTINGS})
        skip = ("finetune.",) if cell["kind"] == "baseline" else ("finetune.progress",)
        out[key] = {k: v for k, v in flat.items() if not k.startswith(skip)}
    return out


def _setting_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """``key: A's value → B's`` for every setting that differs (``absent``: not in that run)."""

    def show(settings: Mapping[str, Any], key: str) -> str:
        return repr(settings[key]) if key in settings else "absent"

    return [
        f"{k}: {show(a, k)} → {show(b, k)}"
        for k in sorted({*a, *b})
        if k not in a or k not in b or a[k] != b[k]
    ]


def compare_runs(run_a: str | Path, run_b: str | Path) -> list[Comparison]:
    """Every (task spec, column) pair of either run; pairs present in one only are flagged,
    pairs whose spec settings differ carry the differences (:attr:`Comparison.settings`)."""
    cells_a, cells_b = _load_cells(run_a), _load_cells(run_b)
    a = {(g.spec, g.kind, g.column): g for g in aggregate(cells_a)}
    b = {(g.spec, g.kind, g.column): g for g in aggregate(cells_b)}
    settings_a, settings_b = _settings(cells_a), _settings(cells_b)
    out = []
    for key in dict.fromkeys([*a, *b]):
        if key in a and key in b:
            row = _compare(a[key], b[key])
            if key in settings_a and key in settings_b:
                row.settings = _setting_changes(settings_a[key], settings_b[key])
            out.append(row)
        else:
            only = a.get(key) or b[key]
            out.append(
                Comparison(
                    key[0],
                    key[2],
                    only.main_metric,
                    [],
                    problem=f"only in run {'A' if key in a else 'B'}",
                )
            )
    return out


def format_comparison(rows: Sequence[Comparison], name_a: str, name_b: str) -> str:
    """A Markdown table: A, B, Δ = B − A, paired permutation p over the seeds both ran."""
    lines = [
        f"A = `{name_a}`, B = `{name_b}`; Δ = B − A of the main-metric mean over the seeds both ran; "
        "p: paired sign-flip permutation test over those seeds (exact up to 16 seeds, two-sided; "
        "never below 2/2^n, 0.5 with two seeds; — with under two seeds); Δ interval: 95% "
        "bootstrap over those seeds and the test examples, paired (— without per-example "
        "statistics).",
        "",
        "| task | column | metric | A | B | Δ | Δ interval | p | seeds | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.problem or r.mean_a is None or r.mean_b is None or r.delta is None:
            lines.append(
                f"| {r.spec} | {r.column} | {r.main_metric} | | | | | | | NOT COMPARED: {r.problem} |"
            )
            continue
        p = "—" if r.p_value is None else f"{r.p_value:.3g}"
        seeds = ",".join("-" if s is None else str(s) for s in r.seeds)
        span = "—" if r.interval is None else f"[{r.interval[0]:+.4g}, {r.interval[1]:+.4g}]"
        note = f"settings differ: {'; '.join(r.settings)}" if r.settings else ""
        lines.append(
            f"| {r.spec} | {r.column} | {r.main_metric} | {r.mean_a:.4g} | {r.mean_b:.4g} | "
            f"{r.delta:+.4g} | {span} | {p} | {seeds} | {note} |"
        )
    return "\n".join(lines) + "\n"
