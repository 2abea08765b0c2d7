"""The ``plugformer`` command: the root group, its global options and the entry point.

The root group holds no command of its own. Every sub-command, the core's included, is added
through the ``register_commands`` hook (:func:`_add_commands`): the core's come from the
default plugin :mod:`plugformer.default_plugins.commands`, as pytest's built-in features
come from its own plugins. A plugin's commands count with its other registrations, all
together or not at all: a plugin found broken (a registration hook raised, exited, hung or
clashed; or its ``register_commands`` failed) loses its commands too (:class:`_Root`).
Start-up imports neither torch nor Lightning: every command imports what it needs inside
its function. Errors the user can fix print one line and exit 2
(``--debug`` shows the traceback).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from plugformer import __version__
from plugformer.errors import Interrupted, PlugformerError, PluginError

if TYPE_CHECKING:
    from plugformer.plugin_manager import PluginInfo

__all__ = ["cli", "main"]


class _Root(click.Group):
    """The root group: it offers a plugin's commands only while the plugin is healthy.

    Whether a plugin broke in a registration hook is known once the registries are collected,
    after start-up has added the commands; so it is asked only when a plugin's command is
    listed (``--help``) or invoked, and the core's commands start without running any
    registration hook. A broken plugin's commands are left out of ``--help`` (one stderr line
    names the plugin) and invoking one is a one-line error saying why.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugin_commands: dict[str, str] = {}
        """Command name → the plugin (not one of the core's defaults) that added it."""

    def withdrawn(self) -> dict[str, PluginInfo]:
        """The plugins' commands whose plugin is broken now, each with its plugin."""
        if not self.plugin_commands:
            return {}
        from plugformer.plugin_manager import _State
        from plugformer.plugin_registries import plugin_infos

        try:
            plugin_infos()  # collects the registries: a plugin that breaks there is marked
        except PluginError:  # strict mode: the group's callback makes it fatal, with the reason
            pass
        return {
            name: _State.infos[plugin]
            for name, plugin in self.plugin_commands.items()
            if plugin in _State.infos and _State.infos[plugin].status != "ok"
        }

    def list_commands(self, ctx: click.Context) -> list[str]:
        withdrawn = self.withdrawn()
        return [name for name in super().list_commands(ctx) if name not in withdrawn]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.plugin_commands and cmd_name in self.withdrawn():
            return None
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name in self.plugin_commands and not ctx.resilient_parsing:
            info = self.withdrawn().get(name)
            if info is not None:
                raise PluginError(
                    f"command {name!r} comes from {info.distribution} (plugin {info.name}), "
                    f"which is broken: {info.error}"
                )
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        left_out: dict[str, list[str]] = {}
        for name, info in sorted(self.withdrawn().items()):
            left_out.setdefault(f"{info.name!r} ({info.distribution})", []).append(name)
        for plugin, names in left_out.items():
            click.echo(
                f"plugformer: plugin {plugin} is broken; its commands are left out: "
                f"{', '.join(names)} (`plugformer plugins` says why)",
                err=True,
            )
        super().format_commands(ctx, formatter)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plugformer")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option(
    "--strict-plugins",
    is_flag=True,
    envvar="PLUGFORMER_STRICT_PLUGINS",
    help="A broken plugin is fatal.",
)
@click.option(
    "--threads",
    default="auto",
    envvar="PLUGFORMER_THREADS",
    show_default=True,
    metavar="N|auto|default",
    help="Intra-op threads for torch: auto = all cores, or the idle ones if others are busy; "
    "default = torch's choice.",
)
def cli(debug: bool, strict_plugins: bool, threads: str) -> None:
    """plugformer: pretrain a Transformer, fine-tune it through task plugins, benchmark it."""
    from plugformer import plugins
    from plugformer.plugin_registries import raise_if_broken
    from plugformer.threads import apply_threads

    os.environ["PLUGFORMER_DEBUG"] = "1" if debug else os.environ.get("PLUGFORMER_DEBUG", "")
    try:
        apply_threads(threads)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--threads") from None
    plugins.set_strict(strict_plugins)
    if strict_plugins:  # fail now, before any work, if a plugin is broken
        raise_if_broken()


def _is_default(impl: Any) -> bool:
    from plugformer.plugins import DEFAULT_PLUGINS

    return getattr(impl.plugin, "__name__", None) in DEFAULT_PLUGINS


