"""Typed metric information (MetricInfo) and reports of the metrics a suite names."""

from __future__ import annotations

from plugformer.metric_info import MetricInfo, normalise_metric_info
from plugformer.suites.aggregate import Aggregate, _scale
from plugformer.suites.report import _other_metrics


def test_metric_info_scale_and_json() -> None:
    mcc = MetricInfo(definition="Matthews correlation", range=(-1.0, 1.0))
    bleu = MetricInfo(definition="corpus BLEU", range=(0, 100), signature="nrefs:1|tok:13a")
    assert mcc.scale == "-1 to 1" and bleu.scale == "0 to 100, sacreBLEU"
    assert MetricInfo(definition="loss", range=(0, None), higher_is_better=False).scale == "≥ 0"
    info = normalise_metric_info({"mcc": mcc, "_task": {"labels": ["a", "b"]}})
    assert info["mcc"]["range"] == (-1.0, 1.0) and info["_task"] == {"labels": ["a", "b"]}
    # reports read the typed range, not a guess from the text; old string entries still work
    assert _scale({"mcc": mcc.as_json()}, "mcc") == "-1 to 1"
    assert _scale({"accuracy": "fraction correct (0-1)"}, "accuracy") == "0 to 1"


def test_report_shows_the_metrics_a_suite_names() -> None:
    records = [
        {
            "spec": "nli",
            "column": "pretrained",
            "kind": "model",
            "metrics": {"accuracy": a, "macro_f1": f},
        }
        for a, f in [(0.8, 0.7), (0.9, 0.75)]
    ] + [
        {
            "spec": "nli",
            "column": "majority",
            "kind": "baseline",
            "metrics": {"accuracy": 0.4, "macro_f1": 0.2},
        }
    ]
    aggs = [
        Aggregate("nli", "classification", c, k, "accuracy", True, {}, {}, 10)
        for c, k in [("pretrained", "model"), ("majority", "baseline")]
    ]
    cols = [("pretrained", "model"), ("majority", "baseline")]
    lines = _other_metrics(aggs, records, ["accuracy", "macro_f1", "mcc"], cols)
    rows = [ln for ln in lines if ln.startswith("| nli")]
    assert len(rows) == 1 and "macro_f1" in rows[0]  # main metric and unreported mcc left out
    assert "0.725 [" in rows[0] and rows[0].endswith("| 0.2 |")
    assert _other_metrics(aggs, records, [], cols) == []
