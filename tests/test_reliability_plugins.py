"""Issue 20, "Reliability, round two", finding 6: plugins. One test (or a few) per finding of the
hostile-user attack, each reproducing the attack: a plugin editing a result gets a copy; one
that raises in a hook or a callback, hangs in a registration hook or would replace a core
command is named and left out. Findings 3, 4, 6 and 7 are in the four test_reliability_*.py
files; signals (1) are in test_signals.py; QA memory (5) and the SQuAD metric (8) in
plugins/qa/tests; bench cells (2) in bench/test_cache.py."""

from __future__ import annotations

import json
import sys
import time
import types
from pathlib import Path
from typing import Any

import click
import pytest

from plugformer import hook_calls, hookimpl, plugins
from plugformer.config import TaskSpec
from plugformer.errors import PlugformerError, PluginError
from tests import test_plugin_validation
from tests.test_plugin_validation import Install
from tests.test_specs import run_cli as run


def test_on_result_gets_a_copy() -> None:
    """Before: a plugin editing the result changed what evaluate printed and the cache stored."""
    plugin = types.ModuleType("vandal")

    @hookimpl
    def on_result(result: dict[str, Any]) -> None:
        result["metrics"]["accuracy"] = 1.0
        result.clear()

    plugin.on_result = on_result  # type: ignore[attr-defined]
    plugins.register_plugin(plugin, "vandal")
    result = {"metrics": {"accuracy": 0.5}}
    hook_calls.call_on_result(result)
    assert result == {"metrics": {"accuracy": 0.5}}


