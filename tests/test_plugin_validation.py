"""What a plugin's name or hooks may not get wrong, and how each mistake is reported: a task
name the core already registers (refused by ``new-plugin``, and never able to switch the
core's own tasks off), a misspelled hook name, a misspelled ``PLUGFORMER_LOAD_PLUGINS`` entry.

Plugins here are real entry points without installing anything: a package and a
``.dist-info`` declaring its entry point go in a temporary folder put on ``sys.path``
(what ``pip install`` would write), so discovery runs as it does for a user, in seconds.
"""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plugformer import plugins
from plugformer.errors import PlugformerError, PluginError
from tests.test_specs import run_cli as run

Install = Callable[..., None]


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """``install(name, code, entry=None)``: a distribution ``plugformer-NAME`` whose entry
    point ``entry`` (default ``NAME``) is a module holding ``code``; discoverable until the
    test ends."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    packages: list[str] = []

    def _install(name: str, code: str, entry: str | None = None) -> None:
        package = "pv_" + name.replace("-", "_")
        (site / package).mkdir()
        (site / package / "__init__.py").write_text("")
        (site / package / "plugin.py").write_text(textwrap.dedent(code))
        info = site / f"plugformer_{name.replace('-', '_')}-0.1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: plugformer-{name}\nVersion: 0.1.0\n"
        )
        (info / "entry_points.txt").write_text(
            f"[plugformer]\n{entry or name} = {package}.plugin\n"
        )
        packages.append(package)
        importlib.invalidate_caches()
        plugins.reset()

    yield _install
    for package in packages:  # the next test's plugin of the same name is a new module
        for mod in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[mod]


TAGGING = """
    from plugformer import hookimpl

    @hookimpl
    def register_tasks(register):
        register("plugformer.default_plugins.declarative:Tagging", name="tagging")
"""


# --------------------------------------------------------------------------- built-in names


@pytest.mark.parametrize("name", ["tagging", "classification", "span", "conditional-generation"])
def test_new_plugin_refuses_a_builtin_task_name(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: it wrote plugformer-tagging, whose installation broke the core's tasks."""
    code, _, err = run(capsys, "new-plugin", name, "--dir", str(tmp_path))
    assert code == 2 and f"task {name!r}" in err and "built-in" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / f"plugformer-{name}").exists()


def test_new_plugin_refuses_a_task_an_installed_plugin_registers(
    install: Install, tmp_path: Path
) -> None:
    install("acme", TAGGING.replace('"tagging"', '"acme-ner"'))
    with pytest.raises(PlugformerError, match=r"task 'acme-ner' is already registered by"):
        from plugformer.scaffold import write_plugin

        write_plugin("acme-ner", tmp_path)
    assert not (tmp_path / "plugformer-acme-ner").exists()


def test_a_plugin_reusing_a_builtin_task_name_is_the_broken_one(install: Install) -> None:
    """Before: the core's ``tasks`` plugin was marked broken too, and ``tagging`` unusable."""
    install("tagging", TAGGING)
    status = {i.name: i for i in plugins.plugin_infos()}
    assert status["tasks"].status == "ok", status["tasks"].error
    assert status["tagging"].status == "broken"
    assert "task 'tagging' is built into plugformer" in status["tagging"].error
    assert "plugformer-tagging" in status["tagging"].error
    assert plugins.tasks().owners["tagging"] == "plugformer"
    for builtin in ("tagging", "classification", "span", "conditional-generation"):
        assert plugins.get_task_class(builtin).__module__.startswith("plugformer.")


def test_the_core_keeps_its_name_whatever_the_plugin_hook_order(install: Install) -> None:
    """``trylast`` puts a plugin's implementation before the core's in pluggy's list: the core
    must still register first, so the plugin is the one that clashes."""
    install("tagging", TAGGING.replace("@hookimpl", "@hookimpl(trylast=True)"))
    status = {i.name: i for i in plugins.plugin_infos()}
    assert status["tasks"].status == "ok" and status["tagging"].status == "broken"
    assert plugins.tasks().owners["tagging"] == "plugformer"


