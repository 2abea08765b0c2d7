"""The plugin system: discovery through real entry points, isolation of broken plugins,
API-version checks, duplicate names, listing, tracing, and the documented hook contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plugformer import hookimpl, plugins
from plugformer.errors import PluginError

PLUGFORMER = [sys.executable, "-m", "plugformer"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*PLUGFORMER, *args], capture_output=True, text=True, env=full_env, timeout=120
    )


# A throwaway third-party distribution with one good plugin and one of each kind of broken one.
MODULES = {
    "good": """
        from plugformer import hookimpl
        from plugformer.tasks import Task
        PLUGFORMER_API = ">=1,<2"

        class EchoTask(Task):
            name = "echo"
            main_metric = "accuracy"

        @hookimpl
        def register_tasks(register):
            register(EchoTask)
    """,
    "importfail": "import a_module_that_does_not_exist\n",
    "badsig": """
        from plugformer import hookimpl

        @hookimpl
        def register_tasks(register, not_an_argument_of_the_hook):
            pass
    """,
    "oldapi": """
        from plugformer import hookimpl
        PLUGFORMER_API = ">=7,<8"

        @hookimpl
        def register_tasks(register):
            pass
    """,
    "twin": """
        from plugformer import hookimpl

        @hookimpl
        def register_tasks(register):
            register("pt_thirdparty.good:EchoTask", name="echo-twin")
    """,
    "dup": """
        from plugformer import hookimpl

        @hookimpl
        def register_tasks(register):
            register("pt_thirdparty.good:EchoTask", name="echo-twin")
    """,
    "numapi": """
        from plugformer import hookimpl
        PLUGFORMER_API = 2

        @hookimpl
        def register_tasks(register):
            pass
    """,
    "badkw": """
        from plugformer import hookimpl

        @hookimpl
        def register_specs(register):
            register(".", knd="suite")
    """,
    "raiser": """
        from plugformer import hookimpl

        @hookimpl
        def register_datasets(register):
            raise RuntimeError("the registry server is down")
    """,
}


@pytest.fixture(scope="module")
def thirdparty(tmp_path_factory: pytest.TempPathFactory):
    """pip-install the throwaway distribution (real entry-point metadata), uninstall after."""
    root = tmp_path_factory.mktemp("thirdparty")
    pkg = root / "src" / "pt_thirdparty"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name, code in MODULES.items():
        (pkg / f"{name}.py").write_text(textwrap.dedent(code))
    eps = "\n".join(f'tp-{name} = "pt_thirdparty.{name}"' for name in MODULES)
    (root / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "pt-thirdparty"
        version = "1.2.3"
        [project.entry-points.plugformer]
        """)
        + eps
        + '\n[tool.setuptools.packages.find]\nwhere = ["src"]\n'
    )
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        str(root),
    ]
    subprocess.run(pip, check=True, capture_output=True)
    try:
        yield root
    finally:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "pt-thirdparty"],
            check=True,
            capture_output=True,
        )


@pytest.mark.slow
def test_installed_plugin_is_discovered_and_broken_ones_are_isolated(thirdparty: Path) -> None:
    res = cli("plugins", "--json")
    assert res.returncode == 0, res.stderr
    listed = {p["name"]: p for p in json.loads(res.stdout)}
    good = listed["tp-good"]
    assert (
        good["status"] == "ok"
        and good["distribution"] == "pt-thirdparty"
        and good["version"] == "1.2.3"
    )
    assert good["provides"]["tasks"] == ["echo"] and good["hooks"] == ["register_tasks"]
    reasons = {
        name: listed[f"tp-{name}"]["error"]
        for name in ("importfail", "badsig", "oldapi", "numapi", "badkw", "dup", "twin", "raiser")
    }
    assert all(listed[f"tp-{n}"]["status"] == "broken" for n in reasons)
    assert "import failed: ModuleNotFoundError" in reasons["importfail"]
    # ... naming the plugin's own line, where its author has to look
    assert reasons["importfail"].endswith("importfail.py:1)"), reasons["importfail"]
    assert "raiser.py:6)" in reasons["raiser"], reasons["raiser"]
    assert (
        "bad hook implementation" in reasons["badsig"]
        and "not_an_argument_of_the_hook" in reasons["badsig"]
    )
    assert "needs plugin API >=7,<8" in reasons["oldapi"] and "provides API 1" in reasons["oldapi"]
    # Not a string: reported like any other broken plugin, not fatal to the CLI (it was).
    assert "PLUGFORMER_API must be a string" in reasons["numapi"] and "not 2" in reasons["numapi"]
    # A duplicate task name names both registrations; neither plugin's task is usable.
    assert (
        "'echo-twin'" in reasons["dup"]
        and "plugin tp-dup" in reasons["dup"]
        and "plugin tp-twin" in reasons["dup"]
    )
    assert reasons["twin"] == reasons["dup"]
    assert "the registry server is down" in reasons["raiser"]
    # A misspelt keyword is refused, not dropped (it registered task specs as such before).
    assert "unexpected keyword 'knd' (did you mean 'kind'?)" in reasons["badkw"]
    # Listing and unknown names say which plugins are broken: one that failed to import
    # registers no name, so "unknown name" alone would send its author looking for a typo.
    listing = cli("tasks")
    assert listing.returncode == 0 and "(plugin tp-importfail) is broken" in listing.stderr
    unknown = cli("finetune", "a-spec-of-tp-importfail")
    assert unknown.returncode == 2 and "broken plugins, which may provide it" in unknown.stderr
    assert "tp-importfail" in unknown.stderr and len(unknown.stderr.strip().splitlines()) == 1
    # The core's own plugins still work beside the broken ones.
    assert listed["corpora"]["status"] == "ok"
    # ... and the CLI as a whole still works.
    assert cli("--help").returncode == 0
    strict = cli("--strict-plugins", "plugins")
    assert strict.returncode != 0 and "plugformer: error: plugin" in strict.stderr
    assert "Traceback" not in strict.stderr
    assert cli("plugins", env={"PLUGFORMER_STRICT_PLUGINS": "1"}).returncode != 0
    # A plugin that fails to import is found while the CLI builds its commands, before the
    # flag is read: the flag and the variable must still make it fatal, in one line.
    only = {"PLUGFORMER_LOAD_PLUGINS": "tp-importfail"}
    for res in (
        cli("--strict-plugins", "plugins", env=only),
        cli("plugins", env={**only, "PLUGFORMER_STRICT_PLUGINS": "1"}),
    ):
        assert res.returncode == 2 and "tp-importfail" in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


