"""Equal *total* compute: would the pretrained backbone's minutes do better spent on the task?

The default job compares backbones at equal *fine-tuning* time: ``scratch`` gets the same
minutes per cell as the pretrained backbones, which had their pretraining minutes before.
That shows what a pretrained start buys, not whether pretraining was worth its cost. This
script gives the untrained architecture the pretrained backbone's compute on one task:

* ``whole``: the backbone's own pretraining seconds (its share of the shared trunk and its
  anneal, as ``quickstart.json`` records them) plus the cell's fine-tuning minutes (its
  spec's minutes: a suite with ``budget_scale`` ran its cells side by side, each on part of
  the cores, for that many times longer; an arm runs alone);
* ``share``: one task's share of them (the pretraining serves every task of the suite, so
  its seconds divided by the number of tasks) plus the cell's minutes.

Each arm fine-tunes ``scratch:<the text+tasks backbone>`` with the quickstart cell's own
spec (same options, decoding, learning rates, batch, validation), on *all* training examples
(the pretraining mix read them all; the cell's ``max_train`` is lifted, and so are its epoch
cap and early stopping, so every arm spends and anneals its whole budget), then scores the
test split with the best validation checkpoint, beside the quickstart's cells of the same
task and seed::

    .venv/bin/python benchmarks/equal_compute.py /tmp/qs --tasks bible-en-es,news-headlines

The cell's settings were tuned for a pretrained start; scratch may want others. ``--set``
overrides spec fields of every arm (``--set finetune.lr_backbone=3e-3``), and
``--validation-only`` skips the test split, so scratch's own settings are chosen on
validation figures before one run with them reads the test split::

    for lr in 1e-3 3e-3 6e-3; do .venv/bin/python benchmarks/equal_compute.py /tmp/qs \
        --tasks bible-en-es --arms share --validation-only \
        --set finetune.lr_backbone=$lr --set finetune.lr_head=$lr; done

Writes ``benchmarks/results/equal_compute-<date>-<commit>.json`` (``--out`` to change): the
run it read, each arm's minutes, steps, examples and test metrics, and the cells beside them.
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from plugformer.fileio import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


def _cells(run: Path, spec: str, seed: int) -> dict[str, dict[str, Any]]:
    """The quickstart suite's model cells of ``spec`` and ``seed``, by backbone column."""
    out = {}
    for path in sorted((run / "suite" / "cells").glob("*.json")):
        cell = json.loads(path.read_text(encoding="utf-8"))
        if cell["kind"] == "model" and cell["spec"] == spec and cell["seed"] == seed:
            out[cell["column"]] = cell
    return out


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["finetune.lr_backbone=3e-3", ...]`` → ``{"finetune.lr_backbone": 0.003}``: values
    parsed as the CLI's ``--set`` parses them (:func:`plugformer.config.apply_overrides`)."""
    from plugformer.config import apply_overrides

    out: dict[str, Any] = {}
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--set {item!r}: expected SECTION.FIELD=VALUE")
        node: Any = apply_overrides({}, [item])
        for part in key.strip().split("."):
            node = node[part]
        out[key.strip()] = node
    return out


def _apply(config: dict[str, Any], overrides: dict[str, Any]) -> None:
    for dotted, value in overrides.items():
        *path, last = dotted.split(".")
        node = config
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value