def test_a_runtime_hook_that_raises_is_named_and_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a plugin whose register_callbacks or read_examples raised (or returned a
    non-list) stopped every fine-tuning run with "unexpected error: RuntimeError: ...", exit 1,
    naming no plugin; the other plugins' callbacks and the core's readers are unaffected."""
    from lightning.pytorch import Callback

    from plugformer.training.finetune import build_task

    good_callback = Callback()
    healthy, broken, garbage = (types.ModuleType(n) for n in ("healthy", "boom", "garbage"))

    @hookimpl
    def register_callbacks(stage: str, config: Any) -> list[Any]:
        return [good_callback]

    @hookimpl(specname="register_callbacks")
    def raising_callbacks(stage: str, config: Any) -> list[Any]:
        raise RuntimeError("tracker offline")

    @hookimpl(specname="read_examples")
    def raising_reader(path: str, task: Any) -> None:
        raise KeyError("format")

    @hookimpl(specname="register_callbacks")
    def not_a_list(stage: str, config: Any) -> int:
        return 42

    healthy.register_callbacks = register_callbacks  # type: ignore[attr-defined]
    broken.register_callbacks, broken.read_examples = raising_callbacks, raising_reader  # type: ignore[attr-defined]
    garbage.register_callbacks = not_a_list  # type: ignore[attr-defined]
    for module in (healthy, broken, garbage):
        plugins.register_plugin(module, module.__name__)
    assert hook_calls.extra_callbacks("finetune", None) == [good_callback]
    err = capsys.readouterr().err
    assert "plugin 'boom' failed in register_callbacks: RuntimeError: tracker offline" in err
    assert "plugin 'garbage' failed in register_callbacks: it returned int, not a list" in err

    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "a good film", "label": "pos"}\n')
    task = build_task("sentiment", {}, None)
    assert [ex.text for ex in task.read_file(data)] == ["a good film"]
    assert "plugin 'boom' failed in read_examples: KeyError" in capsys.readouterr().err

    plugins.set_strict(True)  # --strict-plugins: a broken plugin is fatal
    with pytest.raises(
        PlugformerError, match=r"plugin '(boom|garbage)' failed in register_callbacks"
    ):
        hook_calls.extra_callbacks("finetune", None)


def test_a_plugin_callback_that_raises_mid_training_is_named_and_switched_off(
    micro_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a plugin's Lightning callback raising in a training step ended the fine-tune
    with Lightning's traceback, naming no plugin. Now one line names the plugin, the callback
    and the hook, the callback is switched off, the run finishes, and the other plugins'
    callbacks keep running; under ``--strict-plugins`` the same failure is fatal."""
    from lightning.pytorch import Callback

    import plugformer

    if "sentiment" not in plugins.tasks().names():
        pytest.skip("sentiment plugin not installed")

    class Flaky(Callback):
        calls = 0

        def on_train_batch_end(self, *args: Any) -> None:
            Flaky.calls += 1
            raise ValueError("metrics server said no")

    class Counter(Callback):
        steps = 0

        def on_train_batch_end(self, *args: Any) -> None:
            Counter.steps += 1

    flaky, counting = types.ModuleType("flaky"), types.ModuleType("counting")
    flaky.register_callbacks = hookimpl(specname="register_callbacks")(  # type: ignore[attr-defined]
        lambda stage, config: [Flaky()]
    )
    counting.register_callbacks = hookimpl(specname="register_callbacks")(  # type: ignore[attr-defined]
        lambda stage, config: [Counter()]
    )
    plugins.register_plugin(flaky, "flaky")
    plugins.register_plugin(counting, "counting")
    rows = [{"text": f"{w} film number {i}", "label": w} for i, w in enumerate(["good", "bad"] * 8)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = TaskSpec(
        task="sentiment",
        data={"train": str(tmp_path / "train.jsonl")},
        finetune={"max_steps": 3, "batch_size": 4, "progress": False},
    )
    summary = plugformer.finetune(spec, backbone=str(micro_checkpoint), out_dir=tmp_path / "run")
    assert summary["steps"] == 3
    assert (Flaky.calls, Counter.steps) == (1, 3)
    err = capsys.readouterr().err
    assert (
        "plugin 'flaky' failed in its callback Flaky.on_train_batch_end: "
        "ValueError: metrics server said no; the callback is switched off"
    ) in err

    plugins.set_strict(True)
    with pytest.raises(PlugformerError, match="plugin 'flaky' failed in its callback"):
        plugformer.finetune(spec, backbone=str(micro_checkpoint), out_dir=tmp_path / "strict")


def test_a_callback_handed_out_twice_is_guarded_afresh_each_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A plugin that returns the same callback object to every run gets it guarded once per
    run: a failure switches it off for that run only, and guards never nest."""
    from lightning.pytorch import Callback

    class Once(Callback):
        def on_train_start(self, *args: Any) -> None:
            raise RuntimeError("no tracker")

    shared = Once()
    for _ in range(2):
        hook_calls.guard_callback(shared, "tracker")
        shared.on_train_start(None, None)
        shared.on_train_start(None, None)  # switched off: no second line
    assert capsys.readouterr().err.count("plugin 'tracker' failed in its callback") == 2
    assert shared.on_train_start.__wrapped__.__func__ is Once.on_train_start


def test_a_wrapper_on_a_runtime_hook_still_wraps_it(tmp_path: Path) -> None:
    """A ``wrapper=True`` implementation of ``read_examples`` runs around the readers (pluggy's
    own call), not as a reader of its own whose generator is refused as "not a list"."""
    from plugformer.training.finetune import build_task

    seen: list[str] = []
    plugin = types.ModuleType("auditor")

    @hookimpl(wrapper=True, specname="read_examples")
    def audit(path: str, task: Any) -> Any:
        seen.append(Path(path).name)
        rows = yield
        return rows

    plugin.read_examples = audit  # type: ignore[attr-defined]
    plugins.register_plugin(plugin, "auditor")
    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "a good film", "label": "pos"}\n')
    task = build_task("sentiment", {}, None)
    assert [ex.text for ex in task.read_file(data)] == ["a good film"]
    assert seen == ["rows.jsonl"]


def test_a_plugin_cannot_replace_a_core_command(capsys: pytest.CaptureFixture[str]) -> None:
    from plugformer.cli import main as cli_mod
    from plugformer.cli.run import pretrain

    plugin = types.ModuleType("usurper")

    @hookimpl
    def register_commands(cli: click.Group) -> None:
        @cli.command("pretrain")
        def fake() -> None:
            click.echo("hijacked")

        @cli.command("usurper-extra")
        def extra() -> None:
            click.echo("fine")

    plugin.register_commands = register_commands  # type: ignore[attr-defined]
    plugins.register_plugin(plugin, "usurper")
    cli_mod._add_commands()
    assert cli_mod.cli.commands["pretrain"] is pretrain
    assert "usurper-extra" in cli_mod.cli.commands  # new commands are still welcome
    assert "may not replace the core command 'pretrain'" in capsys.readouterr().err


def test_the_core_commands_come_through_register_commands() -> None:
    """The root group holds nothing of its own: the default plugin adds the core's commands
    through the same hook as a third-party plugin's."""
    from plugformer.cli import main as cli_mod

    pm = plugins.get_plugin_manager()
    owners = {i.plugin_name for i in pm.hook.register_commands.get_hookimpls()}
    assert "commands" in owners
    cli_mod._add_commands()
    for name in ("pretrain", "finetune", "evaluate", "predict", "generate", "bench", "data"):
        assert name in cli_mod.cli.commands


def test_a_hanging_registration_hook_is_timed_out_and_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a plugin hanging in a registration hook hung `plugins` and `predict` forever, and
    PLUGFORMER_TRACE_PLUGINS never named it (it printed only after a call returned)."""
    plugin = types.ModuleType("sleeper")

    @hookimpl
    def register_tasks(register: Any) -> None:
        time.sleep(30)

    plugin.register_tasks = register_tasks  # type: ignore[attr-defined]
    monkeypatch.setenv("PLUGFORMER_PLUGIN_TIMEOUT", "0.5")
    monkeypatch.setenv("PLUGFORMER_TRACE_PLUGINS", "1")
    plugins.register_plugin(plugin, "sleeper")
    t0 = time.perf_counter()
    infos = {i.name: i for i in plugins.plugin_infos()}
    assert time.perf_counter() - t0 < 10
    assert (
        infos["sleeper"].status == "broken"
        and "did not return within 0.5 s" in infos["sleeper"].error
    )
    assert "sentiment" in plugins.tasks()  # the others still load
    assert "register_tasks in sleeper: calling" in capsys.readouterr().err


def test_a_signal_while_a_plugin_imports_ends_the_run_not_the_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal that lands while a task's module is imported reaches the loader wrapped
    (Python wraps an exception raised in ``__set_name__`` in a RuntimeError): it must still
    end the run as an interruption (exit 130 / 143), not report the plugin as broken. Found
    by the chaos test, whose wall-clock signal once fell in the sentiment plugin's import."""
    from plugformer.errors import Interrupted
    from plugformer.plugin_registries import get_task_class

    (tmp_path / "pt_signalled.py").write_text(
        "from plugformer.errors import Interrupted\n"
        "class Field:\n"
        "    def __set_name__(self, owner, name):\n"
        "        raise Interrupted(15, 'interrupted by SIGTERM')\n"
        "class SignalledTask:\n"
        "    by_key = Field()\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugin = types.SimpleNamespace(
        register_tasks=hookimpl(lambda register: register("pt_signalled:SignalledTask", name="sig"))
    )
    plugins.register_plugin(plugin, "signalled")
    try:
        with pytest.raises(Interrupted, match="SIGTERM"):
            get_task_class("sig")
    finally:
        plugins.unregister_plugin("signalled")


# A plugin's own sys.exit() and half-done registrations: entry points installed in a temporary
# folder on sys.path (test_plugin_validation's `install`), the CLI run in-process.

install = test_plugin_validation.install  # the fixture

FINE = """
    from plugformer import hookimpl

    @hookimpl
    def register_tasks(register):
        register("plugformer.default_plugins.declarative:Tagging", name="pv-fine")
"""


def test_a_plugin_calling_sys_exit_while_imported_is_broken_not_fatal(
    install: Install,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: a plugin whose module exits at import (``parse_args()`` at module level) ended
    every command, ``--help`` and ``plugins`` included, with its exit code and nothing on
    stderr. Now it is listed broken with the reason and the others load; a lazy task
    reference to such a module is a one-line PluginError; ``--strict-plugins`` is fatal."""
    install("exiter", "import sys\nsys.exit(3)\n")
    install("fine", FINE)
    code, out, err = run(capsys, "--help")
    assert code == 0 and "Usage" in out, err
    code, out, err = run(capsys, "plugins", "--json")
    assert code == 0, err
    listed = {p["name"]: p for p in json.loads(out)}
    assert listed["exiter"]["status"] == "broken"
    assert listed["exiter"]["error"] == "called sys.exit(3) while being imported"
    assert listed["fine"]["status"] == "ok" and "pv-fine" in plugins.tasks()
    code, _, err = run(capsys, "--strict-plugins", "plugins")
    assert code == 2 and "plugin 'exiter'" in err and "sys.exit(3)" in err, err

    (tmp_path / "pt_exits_on_import.py").write_text("import sys\nsys.exit('no arguments')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    lazy = types.SimpleNamespace(
        register_tasks=hookimpl(lambda register: register("pt_exits_on_import:T", name="lazy"))
    )
    plugins.reset()
    plugins.set_strict(False)
    plugins.register_plugin(lazy, "lazy")
    with pytest.raises(
        PluginError, match=r"called sys.exit\('no arguments'\) while being imported"
    ):
        plugins.get_task_class("lazy")
    infos = {i.name: i for i in plugins.check_lazy_references()}
    assert infos["lazy"].status == "broken" and "sys.exit" in infos["lazy"].error


def test_a_plugin_calling_sys_exit_in_a_hook_is_broken_not_fatal(
    install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``sys.exit()`` inside ``register_tasks`` ended ``plugins`` and every command
    that names a task, and inside ``register_commands`` every command, ``--help`` included.
    The first failure is the one reported. An interruption turned into an exit by the plugin
    still ends the run."""
    install(
        "quitter",
        """
        import sys
        from plugformer import hookimpl

        @hookimpl
        def register_tasks(register):
            sys.exit(3)

        @hookimpl
        def register_commands(cli):
            sys.exit(4)
        """,
    )
    install("fine", FINE)
    code, out, err = run(capsys, "--help")
    assert code == 0 and "Usage" in out
    assert "plugin 'quitter' failed to add commands: called sys.exit(4) in register_commands" in err
    code, out, err = run(capsys, "plugins", "--json")
    assert code == 0, err
    listed = {p["name"]: p for p in json.loads(out)}
    assert listed["quitter"]["status"] == "broken"
    assert listed["quitter"]["error"] == "called sys.exit(4) in register_commands"
    assert listed["fine"]["status"] == "ok" and "pv-fine" in plugins.tasks()
    plugins.reset()  # without the command line, register_tasks is the first to exit
    listed = {i.name: i.as_dict() for i in plugins.plugin_infos()}
    assert listed["quitter"]["status"] == "broken"
    assert listed["quitter"]["error"] == "called sys.exit(3) in register_tasks"

    def ctrl_c_then_exit(register: Any) -> None:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            sys.exit(1)

    plugins.register_plugin(
        types.SimpleNamespace(register_tasks=hookimpl(specname="register_tasks")(ctrl_c_then_exit)),
        "ctrl-c",
    )
    with pytest.raises(KeyboardInterrupt):
        plugins.plugin_infos()


def test_a_plugin_that_breaks_halfway_through_registering_registers_nothing(
    install: Install, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a plugin whose ``register_specs`` registered a good folder and then a missing
    one was listed broken, yet ``tasks`` listed its specs, ``config validate NAME`` resolved
    them, and the task its ``register_tasks`` had registered before was usable. Now all of
    it is withdrawn (asking for a name says the plugin is broken) and none of its hooks runs."""
    install(
        "halfway",
        """
        from pathlib import Path
        from plugformer import hookimpl

        @hookimpl
        def register_tasks(register):
            register("plugformer.default_plugins.declarative:Tagging", name="pv-half-task")

        @hookimpl
        def register_specs(register):
            register(Path(__file__).parent / "specs")
            register(Path(__file__).parent / "no-such-folder")

        @hookimpl
        def on_result(result):
            raise RuntimeError("a broken plugin's hook was called")
        """,
    )
    install("fine", FINE)
    specs = tmp_path / "site" / "pv_halfway" / "specs"
    specs.mkdir()
    (specs / "pv-half-spec.toml").write_text('task = "tagging"\n[data]\ntrain = "t.jsonl"\n')

    code, out, err = run(capsys, "plugins", "--json")
    assert code == 0, err
    listed = {p["name"]: p for p in json.loads(out)}
    assert listed["halfway"]["status"] == "broken"
    assert "no-such-folder is neither a file nor a folder" in listed["halfway"]["error"]
    assert listed["halfway"]["provides"] == {}
    assert listed["fine"]["status"] == "ok" and listed["fine"]["provides"] == {"tasks": ["pv-fine"]}

    code, out, err = run(capsys, "tasks", "--json")
    assert code == 0 and "pv-half-spec" not in {r["name"] for r in json.loads(out)}
    assert "plugformer-halfway (plugin halfway) is broken: pv-half-spec" in err
    code, _, err = run(capsys, "config", "validate", "pv-half-spec")
    assert code == 2 and "plugformer-halfway (plugin halfway), which is broken" in err, err
    assert "pv-half-task" not in plugins.tasks() and "pv-fine" in plugins.tasks()
    with pytest.raises(PluginError, match=r"plugin halfway\), which is broken"):
        plugins.tasks().get("pv-half-task")
    hook_calls.call_on_result({"metrics": {}})
    assert "a broken plugin's hook was called" not in capsys.readouterr().err


FINE_WITH_COMMAND = (
    FINE
    + """
    import click

    @hookimpl
    def register_commands(cli):
        @cli.command("pv-fine-cmd")
        def fine_cmd():
            click.echo("fine here")
"""
)


@pytest.mark.parametrize(
    ("breaks", "reason"),
    [
        ('raise RuntimeError("boom")', "register_tasks raised RuntimeError: boom"),
        ("sys.exit(3)", "called sys.exit(3) in register_tasks"),
        (
            'register("plugformer.default_plugins.declarative:Tagging", name="tagging")',
            "task 'tagging' is built into plugformer",
        ),
    ],
    ids=["raises", "exits", "clashes"],
)
def test_a_broken_plugins_commands_are_withdrawn_with_its_other_registrations(
    breaks: str, reason: str, install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: commands were added at start-up, before any registration hook ran, so a plugin
    found broken there kept its commands: ``--help`` offered them and they ran. Now they go
    with its tasks: left out of ``--help`` (one stderr line names the plugin), and invoking
    one is a one-line error saying which plugin is broken and why; a healthy plugin's
    command is unaffected."""
    install(
        "cmdbroken",
        f"""
        import sys
        import click
        from plugformer import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command("pv-hello")
            def hello():
                click.echo("hello from a broken plugin")

        @hookimpl
        def register_tasks(register):
            register("plugformer.default_plugins.declarative:Tagging", name="pv-cmdbroken-task")
            {breaks}
        """,
    )
    install("fine", FINE_WITH_COMMAND)

    code, out, err = run(capsys, "--help")
    assert code == 0 and "Usage" in out, err
    assert "pv-hello" not in out and "pv-fine-cmd" in out and "pretrain" in out
    assert (
        "plugin 'cmdbroken' (plugformer-cmdbroken) is broken; its commands are left out: pv-hello"
        in err
    ), err

    plugins.reset()  # a fresh process, as each command is: the plugin not yet found broken
    code, out, err = run(capsys, "pv-hello")
    assert code == 2 and "hello from a broken plugin" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert (
        "command 'pv-hello' comes from plugformer-cmdbroken (plugin cmdbroken), which is broken: "
        + reason
    ) in lines[0], err

    code, out, err = run(capsys, "pv-fine-cmd")
    assert (code, out.strip()) == (0, "fine here"), err
    code, out, err = run(capsys, "plugins", "--json")
    listed = {p["name"]: p for p in json.loads(out)}
    assert listed["cmdbroken"]["status"] == "broken" and reason in listed["cmdbroken"]["error"]
    assert "pv-cmdbroken-task" not in plugins.tasks() and "pv-fine" in plugins.tasks()


def test_a_plugin_whose_register_commands_fails_adds_none_of_them_and_is_broken(
    install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a ``register_commands`` that raised after adding a command left that command
    in place, and the plugin listed ``ok`` with its tasks usable. Now its registrations count
    all together, its commands included: none of its commands is added and the plugin is
    broken like one whose registration hook failed."""
    install(
        "halfcmd",
        """
        import click
        from plugformer import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command("pv-half-cmd")
            def half():
                click.echo("half")

            raise RuntimeError("no more")

        @hookimpl
        def register_tasks(register):
            register("plugformer.default_plugins.declarative:Tagging", name="pv-halfcmd-task")
        """,
    )
    install("fine", FINE_WITH_COMMAND)

    code, out, err = run(capsys, "--help")
    assert code == 0 and "pv-half-cmd" not in out and "pv-fine-cmd" in out, err
    assert "plugin 'halfcmd' failed to add commands: no more" in err
    code, out, err = run(capsys, "pv-half-cmd")
    assert code == 2 and "half" not in out and "No such command 'pv-half-cmd'" in err, err
    code, out, err = run(capsys, "plugins", "--json")
    assert code == 0, err
    listed = {p["name"]: p for p in json.loads(out)}
    assert listed["halfcmd"]["status"] == "broken"
    assert listed["halfcmd"]["error"] == "register_commands raised RuntimeError: no more"
    assert listed["fine"]["status"] == "ok"
    with pytest.raises(PluginError, match=r"plugin halfcmd\), which is broken: register_commands"):
        plugins.tasks().get("pv-halfcmd-task")


def test_a_plugin_timeout_that_is_not_a_number_is_one_error_for_every_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``PLUGFORMER_PLUGIN_TIMEOUT=abc`` made every plugin "fail to add commands",
    the core's included, and each command was then ``No such command``."""
    monkeypatch.setenv("PLUGFORMER_PLUGIN_TIMEOUT", "abc")
    for args in (["data", "list"], ["plugins"]):
        code, out, err = run(capsys, *args)
        assert code == 2 and out == "", err
        assert err.strip() == (
            "plugformer: error: PLUGFORMER_PLUGIN_TIMEOUT='abc': expected a positive number "
            "of seconds (0 for no limit)"
        )
