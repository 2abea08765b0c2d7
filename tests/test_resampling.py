"""Intervals that resample seeds and test examples (plugformer.resampling) and the report's
paired differences: the statistics reproduce sacrebleu's corpus scores, the bootstrap is
deterministic and paired, and a clear difference is found apart while a tie is not."""

from __future__ import annotations

import random

import pytest
from sacrebleu.metrics import BLEU, CHRF

from plugformer.blocks.metrics import MeanOf
from plugformer.metrics import CorpusBLEU, CorpusCHRF
from plugformer.resampling import (
    ExampleStatistics,
    interval,
    metric_statistics,
    paired_difference,
    score,
)
from plugformer.suites.aggregate import Aggregate, paired_differences
from plugformer.suites.report import _markdown

HYPS = ["the cat sat on the mat", "a dog ran", "it is raining today", "hello there world"]
REFS = ["the cat sat on a mat", "the dog ran away", "it rains today", "hello world"]


@pytest.mark.parametrize(("metric", "reference"), [(CorpusBLEU, BLEU), (CorpusCHRF, CHRF)])
def test_sacrebleu_statistics_give_the_corpus_score(metric: type, reference: type) -> None:
    m = metric()
    m.update(HYPS[:2], REFS[:2])
    m.update(HYPS[2:], REFS[2:])  # two batches, as in evaluation
    stats = metric_statistics(m)
    assert stats is not None and len(stats.rows) == len(HYPS)
    totals = [sum(c) for c in zip(*stats.rows, strict=True)]
    expected = reference().corpus_score(HYPS, [REFS]).score
    assert score(stats.kind, totals, len(HYPS)) == pytest.approx(expected)
    assert float(m.compute()) == pytest.approx(expected)


def test_mean_of_keeps_its_examples() -> None:
    import torch

    m = MeanOf()
    m.update(torch.tensor([1.0, 0.0]))
    m.update(torch.tensor([0.5]))
    assert float(m.compute()) == pytest.approx(0.5)
    stats = metric_statistics(m)
    assert stats is not None and stats.rows == [[1.0], [0.0], [0.5]]


def _bernoulli(p: float, n: int, seed: int) -> ExampleStatistics:
    rng = random.Random(seed)
    return ExampleStatistics("mean", [[float(rng.random() < p)] for _ in range(n)])


def test_the_interval_counts_the_test_sample_not_only_the_seeds() -> None:
    # Two seeds that score alike: over seeds alone the interval would have no width; 300
    # examples at ~0.7 have a standard error of ~0.026, so a 95% interval ~0.1 wide.
    stats = [_bernoulli(0.7, 300, 0), _bernoulli(0.7, 300, 0)]
    low, high = interval(stats, 1000, 0, 0.95)
    assert 0.07 < high - low < 0.14
    assert interval(stats, 1000, 0, 0.95) == (low, high)  # fixed RNG seed


def test_paired_differences_are_paired() -> None:
    a = [_bernoulli(0.7, 200, s) for s in (1, 2)]
    diff, low, high = paired_difference(a, a, 500, 0, 0.95)
    assert (diff, low, high) == (0.0, 0.0, 0.0)  # the same draws for both columns
    better = [ExampleStatistics("mean", [[1.0]] * 200)] * 2
    diff, low, high = paired_difference(better, a, 500, 0, 0.95)
    assert diff > 0.2 and low > 0
    with pytest.raises(ValueError, match="same test examples"):
        paired_difference(a, [_bernoulli(0.5, 100, 3)], 100, 0, 0.95)


def _agg(column: str, kind: str, stats: list[ExampleStatistics]) -> Aggregate:
    agg = Aggregate("spec", "toy", column, kind, "accuracy", True, {}, {}, len(stats[0].rows))
    for seed, st in enumerate(stats):
        agg.seeds.append(seed if kind == "model" else None)
        agg.values.append(score(st.kind, [sum(r[0] for r in st.rows)], len(st.rows)))
        agg.statistics.append(st.as_dict())
    return agg


