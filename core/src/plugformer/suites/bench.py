"""Benchmark suites: task specs × backbones × seeds, run cell by cell, cached, resumable.

A suite is a TOML file (a registered name such as ``default``, or a path) validated as
:class:`SuiteConfig` (its schema and loading live in :mod:`plugformer.suites.config`; this module plans, keys and runs
its cells). Every *model cell* (one spec, one backbone, one seed) is fine-tuned and scored on
the test split; every *baseline cell* (one spec, one of its task's baselines) is scored once,
since baselines are deterministic. A run directory holds::

    suite.json              the resolved suite (backbone references, seeds, spec paths)
    cells/<key>.json        one finished cell each, written atomically
    work/<key>/             a cell's task checkpoint while it runs (deleted afterwards)
    results.json  report.md  report.csv  main_metric.png  val_curves.png   (plugformer.suites.report)

A cell's key hashes everything that decides its result (see :func:`cell_key`), so a re-run
skips finished cells: an interrupted suite resumes, an unchanged one finishes in seconds,
and a changed seed or spec re-runs exactly the cells it affects.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal

from plugformer.config import TaskSpec
from plugformer.errors import ConfigError, Interrupted, PlugformerError
from plugformer.specs import resolve
from plugformer.suites.config import (
    SuiteBackbone,
    SuiteConfig,
    load_spec,
    load_suite,
    merge_overrides,
    resolve_backbones,
    spec_path,
)
from plugformer.suites.progress import Progress, budget_seconds, clock

__all__ = [
    "Cell",
    "SuiteBackbone",
    "SuiteConfig",
    "cell_key",
    "load_suite",
    "plan_cells",
    "run_suite",
]

# Spec fields that name or display a cell but do not change its result: left out of the key.
PRESENTATION_FIELDS = {
    "name": None,
    "out_dir": None,
    "backbone": None,
    "finetune": {"progress": None},
}

# Core modules that only present results, as paths in the package (a trailing / is a whole
# subpackage): editing them does not re-run cells.
PRESENTATION_MODULES = (
    "suites/report.py",
    "suites/report_compute.py",
    "suites/compare.py",
    "suites/quickstart.py",
    "cli/",
    "default_plugins/commands.py",
)

# What a model cell's record keeps of the fine-tuning summary (val_history feeds the curves).
SUMMARY_FIELDS = (
    "steps",
    "best_step",
    "val_metrics",
    "val_history",
    "train_examples",
    "wall_seconds",
    "compute",
)


# --------------------------------------------------------------------------- cells and keys


@dataclass(frozen=True)
class Cell:
    """One unit of suite work: a model cell (spec × backbone × seed) or a baseline cell."""

    kind: Literal["model", "baseline"]
    spec: TaskSpec
    spec_path: str
    column: str
    """Backbone label (model cells) or baseline name."""
    seed: int | None
    ref: str | None
    backbone: dict[str, Any]
    """Identity of the backbone (hashes); for baselines, of the backbone lending its tokenizer."""
    data: dict[str, Any]
    code: dict[str, str]
    """Versions and source hashes of the task plugin and the core."""

    @cached_property
    def key(self) -> str:
        return cell_key(
            self.kind,
            self.spec,
            self.column,
            self.backbone,
            self.data,
            self.code,
            self.seed,
        )

    def describe(self) -> str:
        what = (
            f"{self.column} · seed {self.seed}"
            if self.kind == "model"
            else f"baseline {self.column}"
        )
        return f"{self.spec.label} · {what}"


def _strip(data: dict[str, Any], drop: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for key, sub in drop.items():
        if sub is None:
            out.pop(key, None)
        elif isinstance(out.get(key), dict):
            out[key] = _strip(out[key], sub)
    return out


def cell_key(
    kind: str,
    spec: TaskSpec,
    column: str,
    backbone: Mapping[str, Any],
    data: Mapping[str, Any],
    code: Mapping[str, str],
    seed: int | None,
) -> str:
    """sha256 (16 hex) of what decides a cell's result: the resolved spec (presentation fields
    left out), the backbone's weights and tokenizer hashes, the data version, the task plugin's
    and the core's versions and source hashes (:func:`code_identity`), the seed, and which
    baseline (baseline cells)."""
    spec_json = _strip(spec.model_dump(mode="json"), PRESENTATION_FIELDS)
    if kind == "baseline":  # a baseline neither trains nor depends on the seed
        spec_json = _strip(spec_json, {"finetune": None, "seed": None})
    material = {
        "kind": kind,
        "spec": spec_json,
        "baseline": column if kind == "baseline" else None,
        "backbone": dict(backbone),
        "data": dict(data),
        "code": dict(code),
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


@cache
def source_hash(module_name: str) -> str:
    """sha256 (16 hex) of the Python sources of the top-level package holding ``module_name``
    (the core's reporting and command-line modules left out: they cannot change a result)."""
    top = importlib.import_module(module_name.partition(".")[0])
    roots = [Path(p) for p in getattr(top, "__path__", [])]
    files = (
        sorted(
            f
            for root in roots
            for f in root.rglob("*.py")
            if not f.relative_to(root).as_posix().startswith(PRESENTATION_MODULES)
        )
        if roots
        else [Path(str(top.__file__))]
    )
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def code_identity(task_class: type) -> dict[str, str]:
    """Versions and source hashes of the task plugin and the core: an edited (editable-installed)
    plugin or core re-runs its cells even when nobody bumped a version, as ``datasets``
    fingerprints its transforms."""
    from plugformer import __version__

    return {
        "task_plugin": str(getattr(task_class, "version", "0")),
        "task_plugin_source": source_hash(task_class.__module__),
        "plugformer": __version__,
        "plugformer_source": source_hash("plugformer"),
    }


def backbone_identity(ref: str) -> dict[str, Any]:
    """What identifies a backbone: weights and tokenizer hashes (``scratch`` marks re-initialised
    weights); a family outside the core is identified by its reference."""
    from plugformer.checkpoint import read_manifest, weights_hash
    from plugformer.models.backbones import split_ref

    family, rest = split_ref(ref)
    if family == "scratch":
        inner, inner_rest = split_ref(rest)
        if inner != "native":
            # An untrained twin of another family's model (``scratch:hf:minilm-l6``):
            # identified, like that family's models, by its reference.
            return {"family": inner, "ref": inner_rest, "scratch": True}
    if family not in ("native", "scratch"):
        return {"family": family, "ref": rest}
    manifest = read_manifest(rest)
    return {
        "weights_sha256": weights_hash(rest),
        "tokenizer_sha256": manifest.get("tokenizer_sha256"),
        "scratch": family == "scratch",
    }


def _identity(label: str, ref: str) -> dict[str, Any]:
    from plugformer.models.backbones import split_ref
    from plugformer.models.families import get_family

    try:
        family, rest = split_ref(ref)
        get_family(split_ref(rest)[0] if family == "scratch" else family)  # before any cell runs
        return backbone_identity(ref)
    except PlugformerError as exc:
        raise PlugformerError(
            f"suite backbone {label!r}: {exc} (pass --backbone {label}=REF)"
        ) from None


def data_version(spec: TaskSpec) -> dict[str, Any]:
    """The recipe's name, version and data sha256, and the sha256 of every data file named."""
    from plugformer.data.cache import SPLITS, get_dataset
    from plugformer.errors import DataError
    from plugformer.fileio import sha256_file

    out: dict[str, Any] = {}
    if spec.data.dataset:
        info = get_dataset(spec.data.dataset)
        out["dataset"] = {
            "name": info.name,
            "version": info.version,
            "sha256": info.manifest.get("data_sha256"),
        }
    for split in SPLITS:
        file = getattr(spec.data, split)
        if file:
            if not Path(file).is_file():
                raise DataError(f"{spec.label}: data.{split} file {file!r} not found")
            out[split] = sha256_file(file)
    return out


def plan_cells(
    suite: SuiteConfig, suite_file: Path, refs: Mapping[str, str], *, check_only: bool = False
) -> list[Cell]:
    """Every cell of the suite, task by task: baselines first, then seed by seed each backbone.

    Every spec, override and backbone ``tasks`` entry is checked here, before any cell runs.
    ``check_only`` (``plugformer config validate``): the same checks, but the cells carry no
    identity of their backbones, data or code, so no checkpoint need exist and no dataset is
    fetched."""
    from plugformer.config import check_task_options
    from plugformer.plugins import get_task_class

    ids: dict[str, dict[str, Any]] = {
        label: {} if check_only else _identity(label, ref) for label, ref in refs.items()
    }
    first = next(iter(refs))
    cells: list[Cell] = []
    specs: list[TaskSpec] = []
    for entry in suite.tasks:
        path = spec_path(suite_file, entry)
        # before any cell runs, each error blamed on the file that brought it in
        check_task_options(load_spec(path, {}, suite.seeds[0]), str(path))
        blame = f"{suite_file}: its overrides on {path.name}"
        spec = load_spec(path, suite.overrides, suite.seeds[0], blame)
        specs.append(spec)
        if suite.overrides.get("options"):
            check_task_options(spec, f"{suite_file}: its overrides on {path.name}")
        cls = get_task_class(spec.task)
        where = str(path)
        data, code = ({}, {}) if check_only else (data_version(spec), code_identity(cls))
        if suite.baselines:  # a baseline borrows the first backbone's tokenizer
            cells += [
                Cell("baseline", spec, where, name, None, refs[first], ids[first], data, code)
                for name in cls(spec.options, None).baselines()
            ]
        entries = {b.name: b for b in suite.backbones}
        for seed in suite.seeds:
            for label, ref in refs.items():
                entry = entries[label]
                if not entry.runs(spec):
                    continue
                # A backbone's own settings (learning rates, budget, length) win over the suite's.
                overrides = merge_overrides(suite.overrides, entry.overrides)
                blame = f"{suite_file}: backbone {label!r}'s overrides on {path.name}"
                seeded = _scale_budget(load_spec(path, overrides, seed, blame), suite.budget_scale)
                if entry.overrides.get("options"):
                    check_task_options(seeded, blame)
                cells.append(Cell("model", seeded, where, label, seed, ref, ids[label], data, code))
    _check_backbone_tasks(suite, suite_file, specs)
    return cells


def _check_backbone_tasks(suite: SuiteConfig, suite_file: Path, specs: list[TaskSpec]) -> None:
    """A backbone's ``tasks`` must each name a spec or task kind of the suite: a typo would
    silently drop the backbone's cells."""
    names = {s.label for s in specs} | {s.task for s in specs}
    for entry in suite.backbones:
        unknown = [t for t in entry.tasks or [] if t not in names]
        if unknown:
            have = ", ".join(f"{s.label} ({s.task})" for s in specs)
            raise ConfigError(
                f"{suite_file}: backbone {entry.name!r}: tasks names {unknown[0]!r}, which is "
                f"no spec or task of the suite (its specs: {have})"
            )


def _scale_budget(spec: TaskSpec, scale: float) -> TaskSpec:
    """``spec`` with its fine-tuning minutes times the suite's ``budget_scale``."""
    minutes = spec.finetune.max_minutes
    if scale == 1.0 or minutes is None:
        return spec
    finetune = spec.finetune.model_copy(update={"max_minutes": round(minutes * scale, 4)})
    return spec.model_copy(update={"finetune": finetune})


# --------------------------------------------------------------------------- running


def hardware() -> dict[str, Any]:
    """Where a cell ran: platform, CPU count, torch threads, accelerator."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
    }


def _labels(cell: Cell) -> dict[str, Any]:
    """A record's fields that name things rather than decide results (refreshed on cache hits)."""
    backbone = {"ref": cell.ref, **cell.backbone}
    if cell.kind == "model":
        return {
            "spec": cell.spec.label,
            "spec_path": cell.spec_path,
            "column": cell.column,
            "backbone": {"label": cell.column, **backbone},
        }
    return {
        "spec": cell.spec.label,
        "spec_path": cell.spec_path,
        "column": cell.column,
        "tokenizer_from": backbone,
    }


def _record(cell: Cell, result: Mapping[str, Any], wall: float) -> dict[str, Any]:
    from plugformer.checkpoint import library_versions

    return {
        "key": cell.key,
        "kind": cell.kind,
        "task": cell.spec.task,
        "seed": cell.seed,
        **_labels(cell),
        "metrics": result["metrics"],
        "main_metric": result["main_metric"],
        "higher_is_better": result["higher_is_better"],
        "metric_info": result["metric_info"],
        "n_examples": result["n_examples"],
        "data": cell.data,
        "versions": {**library_versions(), **cell.code},
        "hardware": hardware(),
        "spec_config": cell.spec.model_dump(mode="json"),
        "wall_seconds": round(wall, 2),
    }


def _run_cell(cell: Cell, out: Path, keep: bool) -> dict[str, Any]:
    """Run one cell, model or baseline; returns its record (module level: workers pickle it)."""
    if cell.kind == "model":
        return _run_model(cell, out, keep)
    return _run_baseline(cell, _tokenizer(cell.ref or ""), out)


@cache
def _tokenizer(ref: str) -> Any:
    """The tokenizer a baseline borrows from the suite's first backbone, loaded once a process."""
    from plugformer.models.backbones import resolve_backbone

    return resolve_backbone(ref, seed=0).tokenizer


def _run_model(cell: Cell, out: Path, keep: bool) -> dict[str, Any]:
    from plugformer.training.finetune import evaluate, finetune

    work = out / "work" / cell.key
    shutil.rmtree(work, ignore_errors=True)  # a killed earlier attempt
    t0 = time.perf_counter()
    summary = finetune(cell.spec, cell.ref, work)
    # tells plugins via on_result; the predictions are logged beside the cell
    result = evaluate(cell.spec, summary["checkpoint"], "test", keep_predictions=True)
    record = _record(cell, result, time.perf_counter() - t0)
    record["finetune"] = {k: summary.get(k) for k in SUMMARY_FIELDS}
    record["compute"] = summary.get("compute")
    record["predictions_file"] = _log_samples(out, cell, result["samples"])
    record["example_statistics"] = result.get("example_statistics")
    if keep:
        shutil.rmtree(out / "checkpoints" / cell.key, ignore_errors=True)
        shutil.move(summary["checkpoint"], out / "checkpoints" / cell.key)
    shutil.rmtree(work, ignore_errors=True)
    return record


def _log_samples(out: Path, cell: Cell, samples: list[dict[str, Any]]) -> str:
    """Write a cell's test predictions to ``predictions/<key>.jsonl``; returns the path
    relative to the run directory."""
    from plugformer.inference.samples import write_samples

    rel = Path("predictions") / f"{cell.key}.jsonl"
    write_samples(out / rel, samples)
    return rel.as_posix()


def _run_baseline(cell: Cell, tokenizer: Any, out: Path) -> dict[str, Any]:
    from plugformer.hook_calls import call_on_result
    from plugformer.metric_info import normalise_metric_info
    from plugformer.tasks import run_baseline
    from plugformer.training.finetune import build_task, load_examples

    t0 = time.perf_counter()
    task = build_task(cell.spec.task, cell.spec.options, tokenizer)
    train, test = load_examples(task, cell.spec, "train"), load_examples(task, cell.spec, "test")
    if not test:
        raise PlugformerError(f"{cell.spec.label}: no test examples for baseline {cell.column!r}")
    validation = load_examples(task, cell.spec, "validation")  # its only tuning data
    task.prepare(train)
    baseline = task.baselines()[cell.column]
    predictions, described = run_baseline(baseline, train, test, validation)
    metrics, size = task.metrics(), cell.spec.finetune.eval_batch_size
    for i in range(0, len(test), size):  # batch by batch, as in evaluation
        task.update_metrics(metrics, predictions[i : i + size], test[i : i + size])
    result = {
        "metrics": task.compute_metrics(metrics),
        "main_metric": task.main_metric,
        "higher_is_better": task.higher_is_better,
        "metric_info": normalise_metric_info(task.metric_info()),
        "n_examples": len(test),
    }
    record = _record(cell, result, time.perf_counter() - t0)
    record["baseline"] = {"name": cell.column, **described}
    from plugformer.inference.samples import sample_records

    record["predictions_file"] = _log_samples(out, cell, sample_records(test, predictions))
    stats = task.example_statistics(predictions, test)
    record["example_statistics"] = stats.as_dict() if stats is not None else None
    call_on_result({**record, "split": "test", "backbone": None, "baseline": cell.column})
    return record


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _cached_cells(
    cells: list[Cell], cell_file: Mapping[str, Path], log: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """The verified records of cached cells (:mod:`plugformer.suites.cellcache`); bad ones are named
    in a warning and left out, so they are recomputed."""
    from plugformer.suites.cellcache import read_cell

    out: dict[str, dict[str, Any]] = {}
    for c in cells:
        if c.key not in out:
            record = read_cell(cell_file[c.key], c.key, c.kind, c.spec.task, log)
            if record is not None:
                out[c.key] = record
    return out


def _interrupted(
    exc: BaseException, cell: Cell | None, done: int, total: int, run_dir: Path
) -> Interrupted:
    """A signal during a cell (``None``: during the cells the workers were running), told as a
    suite's: what is kept and how to continue (a cell's own fine-tuning is not resumed; the
    next run starts the unfinished cells over)."""
    import signal

    signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
    where, again = (
        (f"cell {cell.describe()}", "this cell starts over")
        if cell
        else ("the running cells", "they start over")
    )
    return Interrupted(
        signum,
        f"interrupted by {signal.Signals(signum).name} during {where}; "
        f"{done} of {total} cells are saved in {run_dir / 'cells'}: run the same "
        f"`plugformer bench` command again to continue ({again})",
    )


def budget_minutes(
    path: str | Path, *, seeds: int | None = None, backbones: Mapping[str, str] | None = None
) -> tuple[float, int]:
    """(fine-tuning minutes of the suite's model cells at ``budget_scale`` 1, summed; the
    suite's workers): what a deadline needs to know to choose a ``budget_scale``."""
    path = resolve(path, "suite")
    suite = load_suite(path, seeds).model_copy(update={"budget_scale": 1.0})
    cells = plan_cells(suite, path, resolve_backbones(suite, backbones))
    models = {c.key: c for c in cells if c.kind == "model"}  # two labels may share a cell
    return sum(budget_seconds(c) for c in models.values()) / 60, suite.workers


def run_suite(
    path: str | Path,
    out: str | Path | None = None,
    *,
    seeds: int | None = None,
    backbones: Mapping[str, str] | None = None,
    workers: int | None = None,
    budget_scale: float | None = None,
    log: Callable[[str], None] = _stderr,
) -> Path:
    """Run (or resume) a suite; writes the cells, results and reports; returns the run directory.

    ``workers`` (default: the suite's): cells run at once, each in its own process
    (:mod:`plugformer.suites.workers`); 1 runs them one by one in this process.
    ``budget_scale`` (default: the suite's) multiplies every cell's fine-tuning minutes."""
    from plugformer.fileio import atomic_write_json
    from plugformer.suites.cellcache import write_cell
    from plugformer.suites.report import write_reports

    path = resolve(path, "suite")  # a file, or a registered suite name such as "default"
    suite = load_suite(path, seeds)
    if budget_scale is not None:
        if not (0 < budget_scale < float("inf")):
            raise ConfigError(f"budget_scale must be a positive number, got {budget_scale!r}")
        suite = suite.model_copy(update={"budget_scale": budget_scale})
    refs = resolve_backbones(suite, backbones)
    run_dir = Path(out or Path("runs") / "bench" / suite.name)
    cells = plan_cells(suite, path, refs)
    cell_file = {c.key: run_dir / "cells" / f"{c.key}.json" for c in cells}
    cached = _cached_cells(cells, cell_file, log)
    pending = {c.key for c in cells if c.key not in cached}
    log(
        f"suite {suite.name}: {len(cells)} cells ({len(cells) - len(pending)} cached, {len(pending)} to run) → {run_dir}"
    )
    atomic_write_json(
        run_dir / "suite.json",
        {**suite.model_dump(mode="json"), "file": str(path), "backbone_refs": refs},
    )
    workers = workers or suite.workers
    _tokenizer.cache_clear()  # a checkpoint rewritten in place since the last run is reread
    progress, records = Progress(cells, pending, log, workers), []
    if pending:
        log(f"suite {suite.name}: ETA {progress.eta()}, from the cells' fine-tuning budgets")
    if workers > 1 and pending:
        from plugformer.suites.workers import run_parallel

        todo = list({c.key: c for c in cells if c.key in pending}.values())
        log(f"suite {suite.name}: {workers} cells at a time, each in its own process")
        try:
            for n, (cell, record, ran) in enumerate(
                run_parallel(todo, _run_cell, run_dir, suite.keep_checkpoints, workers), 1
            ):
                write_cell(cell_file[cell.key], record)
                cached[cell.key] = record
                progress.done(n, cell, record, ran)
        except (Interrupted, KeyboardInterrupt) as exc:
            raise _interrupted(exc, None, len(cached), len(cell_file), run_dir) from None
    for i, cell in enumerate(cells, 1):
        ran: float | None = None
        if cell.key not in cached:  # two labels of one backbone share their cells
            progress.start(i, cell)
            t0 = time.perf_counter()
            try:
                record = _run_cell(cell, run_dir, suite.keep_checkpoints)
            except (Interrupted, KeyboardInterrupt) as exc:
                raise _interrupted(exc, cell, len(cached), len(cell_file), run_dir) from None
            write_cell(cell_file[cell.key], record)
            cached[cell.key] = copy.deepcopy(record)
            ran = time.perf_counter() - t0
        record = copy.deepcopy(cached[cell.key])
        record.update(_labels(cell))  # a renamed label or moved checkpoint is not a new result
        records.append(record)
        if workers == 1 or ran is not None or cell.key not in pending:
            progress.done(i, cell, record, ran)  # parallel runs reported theirs as they ended
    written = write_reports(records, run_dir, suite)
    log(
        f"suite {suite.name}: done in {clock(time.perf_counter() - progress.t0)}; "
        + ", ".join(p.name for p in written)
    )
    return run_dir
