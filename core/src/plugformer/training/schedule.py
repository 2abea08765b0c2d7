"""The learning-rate schedule of pretraining and fine-tuning, driven by steps *or* wall time.

A run has a step limit and, optionally, a wall-clock budget. Its progress is the larger of the
two fractions spent::

    progress = max(step / max_steps, elapsed / budget)

The learning rate warms up linearly over ``warmup_steps``, then follows a cosine from its peak
to ``min_ratio × peak`` as progress goes from the end of warm-up to 1, and the run stops at 1
once a step has run at the floor. On a machine that gets busy half-way, a budgeted run trains
fewer steps but still anneals to its floor — a step count measured once at start-up would leave
it stopped near its peak. A busy machine can also stall one step for a good part of a short
budget (oversubscribed threads): that step started below 1 and ran well above the floor, so one
more step runs at the floor before the run stops (:data:`FLOOR_TOLERANCE`).

Fine-tuning gives its warm-up as a share of the run (``finetune.warmup_ratio``), and a budgeted
run's step limit is only a cap, far beyond the steps the minutes allow. So a budgeted schedule
may also take ``warmup_fraction``: warm-up then ends when *either* ``warmup_steps`` are done or
that fraction of the progress is spent (the multiplier is the larger of the two linear ramps),
so a loose step cap cannot keep the run warming up for its whole budget.

Without a budget this is exactly the step schedule (linear warm-up, cosine to ``total``), so a
step-limited run resumes bit for bit: the multiplier is a function of the step alone. The
elapsed time is part of the callback's state (saved in Lightning's checkpoint), so a resumed
budgeted run carries on where the killed one stopped.
"""

from __future__ import annotations

import math
import time
from typing import Any

import lightning as L

__all__ = ["FLOOR_TOLERANCE", "BudgetSchedule", "lr_multiplier"]

FLOOR_TOLERANCE = 0.002
"""How close to the floor (a fraction of the peak − floor range) the last step of a budgeted run
must have run for the run to stop when its budget is spent; further, and one more step runs at
the floor. A step that started 3% of the budget before its end ran within this."""


def lr_multiplier(
    step: int, warmup: int, progress: float, warmup_end: float, min_ratio: float
) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, then cosine to ``min_ratio`` as ``progress``
    goes from ``warmup_end`` (the progress when warm-up ended) to 1."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    span = max(1e-9, 1.0 - warmup_end)
    p = min(1.0, max(0.0, (progress - warmup_end) / span))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))


class BudgetSchedule(L.Callback):
    """Sets every optimiser group's learning rate before each step, and stops the run when its
    step limit or wall-clock budget is spent (see the module docstring).

    Each param group's peak learning rate is its ``lr`` when training starts (kept as
    ``group["peak_lr"]``).
    """

    def __init__(
        self,
        warmup_steps: int,
        max_steps: int,
        max_seconds: float | None = None,
        min_ratio: float = 0.0,
        warmup_fraction: float | None = None,
    ) -> None:
        self.warmup_steps = warmup_steps
        self.warmup_fraction = warmup_fraction if max_seconds else None
        self.max_steps = max(1, max_steps)
        self.max_seconds = max_seconds
        self.min_ratio = min_ratio
        self.elapsed = 0.0  # seconds of training before this process (resumed runs)
        self.warmup_end: float | None = None
        self.last_multiplier = 1.0
        self._t0: float | None = None

    # -------------------------------------------------------------- progress
    def seconds(self) -> float:
        """Wall-clock seconds of training so far (validation passes included: they are part of
        the budget)."""
        return self.elapsed + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

    def progress(self, step: int) -> float:
        by_steps = step / self.max_steps
        if not self.max_seconds:
            return by_steps
        return max(by_steps, self.seconds() / self.max_seconds)

    def multiplier(self, step: int) -> float:
        progress = self.progress(step)
        if self.warmup_end is None:
            ramp = (step + 1) / (self.warmup_steps + 1) if step < self.warmup_steps else 1.0
            if self.warmup_fraction:  # the budget's share of warm-up may come first
                ramp = max(ramp, progress / self.warmup_fraction)
            if ramp < 1.0:
                return ramp
            # Without a budget this is warmup / max_steps: the plain step schedule.
            self.warmup_end = (
                self.warmup_steps / self.max_steps if not self.max_seconds else min(progress, 0.5)
            )
        return lr_multiplier(step, 0, progress, self.warmup_end, self.min_ratio)

    # -------------------------------------------------------------- hooks
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()
        for opt in trainer.optimizers:
            for group in opt.param_groups:
                group.setdefault("peak_lr", group["lr"])

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        m = self.multiplier(trainer.global_step)
        self.last_multiplier = m
        for opt in trainer.optimizers:
            for group in opt.param_groups:
                group["lr"] = group["peak_lr"] * m

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.max_seconds and self.progress(trainer.global_step) >= 1.0:
            # The budget is spent. Stop once the step just taken ran at the floor (or warm-up
            # never ended: there is nothing to anneal); the next step starts past 1, so it
            # runs at the floor.
            near = self.min_ratio + FLOOR_TOLERANCE * (1.0 - self.min_ratio)
            if self.warmup_end is None or self.last_multiplier <= near:
                trainer.should_stop = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.elapsed, self._t0 = self.seconds(), None

    # -------------------------------------------------------------- resume
    def state_dict(self) -> dict[str, Any]:
        return {"elapsed": self.seconds(), "warmup_end": self.warmup_end}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.elapsed = float(state.get("elapsed", 0.0))
        self.warmup_end = state.get("warmup_end")

    def final_lrs(self, trainer: L.Trainer) -> list[float]:
        """The learning rate of each param group at the last step taken."""
        return [
            g["peak_lr"] * self.last_multiplier for o in trainer.optimizers for g in o.param_groups
        ]
