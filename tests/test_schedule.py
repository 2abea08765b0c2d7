"""The learning-rate schedule: by steps, or by the fraction of a wall-clock budget spent."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest

from plugformer.training import schedule as sched
from plugformer.training.schedule import BudgetSchedule, lr_multiplier


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _trainer(lr: float = 1.0) -> SimpleNamespace:
    opt = SimpleNamespace(param_groups=[{"lr": lr}, {"lr": lr / 10}])
    return SimpleNamespace(optimizers=[opt], global_step=0, should_stop=False)


def _run(cb: BudgetSchedule, trainer: SimpleNamespace, clock: _Clock, step_seconds, steps: int):
    """Drive the callback as Lightning does, one optimiser step at a time."""
    cb.on_train_start(trainer, None)
    lrs = []
    for i in range(steps):
        cb.on_train_batch_start(trainer, None, None, i)
        lrs.append(trainer.optimizers[0].param_groups[0]["lr"])
        clock.now += step_seconds(i)
        trainer.global_step += 1
        cb.on_train_batch_end(trainer, None, None, None, i)
        if trainer.should_stop:
            break
    cb.on_train_end(trainer, None)
    return lrs


def test_without_a_budget_it_is_the_step_cosine() -> None:
    cb, trainer = BudgetSchedule(warmup_steps=10, max_steps=100, min_ratio=0.1), _trainer()
    lrs = _run(cb, trainer, _Clock(), lambda i: 0.0, 100)
    assert lrs[0] == pytest.approx(1 / 11)
    assert lrs[10] == pytest.approx(1.0)
    for step in (10, 40, 99):  # the closed form of warm-up + cosine over the steps
        p = (step - 10) / 90
        assert lrs[step] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))
    assert not trainer.should_stop  # Lightning's max_steps ends a step-limited run


def test_slow_steps_still_anneal_to_the_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(sched.time, "perf_counter", clock)
    cb = BudgetSchedule(warmup_steps=5, max_steps=10_000, max_seconds=60.0, min_ratio=0.05)
    trainer = _trainer(lr=2.0)
    # A machine that gets busy: 0.1 s per step for 20 s, then ten times slower.
    lrs = _run(cb, trainer, clock, lambda i: 0.1 if clock.now < 20 else 1.0, 10_000)
    assert trainer.should_stop and trainer.global_step < 10_000  # the budget ended it
    assert clock.now == pytest.approx(60.0, abs=1.0)
    assert lrs[-1] == pytest.approx(2.0 * 0.05, rel=0.02)  # at its floor, not near the peak
    assert cb.final_lrs(trainer)[1] == pytest.approx(0.2 * 0.05, rel=0.02)  # every group
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(lrs[5:]))  # decays only


def test_the_elapsed_time_survives_a_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(sched.time, "perf_counter", clock)
    cb = BudgetSchedule(warmup_steps=0, max_steps=10_000, max_seconds=100.0)
    _run(cb, _trainer(), clock, lambda i: 1.0, 30)
    state = cb.state_dict()
    assert state["elapsed"] == pytest.approx(30.0)
    resumed = BudgetSchedule(warmup_steps=0, max_steps=10_000, max_seconds=100.0)
    resumed.load_state_dict(state)
    trainer = _trainer()
    trainer.global_step = 30
    lrs = _run(resumed, trainer, clock, lambda i: 1.0, 10_000)
    assert len(lrs) == pytest.approx(70, abs=1)  # 30 + 70 seconds: the budget, not 100 more


def test_multiplier_edges() -> None:
    assert lr_multiplier(0, 4, 0.0, 0.0, 0.1) == pytest.approx(0.2)
    assert lr_multiplier(10, 4, 1.0, 0.2, 0.1) == pytest.approx(0.1)
    assert lr_multiplier(10, 4, 5.0, 0.2, 0.1) == pytest.approx(0.1)  # past the end: the floor


def test_a_loose_step_cap_cannot_keep_a_budgeted_run_warming_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Fine-tuning's warm-up is a share of the run: with a budget and a step cap far beyond
    what the minutes allow, warm-up ends at that share of the minutes, not of the cap."""
    clock = _Clock()
    monkeypatch.setattr(sched.time, "perf_counter", clock)
    cb = BudgetSchedule(
        warmup_steps=60_000, max_steps=1_000_000, max_seconds=60.0, warmup_fraction=0.05
    )
    lrs = _run(cb, _trainer(), clock, lambda i: 0.1, 1_000_000)
    assert len(lrs) == pytest.approx(600, abs=2)  # the budget ended it
    assert max(lrs) == pytest.approx(1.0, abs=0.01)  # the peak is reached…
    assert lrs.index(max(lrs)) == pytest.approx(30, abs=2)  # …after 5% of the 60 s (3 s)
    assert all(a <= b for a, b in itertools.pairwise(lrs[:30]))  # a linear ramp up to it
    assert lrs[-1] < 0.01  # and the cosine reaches the floor


def test_warmup_steps_still_end_warm_up_first_when_they_come_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(sched.time, "perf_counter", clock)
    cb = BudgetSchedule(warmup_steps=10, max_steps=1_000, max_seconds=60.0, warmup_fraction=0.5)
    lrs = _run(cb, _trainer(), clock, lambda i: 0.1, 1_000)
    assert lrs[9] < 1.0 and lrs[10] == pytest.approx(1.0, abs=0.01)


def test_a_step_stalled_past_the_budget_is_followed_by_one_at_the_floor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before: a busy machine stalled the ninth step of a 12-second budget for 10 s; it had
    started at a fifth of the anneal, the budget was spent when it ended, and the run stopped
    at 0.91 of the peak learning rate (the fast quickstart, under CI beside other work)."""
    clock = _Clock()
    monkeypatch.setattr(sched.time, "perf_counter", clock)
    cb = BudgetSchedule(warmup_steps=2, max_steps=10_000, max_seconds=12.0, min_ratio=0.1)
    trainer = _trainer(lr=1.0)
    lrs = _run(cb, trainer, clock, lambda i: 10.0 if i == 8 else 0.3, 10_000)
    assert trainer.should_stop and trainer.global_step == 10  # one step after the stalled one
    assert lrs[-2] > 0.5  # the stalled step ran far above the floor
    assert lrs[-1] == pytest.approx(0.1)  # the last one at the floor
    assert cb.final_lrs(trainer)[0] == pytest.approx(0.1)


def test_a_run_that_ends_at_its_floor_takes_no_extra_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Steps of 0.8% of the budget: the last one ran within the tolerance, so the run stops
    where it did before the rule (which stopped whatever the last step's rate)."""
    steps, default = {}, sched.FLOOR_TOLERANCE
    for tolerance in (default, 1.0):
        clock = _Clock()
        monkeypatch.setattr(sched.time, "perf_counter", clock)
        monkeypatch.setattr(sched, "FLOOR_TOLERANCE", tolerance)
        cb = BudgetSchedule(warmup_steps=2, max_steps=10_000, max_seconds=12.0, min_ratio=0.1)
        trainer = _trainer()
        _run(cb, trainer, clock, lambda i: 0.1, 10_000)
        steps[tolerance] = trainer.global_step
    assert steps[default] == steps[1.0] == pytest.approx(120, abs=1)