def test_report_shows_resampled_intervals_and_paired_differences() -> None:
    pretrained = _agg("pretrained", "model", [ExampleStatistics("mean", [[1.0]] * 150)] * 2)
    scratch = _agg("scratch", "model", [_bernoulli(0.5, 150, s) for s in (4, 5)])
    baseline = _agg("majority", "baseline", [_bernoulli(0.55, 150, 6)])
    aggs = [pretrained, scratch, baseline]
    assert scratch.interval_method == "seeds+examples"
    low, high = baseline.interval  # one deterministic value still has the sample's noise
    assert low < baseline.mean < high
    rows = {(r["a"], r["b"]): r for r in paired_differences(aggs)}
    assert set(rows) == {
        ("pretrained", "scratch"),
        ("pretrained", "majority"),
        ("scratch", "majority"),
    }
    assert rows[("pretrained", "scratch")]["apart"] and not rows[("scratch", "majority")]["apart"]
    records = [
        {
            "seed": s,
            "kind": a.kind,
            "column": a.column,
            "backbone": {"label": a.column, "ref": a.column},
        }
        for a in aggs[:2]
        for s in (0, 1)
    ]
    records[0] |= {
        "versions": {},
        "hardware": {"platform": "p", "cpu_count": 2, "torch_threads": 1},
        "wall_seconds": 1.0,
    }
    for r in records:
        r.setdefault("wall_seconds", 1.0)
    text = _markdown(aggs, records, type("S", (), {"name": "s", "description": ""})(), [])
    assert "resamples both the seeds and the test examples" in text
    assert "## Paired differences" in text and "**apart**" in text
    # Cells without statistics (written before them) keep the interval over seeds.
    old = Aggregate(
        "spec",
        "toy",
        "old",
        "model",
        "accuracy",
        True,
        {},
        {},
        10,
        [0, 1],
        [0.6, 0.7],
        [None, None],
    )
    assert old.interval_method == "seeds" and old.interval == pytest.approx((0.6, 0.7))


@pytest.mark.parametrize(
    ("kind", "rows"),
    [
        ("ratio", [[3.0, 4.0], [0.0, 2.0], [5.0, 5.0]]),  # word accuracy: right, words
        ("f1", [[1.0, 2.0, 1.0], [0.0, 1.0, 2.0], [2.0, 2.0, 3.0]]),  # spans right, pred, gold
        ("bleu", [[4, 3, 2, 1, 4, 3, 2, 1, 4, 4], [2, 1, 0, 0, 3, 2, 1, 0, 3, 4]]),
    ],
)
def test_resampled_scores_equal_the_metric_on_each_draw(kind: str, rows: list) -> None:
    """The vectorised resampling gives, draw by draw, what ``score`` gives on that draw."""
    import numpy as np

    from plugformer.resampling import resampled_scores

    stats = ExampleStatistics(kind, [list(map(float, r)) for r in rows])
    draws = np.random.default_rng(0).multinomial(len(rows), [1 / len(rows)] * len(rows), 20)
    got = resampled_scores([stats], draws, np.zeros((20, 1), dtype=int))
    for d, value in zip(draws, got, strict=True):
        totals = d @ np.asarray(stats.rows)
        assert value == pytest.approx(score(kind, list(totals), len(rows)))


def test_compare_runs_gives_a_paired_interval_over_seeds_and_examples(tmp_path) -> None:
    import json

    from plugformer.suites.compare import compare_runs, format_comparison

    def run(name: str, p: float) -> None:
        cells = [
            {
                "spec": "spec",
                "task": "toy",
                "column": "model",
                "kind": "model",
                "seed": seed,
                "main_metric": "accuracy",
                "higher_is_better": True,
                "metric_info": {},
                "data": {"test": "abc"},
                "n_examples": 300,
                "metrics": {"accuracy": sum(r[0] for r in st.rows) / 300},
                "example_statistics": st.as_dict(),
            }
            for seed, st in enumerate([_bernoulli(p, 300, 10), _bernoulli(p, 300, 11)])
        ]
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps({"cells": cells}))

    run("a", 0.5)
    run("b", 0.9)
    (row,) = compare_runs(tmp_path / "a", tmp_path / "b")
    assert row.delta is not None and row.interval is not None
    assert 0 < row.interval[0] < row.delta < row.interval[1]  # B is clearly better
    assert "Δ interval" in format_comparison([row], "a", "b")