@pytest.mark.slow
def test_load_only_selected_plugins(thirdparty: Path) -> None:
    res = cli("plugins", "--json", env={"PLUGFORMER_LOAD_PLUGINS": "tp-good"})
    names = {p["name"] for p in json.loads(res.stdout)}
    assert "tp-good" in names and "tp-raiser" not in names
    res = cli("plugins", "--json", env={"PLUGFORMER_LOAD_PLUGINS": ""})
    assert {p["name"] for p in json.loads(res.stdout)} == {
        "backbones",
        "objectives",
        "corpora",
        "hf",
        "decoding",
        "configs",
        "tasks",
        "encdec",
        "commands",
    }


def test_tracing_prints_hook_calls() -> None:
    res = cli("plugins", env={"PLUGFORMER_TRACE_PLUGINS": "1", "PLUGFORMER_LOAD_PLUGINS": ""})
    assert res.returncode == 0
    assert "[plugformer] hook" in res.stderr and " ms" in res.stderr


def test_help_and_plugin_listing_do_not_import_torch() -> None:
    code = textwrap.dedent("""
        import sys
        from plugformer.cli.main import main
        for argv in (["--help"], ["plugins", "--json"]):
            try:
                main(argv)
            except SystemExit:
                pass
        print("torch" in sys.modules, "lightning" in sys.modules, file=sys.stderr)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.stderr.strip().splitlines()[-1] == "False False"


class InProcess:
    """An in-process plugin (tests register throwaway plugins rather than installing them)."""

    PLUGFORMER_API = ">=1,<2"

    @hookimpl
    def register_objectives(self, register):
        from plugformer.training.objectives import CausalLM

        register("clm-again", CausalLM(name="clm-again"))


def test_in_process_registration_and_conflicts() -> None:
    plugins.register_plugin(InProcess(), "inproc")
    assert "clm-again" in plugins.objectives().names()
    plugins.unregister_plugin("inproc")
    assert "clm-again" not in plugins.objectives().names()
    reg = plugins.Registry("task")
    reg.add("x", object(), "dist-a")
    with pytest.raises(PluginError, match="registered by both 'dist-a' and 'dist-b'"):
        reg.add("x", object(), "dist-b")
    with pytest.raises(PluginError, match="did you mean 'x'"):
        reg.get("xx")


def test_every_hook_is_documented() -> None:
    """Every hookspec has a docstring that documents each argument (datasette's habit)."""
    import inspect

    from plugformer import hookspecs

    specs = [
        f for name, f in vars(hookspecs).items() if callable(f) and hasattr(f, "plugformer_spec")
    ]
    assert len(specs) >= 7
    readme = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()
    for fn in specs:
        doc = inspect.getdoc(fn) or ""
        assert len(doc) > 80, f"hook {fn.__name__} lacks documentation"
        for arg in inspect.signature(fn).parameters:
            assert f":param {arg}:" in doc, f"hook {fn.__name__}: argument {arg!r} undocumented"
        assert f"`{fn.__name__}" in readme, f"hook {fn.__name__} missing from docs/plugins.md"


@pytest.mark.slow
def test_new_plugin_scaffold_installs_lists_and_passes_its_own_tests(tmp_path: Path) -> None:
    res = cli("new-plugin", "demo-ner", "--dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    root = tmp_path / "plugformer-demo-ner"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "-e",
        str(root),
    ]
    subprocess.run(pip, check=True, capture_output=True)
    try:
        listed = {p["name"]: p for p in json.loads(cli("plugins", "--json").stdout)}
        assert listed["demo-ner"]["status"] == "ok" and listed["demo-ner"]["provides"]["tasks"] == [
            "demo-ner"
        ]
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root)],
            capture_output=True,
            text=True,
            cwd=root,
            timeout=300,
        )
        assert tests.returncode == 0, tests.stdout[-2000:]
        assert " passed" in tests.stdout
    finally:
        subprocess.run(
            [sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "plugformer-demo-ner"],
            capture_output=True,
        )
    assert cli("new-plugin", "Bad_Name", "--dir", str(tmp_path)).returncode == 2
