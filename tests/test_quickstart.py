"""The default job: no evaluation data leaks into pretraining; --fast runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugformer.suites import quickstart as qs


def test_corpus_uses_training_splits_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = []

    def fake_load_split(name: str, split: str) -> list[dict]:
        calls.append((name, split))
        if name == "news-2017-en":
            return [{"id": "a1", "title": "T", "subtitle": "", "text": "news body"}]
        if name == "bible-en-es":
            return [{"id": "Gen.1.1", "source": "In the beginning", "target": "En el principio"}]
        return [{"id": "hamlet", "text": "To be, or not to be"}]

    monkeypatch.setattr("plugformer.data.cache.load_split", fake_load_split)
    counts = qs.build_corpus(tmp_path / "c.jsonl")
    assert {split for _, split in calls} == {"train"}
    assert counts == {"news": 1, "bible-en": 1, "bible-es": 1, "shakespeare": 1}
    docs = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert {"En el principio", "In the beginning"} <= {d["text"] for d in docs}


@pytest.mark.network
@pytest.mark.slow
def test_no_evaluated_article_or_verse_is_in_the_pretraining_corpus() -> None:
    from plugformer.data.cache import load_split

    docs = list(qs.corpus_documents())
    news_ids = {d["id"].split(":", 1)[1] for d in docs if d["id"].startswith("news:")}
    texts = {d["text"] for d in docs}
    for recipe in ("news-cloze-qa", "news-headlines"):
        for split in ("validation", "test"):
            held_out = {str(r["article_id"]) for r in load_split(recipe, split)}
            assert held_out and not held_out & news_ids, (recipe, split)
    chapters = {d["id"].split(":", 1)[1] for d in docs if d["id"].startswith("bible-")}
    corpus_text = "\n".join(t for t in texts if len(t) > 0)
    train_verses = {r["target"] for r in load_split("bible-en-es", "train")}
    for split in ("validation", "test"):
        rows = load_split("bible-en-es", split)
        assert rows
        # A held-out verse may share its chapter with training verses, but never its text —
        # unless the Bible itself repeats that text in a training verse (Numbers 7 repeats
        # each tribe's offering word for word).
        leaked = [
            r["id"]
            for r in rows[:800]
            if len(r["target"]) > 40
            and r["target"] in corpus_text
            and r["target"] not in train_verses
        ]
        assert not leaked, leaked[:5]
    assert chapters


@pytest.mark.network
@pytest.mark.slow
def test_fast_quickstart_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PLUGFORMER_JOB_START", raising=False)  # the deadline counts from now
    result = qs.quickstart(minutes=0.5, fast=True, out=tmp_path / "qs")
    report = (tmp_path / "qs" / "report.md").read_text()
    for task in ("sentiment", "qa", "translation", "generation"):
        assert task in report
    assert set(result["pretrained"]) == {"text+tasks", "text"}
    for info in result["pretrained"].values():
        assert info["heldout_news"]["model_bpb"] > 0
        summary = info["summary"]  # the budget ran out and the schedule reached its floor
        assert summary["final_lr"] == pytest.approx(summary["min_lr"], rel=0.05)
    mixture = result["pretrained"]["text+tasks"]["summary"]["mixture"]
    assert {k for k in mixture if k.startswith("task:")} == {
        "task:sentiment-smoke",
        "task:qa-smoke",
        "task:translation-smoke",
        "task:generation-smoke",
    }
    assert result["pretrained"]["text"]["summary"]["mixture"] is None
    deadline = result["deadline"]  # minutes to spare: the fast suite keeps its own scale
    assert deadline["scale"] == deadline["suite_scale"] and deadline["left_minutes"] > 20
    assert 0 < result["total_seconds"] <= result["job_seconds"]
    assert list(Path(result["suite_dir"]).glob("*.png"))
    assert list((Path(result["suite_dir"]) / "predictions").glob("*.jsonl"))
    # The machine the figures depend on: the precision "auto" trained in, and the report says so.
    from plugformer.training.common import resolve_precision

    hardware = result["hardware"]
    assert hardware["training_precision"] == resolve_precision("auto")
    assert hardware["cpu_capability"] and hardware["cpu"]
    assert f"training in {hardware['training_precision']}" in report


@pytest.mark.network
@pytest.mark.slow
def test_no_evaluated_example_of_a_mixed_task_is_in_the_pretraining_mix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Task-aware pretraining reads training splits only: no validation or test example of
    any task the quickstart mixes in becomes a pretraining document."""
    import plugformer.training.finetune as ft
    from plugformer.config import PretrainConfig, load_config
    from plugformer.data.mixture import task_sources
    from plugformer.specs import resolve

    cfg = load_config(resolve("quickstart-anneal", "pretrain"), PretrainConfig)
    splits, real = [], ft.load_examples

    def spy(task, spec, split):
        splits.append(split)
        return real(task, spec, split)

    monkeypatch.setattr(ft, "load_examples", spy)
    sources = task_sources(cfg.data.tasks)
    assert {s.task for s in sources} == {"translation", "generation", "qa", "sentiment"}
    assert set(splits) == {"train"}
    monkeypatch.setattr(ft, "load_examples", real)
    for mix, source in zip(cfg.data.tasks, sources, strict=True):
        spec = load_config(resolve(mix.spec, "task"), ft.TaskSpec)
        task = ft.build_task(spec.task, spec.options, None)
        spec.data.max_train = None
        assert set(source.documents) <= set(task.pretrain_documents(real(task, spec, "train")))
        for split in ("validation", "test"):
            spec.data.max_eval = spec.data.max_test = None
            held = set(task.pretrain_documents(real(task, spec, split)))
            # Only texts the data itself repeats across splits may appear (Numbers 7 repeats
            # each tribe's offering word for word; two reviews may share a sentence): a held-out
            # split that leaked in would overlap entirely.
            shared = held & set(source.documents)
            assert held and len(shared) <= 0.01 * len(held), (source.name, split, len(shared))


