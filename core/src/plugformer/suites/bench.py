"""Benchmark suites: task specs × backbones × seeds, run cell by cell, cached, resumable.

A suite is a TOML file (a registered name such as ``default``, or a path) validated as
:class:`SuiteConfig` (its schema and loading live in :mod:`plugformer.suites.config`, the
planning of its cells and their keys in :mod:`plugformer.suites.plan`; this module runs them).
Every *model cell* (one spec, one backbone, one seed) is fine-tuned and scored on
the test split; every *baseline cell* (one spec, one of its task's baselines) is scored once,
since baselines are deterministic. A run directory holds::

    .plugformer.lock        held while a run is in progress: a second run into the
                            directory is refused (plugformer.outdir)
    suite.json              the resolved suite (backbone references, seeds, spec paths)
    cells/<key>.json        one finished cell each, written atomically
    work/<key>/             a cell's task checkpoint while it runs (deleted afterwards; work/
                            itself once the suite completes, if nothing else is in it)
    results.json  report.md  report.csv  main_metric.png  val_curves.png   (plugformer.suites.report)

A cell's key hashes everything that decides its result (see
:func:`~plugformer.suites.plan.cell_key`), so a re-run
skips finished cells: an interrupted suite resumes, an unchanged one finishes in seconds,
and a changed seed or spec re-runs exactly the cells it affects.
"""

from __future__ import annotations

