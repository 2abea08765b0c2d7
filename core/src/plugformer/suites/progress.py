"""Progress of a suite run: one line per cell, and the ETA of the rest from the cells'
fine-tuning budgets (:class:`Progress`). :mod:`plugformer.suites.bench` drives it."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = ["Progress", "budget_seconds", "clock"]


class Cell(Protocol):
    """What progress reads of a suite cell (:class:`plugformer.suites.plan.Cell`)."""

    kind: str
    spec: Any
    key: str

    def describe(self) -> str: ...


class Progress:
    """One line per cell: i/N, what, the main metric, its time, elapsed and the ETA of the rest.

    ``i`` counts the cells in the order they are reported done, cached ones included, so
    with workers (cells finishing out of plan order) the lines still run 1..N, each once.

    The ETA is known before any cell has finished, because fine-tuning budgets are set in
    minutes: a model cell is expected to take its budget (``finetune.max_minutes``, already
    scaled by the suite's ``budget_scale``) plus what finished cells of the same task spec
    took beyond theirs (evaluation, decoding, loading; of any spec until one of its own has
    finished). A baseline is expected to take what finished baselines of its spec took. While
    a kind of cell still to run has no finished cell to learn from, the ETA counts only
    budgets and reads as a lower bound, ``≥ h:mm:ss``.
    """

    def __init__(
        self, cells: list[Cell], pending: set[str], log: Callable[[str], None], workers: int = 1
    ):
        self.total, self.log, self.t0 = len(cells), log, time.perf_counter()
        self.workers, self.count = workers, 0
        self.todo = {c.key: c for c in cells if c.key in pending}  # two labels may share a cell
        self.beyond: dict[tuple[str, str], list[float]] = {}
        """Seconds each finished cell took beyond its budget, by (kind, spec label)."""

    def _tag(self, i: int) -> str:
        return f"[{i:>{len(str(self.total))}}/{self.total}]"

    def start(self, cell: Cell) -> None:
        """A cell run in this process begins: it takes the number its ``done`` line will have."""
        self.log(f"{self._tag(self.count + 1)} {cell.describe()} ...")

    def done(self, cell: Cell, record: Mapping[str, Any], ran: float | None) -> None:
        """A cell is finished: ``ran`` seconds, or ``None`` if its record was already there
        (cached, or shared with another label of the same checkpoint)."""
        self.count += 1
        main = record["main_metric"]
        status = f"{main}={record['metrics'][main]:.4g}"
        if ran is None:
            status += " (cached)"
        else:
            self.todo.pop(cell.key, None)
            extra = max(0.0, ran - budget_seconds(cell))
            self.beyond.setdefault((cell.kind, cell.spec.label), []).append(extra)
            status += f" in {ran:.1f}s"
        self.log(
            f"{self._tag(self.count)} {cell.describe()}: {status} | "
            f"elapsed {clock(time.perf_counter() - self.t0)}, ETA {self.eta()}"
        )

    def budgeted(self) -> bool:
        """Whether a cell still to run has a fine-tuning budget: without one an ETA before
        any cell has finished would read "≥ 0:00:00", which says nothing."""
        return any(budget_seconds(cell) > 0 for cell in self.todo.values())

    def eta(self) -> str:
        """Wall time the cells still to run are expected to take, over the workers."""
        work, lower_bound = 0.0, False
        for cell in self.todo.values():
            seen = self.beyond.get((cell.kind, cell.spec.label)) or [
                x for (kind, _), xs in self.beyond.items() if kind == cell.kind for x in xs
            ]
            work += budget_seconds(cell) + (statistics.fmean(seen) if seen else 0.0)
            lower_bound = lower_bound or not seen
        return ("≥ " if lower_bound else "") + clock(work / self.workers)


def budget_seconds(cell: Cell) -> float:
    """The fine-tuning budget of a model cell in seconds (0 for a baseline, or a cell bounded
    by steps only)."""
    minutes = cell.spec.finetune.max_minutes if cell.kind == "model" else None
    return 60.0 * minutes if minutes else 0.0


def clock(seconds: float) -> str:
    """``h:mm:ss``."""
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
