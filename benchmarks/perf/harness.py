"""The measuring harness of the performance benchmarks: timing, rows, the table, provenance.

``run.py`` holds the benchmarks; each records its repetitions with ``add_row`` and
``table()`` prints medians, min–max and ratios. ``hardware``/``versions`` describe the run
for the JSON line appended to ``results/``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
DEVICE = "cpu"
"""Where the benchmarks run (``run.py --device``)."""
ROWS: list[dict[str, Any]] = []
"""Every measured row of this run (``add_row``), in order."""


def append_result(benchmark: str, args: Any, **fields: Any) -> Path:
    """Append one JSON line (time, benchmark, arguments, versions, ``fields``) to
    ``results/<date>.jsonl``; returns the file."""
    import datetime as dt
    import json

    record = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "benchmark": benchmark,
        "args": vars(args),
        "versions": versions(),
        **fields,
    }
    out = ROOT / "benchmarks" / "perf" / "results" / f"{dt.date.today().isoformat()}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(record, default=float) + "\n")
    return out


def now() -> float:
    return time.perf_counter()


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def summarize(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def add_row(
    group: str,
    name: str,
    unit: str,
    values: list[float],
    ref: dict[str, str] | None = None,
    **extra: Any,
) -> None:
    ROWS.append(
        {
            "group": group,
            "name": name,
            "unit": unit,
            **summarize(values),
            "values": values,
            "ref": ref or {},
            **extra,
        }
    )


def fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def table() -> str:
    lines = [
        f"{'group':9} {'variant':34} {'median':>10} {'min–max':>21} {'unit':9} ratios / notes",
        "-" * 110,
    ]
    by_name = {(r["group"], r["name"]): r for r in ROWS}
    for r in ROWS:
        if "median" not in r:
            lines.append(
                f"{r['group']:9} {r['name']:34} {'':>10} {'':>21} {'':9} {r.get('note', '')}"
            )
            continue
        rng = f"{fmt(r['min'])}–{fmt(r['max'])}" if "min" in r else ""
        notes = []
        for label, ref in r.get("ref", {}).items():
            other = by_name.get((r["group"], r["name"].replace(r.get("variant", ""), ref, 1)))
            if other:
                notes.append(f"{r['median'] / other['median']:.2f}× {label}")
        for label, v in r.get("ref_value", {}).items():
            notes.append(f"{r['median'] / v:.2f}× {label}")
        if r.get("mfu") is not None:
            notes.append(f"MFU {100 * r['mfu']:.1f}%")
        if r.get("note"):
            notes.append(r["note"])
        if r["group"] == "startup":
            notes.append(f"best {r['best']:.3f}")
        lines.append(
            f"{r['group']:9} {r['name']:34} {fmt(r['median']):>10} {rng:>21} {r.get('unit', ''):9} {', '.join(notes)}"
        )
    return "\n".join(lines)


def hardware(device: str) -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    flags = ""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
    info = {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "loadavg_start": os.getloadavg(),
        "device": device,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("torch", "lightning", "transformers", "numpy", "plugformer"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[dist] = md.version(dist)
    with contextlib.suppress(Exception):
        out["git"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "core"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        out["git_core_dirty"] = bool(dirty)
    return out


def task_fixture(name: str, n: int, split: str) -> tuple[Any, Any, list[Any]] | str:
    """(task, spec, examples): ``n`` real ``split`` examples of the task's smoke spec
    (``<task>-smoke``) from the dataset cache, with a BPE trained on them; or why the task
    is skipped (the eval and finetune groups share it)."""
    from plugformer import plugins
    from plugformer.data.cache import load_split
    from plugformer.specs import resolve
    from plugformer.suites.config import load_spec
    from plugformer.testing import tokenizer_for
    from plugformer.training.finetune import build_task

    if f"{name}-smoke" not in plugins.named_specs("task"):
        return f"no spec named {name}-smoke"
    spec = load_spec(resolve(f"{name}-smoke", "task"), {}, 0)
    try:
        rows = load_split(spec.data.dataset, split)[:n]
    except Exception as exc:  # not cached and no network: say so, measure the others
        return f"dataset {spec.data.dataset!r} unavailable ({type(exc).__name__})"
    task = build_task(name, spec.options, tokenizer_for(rows, vocab_size=2000))
    examples = [task.parse_example(r) for r in rows]
    task.prepare(examples)
    return task, spec, examples