import contextlib
import copy
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from plugformer.errors import ConfigError, Interrupted, PlugformerError
from plugformer.specs import resolve
from plugformer.suites.config import (
    SuiteBackbone,
    SuiteConfig,
    load_suite,
    resolve_backbones,
)
from plugformer.suites.plan import (
    Cell,
    cell_key,
    plan_cells,
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
    backbone = {**cell.backbone, "ref": cell.ref}  # the reference as given, family and all
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
    from plugformer.training.finetune import build_task, evaluate, finetune, load_examples

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
    # an ensemble chooses its weight on these (without validation data it skips the cell);
    # a task without a tokenizer is enough to read the data
    reader = build_task(cell.spec.task, cell.spec.options, None) if cell.validation else None
    if reader is not None and load_examples(reader, cell.spec, "validation"):
        val = evaluate(cell.spec, summary["checkpoint"], "validation", keep_predictions=True)
        record["validation_metrics"] = val["metrics"]
        record["validation_predictions_file"] = _log_samples(
            out, cell, val["samples"], "validation"
        )
    if keep:
        shutil.rmtree(out / "checkpoints" / cell.key, ignore_errors=True)
        shutil.move(summary["checkpoint"], out / "checkpoints" / cell.key)
    shutil.rmtree(work, ignore_errors=True)
    return record


def _log_samples(out: Path, cell: Cell, samples: list[dict[str, Any]], split: str = "test") -> str:
    """Write a cell's test predictions to ``predictions/<key>.jsonl`` (another split's to
    ``predictions/<key>.<split>.jsonl``); returns the path relative to the run directory."""
    from plugformer.inference.samples import write_samples

    rel = Path("predictions") / (
        f"{cell.key}.jsonl" if split == "test" else f"{cell.key}.{split}.jsonl"
    )
    write_samples(out / rel, samples)
    return rel.as_posix()


def _run_baseline(cell: Cell, tokenizer: Any, out: Path) -> dict[str, Any]:
    from plugformer.hook_calls import call_on_result
    from plugformer.metric_info import normalise_metric_info
    from plugformer.tasks import run_baseline, score_predictions
    from plugformer.training.finetune import build_task, load_examples

    t0 = time.perf_counter()
    task = build_task(cell.spec.task, cell.spec.options, tokenizer)
    train, test = load_examples(task, cell.spec, "train"), load_examples(task, cell.spec, "test")
    if not test:
        raise PlugformerError(f"{cell.spec.label}: no test examples for baseline {cell.column!r}")
    validation = load_examples(task, cell.spec, "validation")  # its only tuning data
    task.prepare(train)
    baseline = task.baselines()[cell.column]
    # With validation predictions for an ensemble: one fit, tuned on validation as always,
    # predicting both splits.
    asked = test + validation if cell.validation else test
    predictions, described = run_baseline(baseline, train, asked, validation)
    predictions, val_predictions = predictions[: len(test)], predictions[len(test) :]
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
    if cell.validation and validation:
        record["validation_metrics"] = score_predictions(task, val_predictions, validation, size)
        record["validation_predictions_file"] = _log_samples(
            out, cell, sample_records(validation, val_predictions), "validation"
        )
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


def _without_kept_checkpoints(
    cells: list[Cell],
    cached: dict[str, dict[str, Any]],
    run_dir: Path,
    log: Callable[[str], None],
) -> None:
    """Drop from ``cached`` the model cells whose checkpoint ``keep_checkpoints`` asks for is
    not in ``checkpoints/<key>``, so they run again and keep it: turning the setting on for a
    finished suite had reused every cell and kept no checkpoint, silently."""
    missing = {  # a set: two labels of one backbone share their cell
        c.key
        for c in cells
        if c.kind == "model" and c.key in cached and not (run_dir / "checkpoints" / c.key).is_dir()
    }
    for key in missing:
        del cached[key]
        # its old cell file goes too: a rerun stopped after writing its new predictions would
        # otherwise leave them (and the new checkpoint) beside the old record, which the next
        # run would accept as the cell's
        _cell_path(run_dir, key).unlink(missing_ok=True)
    if missing:
        log(
            f"keep_checkpoints: {len(missing)} cached cells have no checkpoint in "
            f"{run_dir / 'checkpoints'}; running them again to keep one"
        )


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


def _remove_empty_dirs(root: Path) -> None:
    """Remove ``root`` and the folders under it that hold nothing, deepest first: a finished
    suite's ``work/`` (each cell deletes its own folder, not the parent). ``rmdir`` refuses a
    folder with anything in it, so a leftover of another run or the user's stays."""
    if not root.is_dir() or root.is_symlink():
        return
    for folder, _, _ in os.walk(root, topdown=False):  # links to folders are not followed
        with contextlib.suppress(OSError):  # not empty
            os.rmdir(folder)


def _warn_unscaled(suite: SuiteConfig, cells: list[Cell], log: Callable[[str], None]) -> None:
    """Name the specs a ``budget_scale`` other than 1 leaves as they are: without
    ``finetune.max_minutes`` a cell trains for its steps, and the scale had changed nothing,
    silently."""
    if suite.budget_scale == 1.0:
        return
    unscaled = {
        c.spec.label for c in cells if c.kind == "model" and not c.spec.finetune.max_minutes
    }
    if unscaled:
        log(
            f"warning: budget_scale {suite.budget_scale:g} leaves {', '.join(sorted(unscaled))} "
            "as they are: no finetune.max_minutes to scale (they train for their steps)"
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


_BEFORE_ANY_CELL = ("suite.json", "work", "predictions")
"""What a suite's run writes before a cell is saved in ``cells/``: thrown away with the
directory when the run fails (predictions are written just before their cell's file)."""


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
    from plugformer.outdir import claim

    path = resolve(path, "suite")  # a file, or a registered suite name such as "default"
    suite = load_suite(path, seeds)
    if budget_scale is not None:
        if not (0 < budget_scale < float("inf")):
            raise ConfigError(f"budget_scale must be a positive number, got {budget_scale!r}")
        suite = suite.model_copy(update={"budget_scale": budget_scale})
    refs = resolve_backbones(suite, backbones)
    run_dir = Path(out or Path("runs") / "bench" / suite.name)
    cells = plan_cells(suite, path, refs)
    # One run per directory at a time. A run that fails before its first cell is saved,
    # into a directory it created, leaves none behind (its suite.json and empty work/ only).
    with claim(run_dir, f"bench {suite.name}", disposable=_BEFORE_ANY_CELL):
        _remove_orphan_predictions(run_dir)  # a killed run's, whose cells start over
        try:
            return _run_claimed(suite, path, refs, run_dir, cells, workers, log)
        finally:  # an error or signal between a cell's predictions and its cell file
            _remove_orphan_predictions(run_dir)


def _cell_path(run_dir: Path, key: str) -> Path:
    """Where a cell's record lives: ``cells/<key>.json`` (its predictions are
    ``predictions/<key>.jsonl``)."""
    return run_dir / "cells" / f"{key}.json"


def _remove_orphan_predictions(run_dir: Path) -> None:
    """Delete ``predictions/<key>[.split].jsonl`` files without a ``cells/<key>.json``: a cell writes its
    predictions just before its cell file, so a run stopped between the two left predictions
    of a cell that is not saved (and that a rerun computes again)."""
    folder = run_dir / "predictions"
    if not folder.is_dir():
        return
    for file in folder.glob("*.jsonl"):  # <key>.jsonl, <key>.validation.jsonl
        if not _cell_path(run_dir, file.name.split(".", 1)[0]).is_file():
            file.unlink(missing_ok=True)


def _remove_reports(run_dir: Path) -> None:
    """Delete an earlier run's reports (and temporary files a killed write left) before cells
    run: they are made again from all the cells at the end, and a run stopped before then
    would leave results.json of the earlier suite beside this one's suite.json, which ``bench
    compare`` read as this run's."""
    from plugformer.fileio import remove_temporaries
    from plugformer.suites.report import REPORT_FILES

    for name in REPORT_FILES:
        (run_dir / name).unlink(missing_ok=True)
    remove_temporaries(run_dir)


def _run_claimed(
    suite: SuiteConfig,
    path: Path,
    refs: dict[str, str],
    run_dir: Path,
    cells: list[Cell],
    workers: int | None,
    log: Callable[[str], None],
) -> Path:
    """:func:`run_suite` in the run directory it holds."""
    from plugformer.fileio import atomic_write_json
    from plugformer.suites.cellcache import write_cell
    from plugformer.suites.ensemble import ensemble_records
    from plugformer.suites.report import unreported_metrics, write_reports

    _warn_unscaled(suite, cells, log)
    cell_file = {c.key: _cell_path(run_dir, c.key) for c in cells}
    cached = _cached_cells(cells, cell_file, log)
    if suite.keep_checkpoints:
        _without_kept_checkpoints(cells, cached, run_dir, log)
    pending = {c.key for c in cells if c.key not in cached}
    log(
        f"suite {suite.name}: {len(cells)} cells ({len(cells) - len(pending)} cached, {len(pending)} to run) → {run_dir}"
    )
    if pending:
        _remove_reports(run_dir)
    atomic_write_json(
        run_dir / "suite.json",
        {**suite.model_dump(mode="json"), "file": str(path), "backbone_refs": refs},
    )
    workers = workers or suite.workers
    _tokenizer.cache_clear()  # a checkpoint rewritten in place since the last run is reread
    progress, records = Progress(cells, pending, log, workers), []
    if pending and progress.budgeted():
        log(f"suite {suite.name}: ETA {progress.eta()}, from the cells' fine-tuning budgets")
    parallel = workers > 1 and bool(pending)
    if parallel:
        from plugformer.suites.workers import check_workers_see, run_parallel

        todo = list({c.key: c for c in cells if c.key in pending}.values())
        check_workers_see({c.spec.task for c in todo})
        log(f"suite {suite.name}: {workers} cells at a time, each in its own process")
        for cell in cells:  # counted first: they were done before any worker started
            if cell.key in cached:
                progress.done(cell, cached[cell.key], None)
        try:
            for cell, record, ran in run_parallel(
                todo, _run_cell, run_dir, suite.keep_checkpoints, workers
            ):
                cached[cell.key] = write_cell(cell_file[cell.key], record)
                # every label sharing the cell is a line of its own; the first is the one timed
                twins = [c for c in cells if c.key == cell.key]
                for j, twin in enumerate(twins):
                    progress.done(twin, cached[cell.key], ran if j == 0 else None)
        except (Interrupted, KeyboardInterrupt) as exc:
            raise _interrupted(exc, None, len(cached), len(cell_file), run_dir) from None
    for cell in cells:
        ran: float | None = None
        if cell.key not in cached:  # two labels of one backbone share their cells
            progress.start(cell)
            t0 = time.perf_counter()
            try:
                record = _run_cell(cell, run_dir, suite.keep_checkpoints)
            except (Interrupted, KeyboardInterrupt) as exc:
                raise _interrupted(exc, cell, len(cached), len(cell_file), run_dir) from None
            # the record as written, sha256 included: what a rerun reads back from the cache
            cached[cell.key] = write_cell(cell_file[cell.key], record)
            ran = time.perf_counter() - t0
        record = copy.deepcopy(cached[cell.key])
        record.update(_labels(cell))  # a renamed label or moved checkpoint is not a new result
        records.append(record)
        if not parallel:  # parallel runs reported every cell as it ended
            progress.done(cell, record, ran)
    _remove_empty_dirs(run_dir / "work")
    records += ensemble_records(suite, records, run_dir, log)  # and removes stale ones
    written = write_reports(records, run_dir, suite)
    unknown, reported = unreported_metrics(records, suite.report_metrics)
    if unknown:  # report.md says so too, but nobody reads it for a typo
        log(
            f"warning: report_metrics {', '.join(map(repr, unknown))} is reported by no cell; "
            f"the cells report {', '.join(reported)}"
        )
    log(
        f"suite {suite.name}: done in {clock(time.perf_counter() - progress.t0)}; "
        + ", ".join(p.name for p in written)
    )
    return run_dir