def test_update_readme_writes_only_the_named_readme_and_its_plots(tmp_path: Path) -> None:
    """``--update-readme PATH``: the section between the markers, plots beside that README."""
    readme = tmp_path / "repo" / "README.md"
    readme.parent.mkdir()
    readme.write_text(f"# Title\n\nkept\n\n{qs.BEGIN}\nold\n{qs.END}\n\ntail\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "main_metric.png").write_bytes(b"\x89PNG")
    result = {
        "date": "2026-01-01",
        "hardware": {"cpus": 2, "machine": "x86_64", "python": "3.11"},
        "stage_seconds": {"data": 1.0},
        "minutes": 1.0,
        "pretrained": {
            "text": {
                "summary": {
                    "steps": 5,
                    "total_steps": 9,
                    "trunk": {"steps": 4},
                    "total_train_seconds": 60.0,
                    "n_params": 1000,
                    "final_lr": 1e-4,
                    "min_lr": 1e-4,
                },
                "heldout_news": {
                    "model_bpb": 1.5,
                    "kneser_ney_trigram_bpb": 1.6,
                    "unigram_bpb": 2.0,
                },
            }
        },
    }
    qs.update_readme_section(readme, result, "# Suite\n\n| task | x |", run_dir)
    text = readme.read_text()
    assert text.startswith("# Title\n\nkept\n") and text.endswith("\n\ntail\n")
    assert "old" not in text and "| task | x |" in text and "2026-01-01" in text
    assert (readme.parent / "docs" / "quickstart" / "main_metric.png").is_file()
    assert "![main_metric](docs/quickstart/main_metric.png)" in text


def test_the_help_states_the_default_pretraining_minutes() -> None:
    """``--minutes`` defaults to the library's ``MINUTES``; its help says the same number."""
    from click.testing import CliRunner

    from plugformer.cli.quickstart import quickstart

    result = CliRunner().invoke(quickstart, ["--help"])
    assert result.exit_code == 0
    assert f"[default: {qs.MINUTES:g}," in " ".join(result.output.split())
    assert f"[default: {qs.DEADLINE_MINUTES:g}]" in " ".join(result.output.split())


def test_the_deadline_shrinks_the_suite_budgets_to_fit_never_below_the_specs() -> None:
    fit = qs.fit_budget_scale
    ref = qs.REFERENCE_STEPS_PER_MINUTE
    assert fit(30.0, 17.7, 2, 1.4, ref) == 1.4  # time to spare: the suite's own scale
    # the reference machine with 20 minutes left: (20.0 - 9.85) / (17.7 / 2)
    assert qs.suite_overhead(ref) == pytest.approx(9.85)
    assert fit(20.0, 17.7, 2, 1.4, ref) == pytest.approx(10.15 / 8.85, abs=1e-3)
    # 3c6c32d's fast day (2,152 steps in 4.5 minutes) measured 5.60 minutes of overhead;
    # translation's test set since (more verses, then beam search over 1,000) adds ~1.8: the
    # estimate is a little above 5.6 + 1.8 (a margin), and the scale that fills its 18.45
    # minutes left is (18.45 - 7.56) / (19.5 / 2)
    assert 7.4 < qs.suite_overhead(2152 / 4.5) == pytest.approx(7.56, abs=0.01)
    assert fit(18.45, 19.5, 2, 1.4, 2152 / 4.5) == pytest.approx(10.89 / 9.75, abs=3e-3)
    # a machine that pretrained 30% fewer steps a minute: the variable part grows by 1/0.7
    slow = fit(22.0, 17.7, 2, 1.4, ref * 0.7)
    overhead = qs.SUITE_OVERHEAD_FIXED_MINUTES + qs.SUITE_OVERHEAD_MINUTES / 0.7
    assert slow == pytest.approx((22.0 - overhead) / 8.85, abs=2e-3)
    assert fit(5.0, 17.7, 2, 1.4, ref) == qs.MIN_BUDGET_SCALE  # late: the specs' own minutes


def test_the_job_starts_when_make_says(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("PLUGFORMER_JOB_START", "1700000000")
    assert qs.job_start() == 1700000000.0
    monkeypatch.setenv("PLUGFORMER_JOB_START", "soon")
    assert abs(qs.job_start() - time.time()) < 5
    monkeypatch.delenv("PLUGFORMER_JOB_START")
    assert abs(qs.job_start() - time.time()) < 5


def test_the_suite_budget_follows_the_minutes_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a fresh clone's ``make quickstart`` does before its suite: the default suite's
    budgets (17.7 minutes on 2 workers) against the minutes the deadline leaves."""
    import time

    import plugformer.suites.bench as bench

    monkeypatch.setattr(bench, "budget_minutes", lambda *a, **k: (17.7, 2))
    suite, ref = qs._named("suite", "default"), qs.REFERENCE_STEPS_PER_MINUTE
    roomy = qs._suite_budget(suite, None, {}, time.time() - 4 * 60, 29.0, ref)
    assert roomy["scale"] == roomy["suite_scale"] == 1.4 and roomy["left_minutes"] > 24
    late = qs._suite_budget(suite, None, {}, time.time() - 9 * 60, 29.0, ref)
    assert late["scale"] == pytest.approx((20.0 - qs.suite_overhead(ref)) / 8.85, abs=0.01)
    assert "cut alike" in late["reason"]
    for off in (None, 0):
        none = qs._suite_budget(suite, None, {}, time.time() - 60 * 60, off, ref)
        assert none["scale"] == 1.4 and "no deadline" in none["reason"]


def test_text_anneals_as_many_steps_as_text_and_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two backbones differ only in what their annealing reads: ``text`` gets the steps
    ``text+tasks`` took in its minutes (a machine whose speed varies between the two phases
    must not give one more tokens), capped at MATCH_CAP times those minutes."""
    import plugformer.training.pretrain as pretrain_module

    runs: list[object] = []

    def fake_pretrain(cfg: object) -> dict[str, object]:
        runs.append(cfg)
        steps = {1: 120, 2: 37}.get(len(runs), 99)  # trunk, text+tasks, text
        return {"checkpoint": str(tmp_path / f"run{len(runs)}"), "steps": steps,
                "train_seconds": 60.0, "tokens_per_second": 1000.0, "threads": 2}  # fmt: skip

    monkeypatch.setattr(pretrain_module, "pretrain", fake_pretrain)
    result = qs.pretrain_backbones(tmp_path, tmp_path / "corpus.jsonl", 4.0, True, lambda m: None)
    trunk, tasks, text = runs
    anneal = 4.0 * (1 - qs.TRUNK_SHARE)
    assert trunk.trainer.max_minutes == pytest.approx(4.0 * qs.TRUNK_SHARE)
    assert tasks.trainer.max_minutes == pytest.approx(anneal) and tasks.data.tasks
    assert text.trainer.max_steps == 37 and text.data.tasks == []
    assert text.trainer.max_minutes == pytest.approx(anneal * qs.MATCH_CAP)
    assert text.init_from == tasks.init_from == str(tmp_path / "run1")
    assert result["text"]["total_steps"] == 120 + 99