def _call_register_commands(impl: Any) -> bool:
    """Call one plugin's ``register_commands``; ``False`` if it failed, which is said on
    stderr and makes the plugin broken, its other registrations withdrawn with its commands."""
    from plugformer.errors import raise_if_interrupted
    from plugformer.plugin_manager import PluginExit, PluginTimeout, _call_impl
    from plugformer.plugin_registries import mark_broken

    try:
        _call_impl(impl, "register_commands", bounded=True, cli=cli)
    except Exception as exc:  # one plugin's broken command never breaks the others
        raise_if_interrupted(exc)
        click.echo(
            f"plugformer: plugin {impl.plugin_name!r} failed to add commands: {exc}", err=True
        )
        if isinstance(exc, (PluginExit, PluginTimeout)):
            reason = f"register_commands {exc}" if isinstance(exc, PluginTimeout) else str(exc)
        else:
            reason = f"register_commands raised {type(exc).__name__}: {exc}"
        mark_broken(impl.plugin_name, reason, hung=isinstance(exc, PluginTimeout))
        return False
    return True


def _add_commands() -> None:
    """Fill the root group through ``register_commands``: the core's default plugins first
    (their commands are the core's, which no other plugin may replace or remove), then every
    other plugin, each isolated from the others: a plugin whose hook fails adds none of its
    commands. Rebuilt from scratch on every call."""
    from plugformer import plugins

    cli.commands.clear()
    cli.plugin_commands.clear()
    try:
        pm = plugins.get_plugin_manager()
    except PlugformerError as exc:  # strict mode, or a broken environment: the core's own only
        if not plugins.strict():  # strict mode reports it once, as the command's error
            click.echo(f"plugformer: {exc}", err=True)
        import importlib

        for modname in plugins.DEFAULT_PLUGINS:
            hook = getattr(importlib.import_module(modname), "register_commands", None)
            if hook is not None:
                hook(cli=cli)
        return
    impls = pm.hook.register_commands.get_hookimpls()
    for impl in impls:
        if _is_default(impl):
            _call_register_commands(impl)
    core = dict(cli.commands)
    for impl in impls:
        if _is_default(impl):
            continue
        before = dict(cli.commands)
        if not _call_register_commands(impl):  # all or nothing: none of what it added stays
            cli.commands.clear()
            cli.commands.update(before)
            continue
        for name, command in core.items():
            if cli.commands.get(name) is not command:
                cli.commands[name] = command
                click.echo(
                    f"plugformer: plugin {impl.plugin_name!r} may not replace the core command "
                    f"{name!r}; ignored",
                    err=True,
                )
        for name, command in cli.commands.items():
            if before.get(name) is not command:
                cli.plugin_commands[name] = impl.plugin_name


def _detach_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor (captured in tests): nothing to flush
        pass


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line for user errors, tracebacks only with --debug."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("PLUGFORMER_DEBUG") == "1"
    if "--debug" in argv[1:] and "--" not in argv[: argv.index("--debug")]:
        # `plugformer finetune ... --debug` (after the command) means what it says, where
        # click would refuse it as an option the command does not have
        argv.remove("--debug")
        argv.insert(0, "--debug")
    from plugformer.signals import install_default_handlers

    install_default_handlers()
    try:
        from plugformer.plugin_manager import hook_timeout

        hook_timeout()  # a bad value is the user's to fix, not every plugin's failure
        _add_commands()
        cli.main(argv, prog_name="plugformer", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("plugformer: aborted", err=True)
        sys.exit(130)
    except Interrupted as exc:
        click.echo(f"plugformer: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.UsageError as exc:  # a bad argument or option: one line, as for other errors
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        click.echo(f"plugformer: error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except PlugformerError as exc:
        if debug:
            raise
        click.echo(f"plugformer: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("plugformer: interrupted by SIGINT", err=True)
        sys.exit(130)
    except OSError as exc:
        if debug:
            raise
        # An OSError that reached here is not a file of ours (those are PlugformerErrors that
        # name the file): a full or failing standard output, or a disk filled mid-run. (A
        # closed pipe, `plugformer tasks | head -1`, never gets here: click exits 1 quietly.)
        _detach_stdout()
        click.echo(f"plugformer: error: {_os_error(exc)}", err=True)
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        click.echo(
            f"plugformer: unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            err=True,
        )
        sys.exit(1)


def _os_error(exc: OSError) -> str:
    """One line for an OSError no reader turned into a PlugformerError: a path that is a
    folder, unreadable or missing is named as what could not be read; anything else (a
    full disk, a closed output) as what could not be written."""
    import errno

    reason = exc.strerror or str(exc)
    if not exc.filename:
        return f"cannot write the output: {reason}"
    if exc.errno == errno.EISDIR:
        return f"{exc.filename}: expected a file, found a folder"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return f"{exc.filename}: no such file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"cannot read or write {exc.filename}: {reason}"
    return f"cannot write {exc.filename}: {reason}"


if __name__ == "__main__":  # pragma: no cover
    main()
