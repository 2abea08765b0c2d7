"""Running a suite's pending cells several at a time, each in a worker process.

Cells are independent (own seed, own output), so a suite may run ``workers`` of them at once
(``workers`` in the suite file, ``plugformer bench --workers``). Each worker is a fresh
(spawned) process with an equal share of the cores as torch threads. Small models use two
threads poorly (a translation fine-tuning step of the default job's 738k-parameter model was
only 1.44× faster on 2 threads than on 1), so on 2 cores the default job's suite ran in 1,068 s
two at a time against 1,514 s one at a time, while its cells, given 1.4× the minutes, trained
75–100% of the steps they had alone (commits 0ade700 and 6572b14, fp32 machine). Budgets
stay wall-clock minutes per cell, and a cell's result is written by the parent as soon as it
arrives, so an interrupted suite resumes from the cells that finished.

Workers find plugins through their entry points, as any new process does: a plugin
registered in the parent process only (``plugformer.plugins.register``) is not seen there,
so such suites run with ``workers = 1``, in-process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

__all__ = ["check_workers_see", "run_parallel", "worker_threads"]


def worker_threads(workers: int, cpus: int | None = None) -> int:
    """Torch threads of each of ``workers`` processes: the idle cores shared out, at least one."""
    from plugformer.threads import pick_threads

    cpus = cpus or os.cpu_count() or 1
    idle = pick_threads("auto", cpus) or cpus  # None: the machine is idle
    return max(1, idle // workers)


def check_workers_see(tasks: Iterable[str]) -> None:
    """Refuse, before any worker starts, a task whose plugin was registered in this process
    (:func:`plugformer.plugins.register_plugin`): a spawned worker loads plugins from entry
    points only, and each of its cells had failed with "unknown task ...; known: ...", which
    did not say why."""
    import importlib.metadata as md

    from plugformer.errors import ConfigError
    from plugformer.plugin_manager import ENTRY_POINT_GROUP
    from plugformer.plugin_registries import plugin_infos

    installed = {ep.name for ep in md.entry_points(group=ENTRY_POINT_GROUP)}
    wanted = set(tasks)
    for info in plugin_infos():
        if info.default or info.name in installed:
            continue
        theirs = sorted(wanted & set(info.provides.get("tasks", [])))
        if theirs:
            raise ConfigError(
                f"task {theirs[0]!r} comes from plugin {info.name!r}, registered in this "
                "process: worker processes load plugins from entry points only; run the suite "
                "with workers = 1 (--workers 1), or install the plugin"
            )


def _init_worker(threads: int, parent: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)  # before torch is imported in this process
    import torch

    torch.set_num_threads(threads)
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent: int, every: float = 1.0) -> None:
    """End this worker once ``parent`` (the suite's process) is gone. A parent killed with
    SIGKILL cannot stop its workers, and a worker holds both ends of its task queue's pipe, so
    it never read an end of file: each ran on (650 MB apiece in the smoke suite) with its
    result going nowhere, until killed by hand. Nothing of its cell is lost that a rerun
    would use: only finished cells are kept, and the rerun starts ``work/<key>`` afresh."""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _timed(run_one: Callable[..., dict[str, Any]], *args: Any) -> tuple[dict[str, Any], float]:
    t0 = time.perf_counter()
    return run_one(*args), time.perf_counter() - t0


def run_parallel(
    cells: list[Any],
    run_one: Callable[[Any, Path, bool], dict[str, Any]],
    out: Path,
    keep: bool,
    workers: int,
) -> Iterator[tuple[Any, dict[str, Any], float]]:
    """Run ``cells`` (distinct keys) in ``workers`` processes; yields (cell, record, seconds)
    as each finishes, its seconds counted in the worker. Longest budgets go first, so the last
    cells to finish are short ones. A failing cell stops the rest (as in-process runs do)
    after the running ones end: their results are yielded, then the first failure is raised.
    (Before, the running cells were stopped with the failure and their work lost: a suite
    whose 2-second cell failed beside a good one kept neither.)"""
    order = sorted(cells, key=_expected_seconds, reverse=True)
    context = multiprocessing.get_context("spawn")  # no forked torch or Lightning state
    threads = worker_threads(workers)
    with ProcessPoolExecutor(workers, context, _init_worker, (threads, os.getpid())) as pool:
        started: dict[Future[tuple[dict[str, Any], float]], Any] = {}
        try:
            for cell in order:
                started[pool.submit(_timed, run_one, cell, out, keep)] = cell
            pending = set(started)
            failure: Exception | None = None
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    if future.cancelled():
                        continue
                    try:
                        record, seconds = future.result()
                    except Exception as exc:
                        if failure is None:
                            failure = exc
                            for waiting in pending:  # not started: never will be
                                waiting.cancel()
                        continue
                    yield started[future], record, seconds
            if failure is not None:
                raise failure
        except BaseException:
            _stop_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Pass an interruption of the parent on to the running cells: SIGTERM stops a fine-tune at
    its next step boundary (:mod:`plugformer.signals`), anything else at once. Ctrl-C in a
    terminal reaches the workers by itself (one process group), but ``kill -INT`` of the
    parent alone left them running their cells to the end while the parent waited. SIGTERM,
    not a second SIGINT: a worker that already has Ctrl-C's SIGINT would take another as
    "stop now"."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError):  # already gone
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)


def _expected_seconds(cell: Any) -> float:
    """A cell's budget: its fine-tuning minutes (model cells); baselines take about half one."""
    minutes = cell.spec.finetune.max_minutes if cell.kind == "model" else None
    return 60.0 * minutes if minutes else 30.0
