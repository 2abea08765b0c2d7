"""Named config files: task specs, suites and pretraining configs found by name through the
``register_specs`` hook, listed by ``plugformer tasks`` / ``suites``, clashes reported."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from plugformer import hookimpl, plugins, specs
from plugformer.cli.main import main
from plugformer.config import PretrainConfig, TaskSpec, load_config
from plugformer.errors import ConfigError, PluginError
from plugformer.specs import load_task_spec
from plugformer.suites.config import load_suite, spec_path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {
    p.stem: f"plugformer-{p.parts[-5]}" for p in ROOT.glob("plugins/*/src/*/specs/*.toml")
}
"""Every task spec file of the first-party plugins (name → distribution), read off the tree."""


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_tasks_json_lists_every_first_party_spec_with_task_dataset_and_distribution(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert len(FIRST_PARTY) >= 9
    code, out, _ = run_cli(capsys, "tasks", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert {n: r["distribution"] for n, r in rows.items() if n in FIRST_PARTY} == FIRST_PARTY
    for name, row in rows.items():
        raw = TaskSpec.model_validate(__import__("tomllib").loads(Path(row["path"]).read_text()))
        assert (row["task"], row["dataset"]) == (raw.task, raw.data.dataset), name
    code, out, _ = run_cli(capsys, "tasks")
    assert code == 0 and "movie-reviews" in out and "plugformer-sentiment" in out
    # tasks no spec names (the core's bases; a new plugin's task) are listed too
    bare = next(ln for ln in out.splitlines() if ln.startswith("tasks without a named spec:"))
    assert "tagging" in bare and "sentiment" not in bare


def test_suites_lists_the_core_suites_and_their_specs_resolve_by_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(capsys, "suites", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert {"default", "smoke", "quickstart-fast", "minilm"} <= set(rows)
    for name, row in rows.items():
        assert row["distribution"] == "plugformer"
        suite_file = specs.resolve(name, "suite")
        suite = load_suite(suite_file)
        for entry in suite.tasks:
            assert not specs.is_path(entry), f"suite {name}: {entry!r} should be a spec name"
            assert spec_path(suite_file, entry) == specs.resolve(entry, "task")


def test_every_named_config_validates() -> None:
    for item in plugins.named_specs("pretrain").all():
        load_config(item.path, PretrainConfig)
    for item in plugins.named_specs("task").all():
        assert load_config(item.path, TaskSpec).task in plugins.tasks()
    assert {"default", "quickstart", "quickstart-fast", "tiny"} <= set(
        plugins.named_specs("pretrain").names()
    )


def test_a_name_works_where_a_file_does(tmp_path: Path) -> None:
    spec = load_task_spec("sentiment-smoke", None, ("finetune.max_steps=3",))
    assert (spec.task, spec.name, spec.finetune.max_steps) == ("sentiment", "sentiment-smoke", 3)
    # A file path still works, and wins over a name.
    copy = tmp_path / "movie-reviews.toml"
    copy.write_text('task = "qa"\n[data]\ndataset = "news-cloze-qa"\n')
    assert load_task_spec(str(copy), None, ()).task == "qa"
    # The shorthand (a task name with --data) is untouched.
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "good", "label": "positive"}\n')
    assert load_task_spec("sentiment", data, ()).data.train == str(data)
    assert specs.resolve("tiny", "pretrain").name == "tiny.toml"


def test_unknown_names_are_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match=r"did you mean 'movie-reviews'\?.*plugformer tasks"):
        specs.resolve("movie-review", "task")
    code, _, err = run_cli(capsys, "finetune", "movie-review")
    assert code == 2 and "did you mean 'movie-reviews'" in err and len(err.splitlines()) == 1
    code, _, err = run_cli(capsys, "pretrain", "tinyy")
    assert code == 2 and "did you mean 'tiny'" in err
    code, _, err = run_cli(capsys, "bench", "defualt")
    assert code == 2 and "did you mean 'default'" in err and "plugformer suites" in err
    # run's options before the suite: "No such option '--seeds'" before
    code, _, err = run_cli(capsys, "bench", "--seeds", "1", "defualt")
    assert code == 2 and "did you mean 'default'" in err


class ShipsSpecs:
    """A throwaway plugin shipping a spec folder (and, in the clash test, a clashing name)."""

    PLUGFORMER_API = ">=1,<2"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @hookimpl
    def register_specs(self, register: Any) -> None:
        register(self.folder)
        register(self.folder / "suites" / "suite.toml", kind="suite", name="mine")


def test_a_plugin_ships_specs_and_a_suite_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "reviews-tiny.toml").write_text(
        'task = "sentiment"\n[data]\ndataset = "movie-review-sentences"\nmax_train = 10\n'
    )
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "suite.toml").write_text(
        'tasks = ["reviews-tiny", "qa-smoke"]\nbackbones = [{name = "b", ref = "x"}]\n'
    )
    plugins.register_plugin(ShipsSpecs(tmp_path), "ships", "plugformer-ships")
    try:
        assert load_task_spec("reviews-tiny", None, ()).data.max_train == 10
        suite_file = specs.resolve("mine", "suite")
        entries = [spec_path(suite_file, e) for e in load_suite(suite_file).tasks]
        assert entries == [tmp_path / "reviews-tiny.toml", specs.resolve("qa-smoke", "task")]
        code, out, _ = run_cli(capsys, "tasks", "--json")
        assert code == 0
        mine = next(r for r in json.loads(out) if r["name"] == "reviews-tiny")
        assert mine["distribution"] == "plugformer-ships" and mine["task"] == "sentiment"
        info = next(i for i in plugins.plugin_infos() if i.name == "ships")
        assert info.provides == {"specs": ["reviews-tiny"], "suites": ["mine"]}
        # A registered spec is validated as the kind it is registered as, even with its
        # `task` key misspelt (its keys alone would have made it a pretraining config).
        spec_file = tmp_path / "reviews-tiny.toml"
        spec_file.write_text(spec_file.read_text().replace("task =", "taks ="))
        code, _, err = run_cli(capsys, "config", "validate", "reviews-tiny")
        assert code == 2 and "unknown key 'taks' (did you mean 'task'?)" in err, err
    finally:
        plugins.unregister_plugin("ships")


def test_a_name_clash_between_distributions_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "movie-reviews.toml").write_text(
        'task = "sentiment"\n[data]\ndataset = "movie-review-sentences"\n'
    )
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "suite.toml").write_text(
        'tasks = ["x"]\nbackbones = [{name = "b", ref = "x"}]\n'
    )
    plugins.register_plugin(ShipsSpecs(tmp_path), "impostor", "plugformer-impostor")
    try:
        with pytest.raises(PluginError, match=r"plugformer-sentiment.*plugformer-impostor"):
            specs.resolve("movie-reviews", "task")
        status = {i.name: i for i in plugins.plugin_infos()}
        assert status["impostor"].status == "broken"
        assert "registered by both" in status["impostor"].error
        code, _, err = run_cli(capsys, "tasks")
        assert "'movie-reviews' is registered by" in err
        code, _, err = run_cli(capsys, "finetune", "movie-reviews")
        assert code == 2 and "plugformer-impostor" in err
    finally:
        plugins.unregister_plugin("impostor")


class ClaimsSentiment:
    """A throwaway plugin registering the task name ``sentiment``, which breaks it and
    plugformer-sentiment alike."""

    PLUGFORMER_API = ">=1,<2"

    @hookimpl
    def register_tasks(self, register: Any) -> None:
        register("plugformer_sentiment.task:SentimentTask", name="sentiment")


def test_the_specs_of_a_broken_plugin_say_it_is_broken(
    capsys: pytest.CaptureFixture[str],
) -> None:
    plugins.register_plugin(ClaimsSentiment(), "claims", "plugformer-claims")
    try:
        assert "movie-reviews" not in plugins.named_specs("task")
        with pytest.raises(PluginError, match=r"'movie-reviews' comes from plugformer-sentiment"):
            specs.resolve("movie-reviews", "task")
        with pytest.raises(PluginError, match=r"dataset 'movie-review-sentences'.*broken"):
            plugins.datasets().get("movie-review-sentences")
        from plugformer.data.cache import resolve_recipe  # the path `data get` and specs take

        with pytest.raises(PluginError, match=r"comes from plugformer-sentiment.*broken"):
            resolve_recipe("movie-review-sentences")
        code, out, err = run_cli(capsys, "tasks", "--json")
        assert code == 0 and "movie-reviews" not in out
        assert "not listed, because plugformer-sentiment (plugin sentiment) is broken" in err
        assert "movie-reviews" in err and "plugformer plugins" in err
        code, _, err = run_cli(capsys, "finetune", "movie-reviews")
        assert code == 2 and "neither a spec file" not in err
        assert "comes from plugformer-sentiment" in err and "registered by both" in err
    finally:
        plugins.unregister_plugin("claims")
    assert "movie-reviews" in plugins.named_specs("task")


def test_a_bad_registration_is_one_broken_plugin(tmp_path: Path) -> None:
    plugins.register_plugin(ShipsSpecs(tmp_path / "missing"), "nofiles", "plugformer-nofiles")
    try:
        status = {i.name: i for i in plugins.plugin_infos()}
        assert status["nofiles"].status == "broken"
        assert "neither a file nor a folder" in status["nofiles"].error
        assert status["sentiment"].status == "ok"
        assert "movie-reviews" in plugins.named_specs("task")
    finally:
        plugins.unregister_plugin("nofiles")


def test_no_library_path_depends_on_the_repository_layout() -> None:
    """The library finds its files through package data, never from a checkout's folders."""
    sources = [*ROOT.glob("core/src/**/*.py"), *ROOT.glob("plugins/*/src/**/*.py")]
    assert len(sources) > 30
    offenders = [
        str(p.relative_to(ROOT))
        for p in sources
        if "parents[" in (text := p.read_text(encoding="utf-8")) or re.search(r"\bREPO\b", text)
    ]
    assert not offenders


def test_config_validate_takes_a_name_without_kind(capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `config validate smoke` (no --kind) ended in "unexpected error: AttributeError:
    module 'plugformer.specs' has no attribute 'KINDS'"."""
    code, _, err = run_cli(capsys, "config", "validate", "smoke")
    assert code == 0 and "valid suite config" in err
    code, _, err = run_cli(capsys, "config", "validate", "sentiment-smoke")
    assert code == 0 and "valid task config" in err