def _arm(
    cell: dict[str, Any],
    backbone: str,
    minutes: float,
    seed: int,
    overrides: dict[str, Any],
    test: bool = True,
) -> dict[str, Any]:
    """Fine-tune the cell's spec (with ``overrides``) for ``minutes`` on all training data;
    score the test split unless ``test`` is false (tuning reads validation only)."""
    from plugformer.config import TaskSpec
    from plugformer.training.finetune import evaluate, finetune

    config = copy.deepcopy(cell["spec_config"])
    config["seed"] = seed
    config["data"]["max_train"] = None
    # The whole budget, annealed: no step or epoch cap, no early stopping (a validation
    # plateau at the peak learning rate would end the arm before its schedule decays); the
    # best validation checkpoint is still the one scored.
    config["finetune"].update(
        max_minutes=minutes, max_steps=1_000_000, epochs=1000, early_stopping_patience=None
    )
    _apply(config, overrides)
    spec = TaskSpec(**config)
    with tempfile.TemporaryDirectory(prefix="equal-compute-") as tmp:
        t0 = time.perf_counter()
        summary = finetune(spec, backbone, Path(tmp) / "run")
        result = evaluate(spec, summary["checkpoint"], "test") if test else None
    compute = summary.get("compute") or {}
    return {
        "minutes": round(minutes, 3),
        "overrides": overrides,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "steps": summary.get("steps"),
        "best_step": summary.get("best_step"),
        "train_seconds": compute.get("train_seconds"),
        "examples_seen": compute.get("examples_seen"),
        "train_examples": summary.get("train_examples"),
        "val_metrics": summary.get("val_metrics"),
        "test_metrics": result["metrics"] if result else None,
        "n_test": result["n_examples"] if result else 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a `plugformer quickstart --out` directory")
    parser.add_argument("--tasks", default="bible-en-es,news-headlines", help="spec names")
    parser.add_argument("--arms", default="share,whole", help="share, whole or both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override a spec field in every arm (repeatable), e.g. finetune.lr_backbone=3e-3",
    )
    parser.add_argument(
        "--validation-only", action="store_true", help="skip the test split (for tuning --set)"
    )
    args = parser.parse_args()
    overrides = parse_set(args.set)

    quick = json.loads((args.run / "quickstart.json").read_text(encoding="utf-8"))
    main_backbone = quick["pretrained"]["text+tasks"]
    pretrain_s = float(main_backbone["summary"]["total_train_seconds"])
    suite = json.loads((args.run / "suite" / "suite.json").read_text(encoding="utf-8"))
    n_tasks = len(suite["tasks"])
    # A suite that runs cells side by side on one thread each gives them budget_scale times
    # their spec's minutes; an arm runs alone on every core, so it gets the spec's minutes.
    scale = float(suite.get("budget_scale", 1.0))
    backbone = f"scratch:{main_backbone['checkpoint']}"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    date = time.strftime("%Y-%m-%d")
    kind = "equal_compute_validation" if args.validation_only else "equal_compute"
    tag = "-".join(f"{k.split('.')[-1]}={v}" for k, v in overrides.items())
    name = f"{kind}-{date}-{commit}" + (f"-{tag}" if tag else "") + ".json"
    out = args.out or ROOT / "benchmarks" / "results" / name
    record = {
        "date": date,
        "commit": commit,
        "run": str(args.run),
        "pretrain_seconds": pretrain_s,
        "suite_tasks": n_tasks,
        "backbone": backbone,
        "overrides": overrides,
        "validation_only": args.validation_only,
        "rows": [],
    }
    rows = record["rows"]
    for spec in args.tasks.split(","):
        cells = _cells(args.run, spec, args.seed)
        if "scratch" not in cells:
            raise SystemExit(f"{args.run}: no scratch cell of {spec!r}, seed {args.seed}")
        cell_min = float(cells["scratch"]["spec_config"]["finetune"]["max_minutes"]) / scale
        budgets = {
            "share": pretrain_s / n_tasks / 60 + cell_min,
            "whole": pretrain_s / 60 + cell_min,
        }
        row = {
            "spec": spec,
            "seed": args.seed,
            "cell_minutes": cell_min,
            "cells": {c: v["metrics"] for c, v in cells.items()},
            "arms": {},
        }
        rows.append(row)
        for arm in args.arms.split(","):
            print(f"{spec}: scratch for {budgets[arm]:.2f} min ({arm})", file=sys.stderr)
            row["arms"][arm] = _arm(
                cells["scratch"],
                backbone,
                budgets[arm],
                args.seed,
                overrides,
                test=not args.validation_only,
            )
            done = row["arms"][arm]
            print(f"  val {done['val_metrics']}  test {done['test_metrics']}", file=sys.stderr)
            atomic_write_json(out, record)  # after every arm: an interrupted run keeps it

    for row in rows:
        arms = "  ".join(
            f"{a} ({v['minutes']:.1f} min): val {v['val_metrics']} test {v['test_metrics']}"
            for a, v in row["arms"].items()
        )
        print(f"{row['spec']}: cells {row['cells']}\n  {arms}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