def test_a_builtin_name_clash_is_fatal_when_strict(
    install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    install("tagging", TAGGING)
    code, _, err = run(capsys, "--strict-plugins", "plugins")
    assert code == 2 and "plugin 'tagging' (plugformer-tagging)" in err, err
    plugins.reset()
    code, out, _ = run(capsys, "plugins", "--json")
    assert code == 0
    assert {p["name"]: p["status"] for p in json.loads(out)}["tasks"] == "ok"


def test_two_plugins_registering_one_name_are_both_broken(install: Install) -> None:
    """Unchanged: between two third-party plugins neither is trusted with the name."""
    install("one", TAGGING.replace('"tagging"', '"twin"'))
    install("two", TAGGING.replace('"tagging"', '"twin"'))
    status = {i.name: i for i in plugins.plugin_infos()}
    assert status["one"].status == status["two"].status == "broken"
    assert "registered by both" in status["two"].error
    with pytest.raises(PluginError, match="registered by"):
        plugins.tasks().get("twin")
    assert status["tasks"].status == "ok"


def test_two_distributions_with_one_entry_point_name_are_reported(
    install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: the second distribution's plugin was skipped and nothing said why."""
    install("ner-a", TAGGING.replace('"tagging"', '"ner-a"'), entry="ner")
    install("ner-b", TAGGING.replace('"tagging"', '"ner-b"'), entry="ner")
    infos = {i.name: i for i in plugins.plugin_infos()}
    assert infos["ner"].status == "ok" and infos["ner"].distribution == "plugformer-ner-a"
    clash = infos["ner (plugformer-ner-b)"]
    assert clash.status == "broken" and "'plugformer-ner-a'" in clash.error, clash.error
    assert "ner-a" in plugins.tasks() and "ner-b" not in plugins.tasks()
    code, out, _ = run(capsys, "plugins", "--json", "--check")
    assert code != 0 and "already taken by distribution" in out


# --------------------------------------------------------------------------- hook names


TYPO = """
    from plugformer import hookimpl

    @hookimpl
    def register_taskz(register):
        register("plugformer.default_plugins.declarative:Tagging", name="typo-task")
"""


def test_a_misspelled_hook_is_reported_broken(
    install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``ok`` in ``plugins`` and ``plugins --check``, and rc 0 under --strict-plugins."""
    install("typo", TYPO)
    code, out, _ = run(capsys, "plugins", "--json", "--check")
    typo = {p["name"]: p for p in json.loads(out)}["typo"]
    assert code == 1 and typo["status"] == "broken"
    assert "'register_taskz'" in typo["error"] and "did you mean 'register_tasks'" in typo["error"]
    assert "\n" not in typo["error"]
    plugins.reset()
    code, _, err = run(capsys, "--strict-plugins", "plugins")
    assert code == 2 and "plugin 'typo' (plugformer-typo)" in err and "register_taskz" in err


def test_an_optional_or_renamed_hook_is_not_unknown(install: Install) -> None:
    """``optionalhook=True`` (pluggy's way to implement a hook that may not exist) and
    ``specname=`` (an implementation under another function name) stay valid."""
    install(
        "fine",
        """
        from plugformer import hookimpl

        @hookimpl(optionalhook=True)
        def register_metrics_someday(register):
            pass

        @hookimpl(specname="register_tasks")
        def add_my_tasks(register):
            pass
        """,
    )
    status = {i.name: i for i in plugins.plugin_infos()}
    assert status["fine"].status == "ok", status["fine"].error


def test_the_core_and_first_party_plugins_pass_the_hook_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "plugins", "--json", "--check")
    broken = {p["name"]: p["error"] for p in json.loads(out) if p["status"] != "ok"}
    assert code == 0 and not broken, broken


# --------------------------------------------------------------------------- PLUGFORMER_LOAD_PLUGINS


def test_an_unknown_name_in_load_plugins_is_warned_about(
    install: Install, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: nothing loaded and nothing said."""
    install("demo-ner", TAGGING.replace('"tagging"', '"demo-ner"'))
    monkeypatch.setenv("PLUGFORMER_LOAD_PLUGINS", "demo-nerr, plugformer-demo-ner")
    names = {i.name for i in plugins.plugin_infos()}
    err = capsys.readouterr().err
    assert "demo-ner" in names  # the names that do match still load
    lines = [ln for ln in err.splitlines() if "PLUGFORMER_LOAD_PLUGINS" in ln]
    assert len(lines) == 1 and "'demo-nerr'" in lines[0], err
    assert lines[0].split("installed: ", 1)[1].startswith("demo-ner,"), lines[0]
    plugins.reset()
    monkeypatch.setenv("PLUGFORMER_LOAD_PLUGINS", "demo-ner,plugformer-demo-ner")
    plugins.plugin_infos()
    assert "PLUGFORMER_LOAD_PLUGINS" not in capsys.readouterr().err  # both spellings match
    plugins.reset()
    monkeypatch.setenv("PLUGFORMER_LOAD_PLUGINS", "")  # documented: load none, silently
    assert "demo-ner" not in {i.name for i in plugins.plugin_infos()}
    assert "PLUGFORMER_LOAD_PLUGINS" not in capsys.readouterr().err
