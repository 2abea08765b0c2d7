"""The suite's progress lines: an ETA from the cells' fine-tuning budgets before any cell ends."""

from __future__ import annotations

from types import SimpleNamespace

from plugformer.suites.progress import Progress


def _cell(key: str, kind: str, label: str, minutes: float | None) -> SimpleNamespace:
    spec = SimpleNamespace(label=label, finetune=SimpleNamespace(max_minutes=minutes))
    return SimpleNamespace(key=key, kind=kind, spec=spec, describe=lambda: f"{label} {key}")


def test_eta_counts_budgets_first_then_learns_each_specs_overhead():
    cells = [
        _cell("a0", "model", "translation", 2.0),
        _cell("a1", "model", "translation", 2.0),
        _cell("b0", "model", "sentiment", 0.5),
        _cell("b1", "model", "sentiment", 0.5),
        _cell("z", "baseline", "sentiment", None),
    ]
    lines: list[str] = []
    progress = Progress(cells, {c.key for c in cells}, lines.append, workers=2)
    # Nothing finished: budgets only (2 + 2 + 0.5 + 0.5 minutes over 2 workers), a lower bound.
    assert progress.eta() == "≥ 0:02:30"

    record = {"main_metric": "bleu", "metrics": {"bleu": 3.0}}
    progress.done(1, cells[0], record, ran=150.0)  # 30 s beyond its 2 minutes
    # a1: 120 + 30; b0, b1: 30 + 30 each (another spec's overhead until their own is known);
    # the baseline: no baseline has finished, so it counts 0 and the ETA stays a lower bound.
    assert progress.eta() == "≥ 0:02:15"
    assert lines[-1].endswith("ETA ≥ 0:02:15")

    progress.done(2, cells[4], {"main_metric": "accuracy", "metrics": {"accuracy": 0.8}}, 10.0)
    progress.done(3, cells[2], {"main_metric": "accuracy", "metrics": {"accuracy": 0.7}}, 35.0)
    # a1: 150; b1: 30 + 5 (its own spec's overhead now): 185 s over 2 workers.
    assert progress.eta() == "0:01:32"


def test_cached_cells_and_shared_keys_do_not_count():
    cells = [_cell("a", "model", "qa", 1.0), _cell("a", "model", "qa", 1.0)]  # two labels
    progress = Progress(cells, {"a"}, lambda line: None, workers=1)
    assert progress.eta() == "≥ 0:01:00"
    progress.done(1, cells[0], {"main_metric": "f1", "metrics": {"f1": 20.0}}, ran=None)
    assert progress.eta() == "≥ 0:01:00"  # a cached report says nothing of time
    progress.done(1, cells[0], {"main_metric": "f1", "metrics": {"f1": 20.0}}, ran=70.0)
    assert progress.eta() == "0:00:00"
