"""The plugin manager: entry-point discovery, isolation of broken plugins, traced hook calls.

Plugins come from two places, loaded the same way: the core's own defaults
(:data:`DEFAULT_PLUGINS`) and every entry point of the ``plugformer`` group (first-party
task packages included). Each is loaded on its own: a plugin that fails to import, declares
an incompatible ``PLUGFORMER_API``, has a hook implementation with a bad signature or a name
that is no hook of :mod:`plugformer.hookspecs`, registers a name another plugin has (a name
of the core's own stays the core's), or raises inside a registration hook is recorded as
broken and skipped — unless plugins are strict (``--strict-plugins`` or
``PLUGFORMER_STRICT_PLUGINS=1``), which makes it fatal. A plugin calling ``sys.exit()`` while
being imported or inside a hook (a module that parses the command line at import, say) is a
broken plugin like any other, not the end of the command (:class:`PluginExit`); an
interruption (Ctrl-C, a signal) still ends the run (:func:`plugformer.errors.raise_if_interrupted`).

Environment: ``PLUGFORMER_LOAD_PLUGINS=a,b`` loads only those entry points, by entry-point or
distribution name (empty: none; a name that matches nothing installed is warned about);
``PLUGFORMER_TRACE_PLUGINS=1`` prints every hook call (plugin by plugin, before it starts,
so a hang names its culprit) with its duration to stderr; ``PLUGFORMER_PLUGIN_TIMEOUT``
(seconds, default 30) bounds each plugin's registration hook: one that does not return in
time is reported broken and skipped. The runtime hooks (``on_result``, ``register_callbacks``,
``read_examples``) are called plugin by plugin in :mod:`plugformer.hook_calls`.

The registries the registration hooks fill (:func:`tasks`, :func:`backbones`, …) are built in
:mod:`plugformer.plugin_registries`; :mod:`plugformer.plugins` is the public face of both.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from plugformer import PLUGIN_API_VERSION, hookspecs
from plugformer.errors import PluginError, raise_if_interrupted
from plugformer.registries import Registry

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginExit",
    "PluginInfo",
    "PluginTimeout",
    "get_plugin_manager",
    "hook_timeout",
    "register_plugin",
    "reset",
    "set_strict",
    "strict",
    "unregister_plugin",
]

DEFAULT_PLUGINS = (
    "plugformer.default_plugins.backbones",
    "plugformer.default_plugins.objectives",
    "plugformer.default_plugins.corpora",
    "plugformer.default_plugins.hf",
    "plugformer.default_plugins.decoding",
    "plugformer.default_plugins.configs",
    "plugformer.default_plugins.tasks",
    "plugformer.default_plugins.encdec",
    "plugformer.default_plugins.commands",
)
ENTRY_POINT_GROUP = "plugformer"


@dataclass
class PluginInfo:
    """What ``plugformer plugins`` shows for one plugin."""

    name: str
    distribution: str
    version: str
    module: str
    api: str = ""
    status: str = "ok"
    error: str = ""
    hooks: list[str] = field(default_factory=list)
    provides: dict[str, list[str]] = field(default_factory=dict)
    default: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _State:
    pm: pluggy.PluginManager | None = None
    infos: dict[str, PluginInfo] = {}
    registries: dict[str, Registry] | None = None
    withheld: dict[tuple[str, str], PluginInfo] = {}
    """(registry key, name) → the broken plugin that would have registered it."""
    hung: set[str] = set()
    """Plugins whose registration hook timed out: never called again in this process."""
    broken_by_registration: set[str] = set()
    """Plugins that broke while registering: healthy again when the registries are rebuilt
    (after a clashing plugin is unregistered, say) unless they break again."""
    withdrawn: dict[str, Any] = {}
    """Plugins taken out of the manager because they broke while registering (name → plugin
    object), so that none of their hooks is called; put back when the registries are rebuilt."""
    strict: bool = os.environ.get("PLUGFORMER_STRICT_PLUGINS", "") not in ("", "0")
    warned_unmatched: bool = False
    """Whether ``PLUGFORMER_LOAD_PLUGINS`` names that match nothing were warned about: once per
    process, though strict mode may build the manager more than once."""


def set_strict(strict: bool) -> None:
    """Make a broken plugin fatal (the ``--strict-plugins`` flag)."""
    _State.strict = strict


def strict() -> bool:
    """Whether a broken plugin is fatal."""
    return _State.strict


def reset() -> None:
    """Forget loaded plugins (tests; a new environment)."""
    _State.pm = None
    _State.infos = {}
    _State.registries = None
    _State.withheld = {}
    _State.hung = set()
    _State.broken_by_registration = set()
    _State.withdrawn = {}
    _State.warned_unmatched = False


def _broken(info: PluginInfo, reason: str) -> None:
    info.status = "broken"
    info.error = reason
    if _State.strict:
        raise PluginError(f"plugin {info.name!r} ({info.distribution}): {reason}")


def raised_at(exc: BaseException) -> str:
    """`` (at FILE:LINE)``: where ``exc`` was raised, in the innermost frame outside Python's
    standard library, pluggy and plugformer (the plugin's own line, as a rule), or ``""``
    when there is none. A broken plugin's one-line reason then points at the line to fix."""
    import sysconfig
    import traceback

    import plugformer

    skip = (
        "<",  # frozen import machinery
        sysconfig.get_paths()["stdlib"],
        os.path.dirname(pluggy.__file__) + os.sep,
        os.path.dirname(plugformer.__file__) + os.sep,
    )
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(skip)]
    if not frames:
        # A SyntaxError's own location is the plugin's line, though no frame is.
        filename, line = getattr(exc, "filename", None), getattr(exc, "lineno", None)
        return f" (at {filename}:{line})" if filename and line else ""
    return f" (at {frames[-1].filename}:{frames[-1].lineno})"


def _api_ok(module: Any, info: PluginInfo) -> bool:
    spec = getattr(module, "PLUGFORMER_API", None)
    if spec is None:
        return True  # undeclared: assume compatible, as pytest does with missing metadata
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    if not isinstance(spec, str):  # a number (2, 1.5) or bytes: SpecifierSet raises TypeError
        info.api = repr(spec)
        _broken(info, f"PLUGFORMER_API must be a string such as '>=1,<2', not {spec!r}")
        return False
    info.api = spec
    try:
        ok = str(PLUGIN_API_VERSION) in SpecifierSet(spec)
    except InvalidSpecifier:
        _broken(info, f"PLUGFORMER_API {spec!r} is not a version specifier such as '>=1,<2'")
        return False
    if not ok:
        _broken(
            info,
            f"needs plugin API {spec} but this plugformer provides API {PLUGIN_API_VERSION}; "
            f"upgrade {'plugformer' if '>' in spec and PLUGIN_API_VERSION < 99 else info.distribution}",
        )
    return ok


def _register(pm: pluggy.PluginManager, module: Any, info: PluginInfo) -> None:
    if not _api_ok(module, info):
        return
    try:
        pm.register(module, name=info.name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        # pluggy's message spans lines; keep the one line that names the offending arguments.
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if ln.startswith("Argument")), lines[0] if lines else "")
        hook = next((ln for ln in lines if "for hook" in ln), "")
        _broken(info, f"bad hook implementation: {hook} {detail}".strip())
        return
    info.hooks = sorted(h.name for h in pm.get_hookcallers(module) or [])
    unknown = _unknown_hooks(pm, module)
    if unknown:
        pm.unregister(module)  # skipped like any broken plugin: none of its hooks are called
        _broken(info, "; ".join(unknown))


def _unknown_hooks(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """One phrase per hook ``plugin`` implements that plugformer does not declare.

    pluggy accepts such an implementation in case a spec is added later, and only
    ``check_pending()`` objects (for the whole manager, naming no one in particular). All of
    plugformer's hooks are declared up front, so here it is a typo (``register_taskz``) that
    would otherwise leave the plugin "ok" and doing nothing. ``optionalhook=True`` is pluggy's
    documented way out, honoured as ``check_pending`` does.
    """
    import difflib

    known = sorted(n for n, c in vars(pm.hook).items() if n[:1] != "_" and c.has_spec())
    out = []
    for caller in pm.get_hookcallers(plugin) or []:
        impls = [i for i in caller.get_hookimpls() if i.plugin is plugin]
        if caller.has_spec() or all(i.optionalhook for i in impls):
            continue
        close = difflib.get_close_matches(caller.name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"plugformer's hooks: {', '.join(known)}"
        out.append(f"unknown hook {caller.name!r}, not in plugformer.hookspecs ({hint})")
    return sorted(out)


def _trace(pm: pluggy.PluginManager) -> None:
    starts: list[float] = []

    def before(hook_name: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
        starts.append(time.perf_counter())
        print(f"[plugformer] hook {hook_name} → {[i.plugin_name for i in impls]}", file=sys.stderr)

    def after(outcome: Any, hook_name: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
        took = (time.perf_counter() - starts.pop()) * 1000
        print(f"[plugformer] hook {hook_name} done in {took:.1f} ms", file=sys.stderr)

    pm.add_hookcall_monitoring(before, after)


def _wanted() -> set[str] | None:
    raw = os.environ.get("PLUGFORMER_LOAD_PLUGINS")
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _warn_unmatched(wanted: set[str], found: list[md.EntryPoint]) -> None:
    """One stderr line per ``PLUGFORMER_LOAD_PLUGINS`` name that matches no installed entry
    point or distribution: a typo there otherwise loads nothing and says nothing. The
    installed plugins are listed closest first (by entry-point or distribution name)."""
    import difflib

    if _State.warned_unmatched:
        return
    _State.warned_unmatched = True
    names = {ep.name: ep.dist.name if ep.dist else "" for ep in found}
    for name in sorted(wanted - set(names) - set(names.values())):

        def likeness(ep: str, _name: str = name) -> float:
            return max(difflib.SequenceMatcher(None, _name, n).ratio() for n in (ep, names[ep]))

        ranked = sorted(names, key=lambda ep: (-likeness(ep), ep))
        print(
            f"plugformer: warning: PLUGFORMER_LOAD_PLUGINS names {name!r}, which is no installed "
            f"plugin; installed: {', '.join(ranked) or 'none'}",
            file=sys.stderr,
        )


def _canonical(distribution: str) -> str:
    """A distribution's name as PEP 503 compares them (``Foo_Bar`` is ``foo-bar``)."""
    import re

    return re.sub(r"[-_.]+", "-", distribution).lower()


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager with defaults and entry-point plugins loaded."""
    if _State.pm is not None:
        return _State.pm
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    infos: dict[str, PluginInfo] = {}
    import plugformer

    for modname in DEFAULT_PLUGINS:
        info = PluginInfo(
            modname.rsplit(".", 1)[-1], "plugformer", plugformer.__version__, modname, default=True
        )
        infos[info.name] = info
        _register(pm, importlib.import_module(modname), info)
    wanted = _wanted()
    found = sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if wanted:
        _warn_unmatched(wanted, found)
    seen: dict[str, str] = {}  # entry-point name -> the distribution that took it
    for ep in found:
        dist = ep.dist.name if ep.dist else "?"
        if wanted is not None and ep.name not in wanted and dist not in wanted:
            continue
        info = PluginInfo(ep.name, dist, ep.dist.version if ep.dist else "?", ep.value)
        if ep.name in seen:
            if _canonical(seen[ep.name]) != _canonical(dist):
                # Two distributions, one name: pluggy keys plugins by name, so the second
                # cannot load. Say so instead of dropping it (the same distribution found
                # twice on sys.path is one plugin, and passes silently).
                info.name = f"{ep.name} ({dist})"
                infos[info.name] = info
                _broken(
                    info,
                    f"entry point name {ep.name!r} is already taken by distribution "
                    f"{seen[ep.name]!r}; one of them must rename its [project.entry-points."
                    f'"{ENTRY_POINT_GROUP}"] entry',
                )
            continue
        seen[ep.name] = dist
        infos[ep.name] = info
        try:
            module = ep.load()
        except Exception as exc:  # a plugin's import error must not break the others
            raise_if_interrupted(exc)
            _broken(info, f"import failed: {type(exc).__name__}: {exc}{raised_at(exc)}")
            continue
        except SystemExit as exc:  # parse_args() at import time: the plugin's end, not ours
            raise_if_interrupted(exc)
            _broken(info, f"called {exit_call(exc)} while being imported")
            continue
        _register(pm, module, info)
    if _tracing():
        _trace(pm)
    _State.pm, _State.infos = pm, infos
    return pm


def register_plugin(
    module: Any, name: str, distribution: str = "(test)", version: str = "0"
) -> PluginInfo:
    """Register an in-process plugin (tests, notebooks); registries are rebuilt on next use."""
    pm = get_plugin_manager()
    info = PluginInfo(name, distribution, version, getattr(module, "__name__", name))
    _State.infos[name] = info
    _State.withdrawn.pop(name, None)
    _register(pm, module, info)
    _State.registries = None
    return info


def unregister_plugin(name: str) -> None:
    pm = get_plugin_manager()
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    _State.infos.pop(name, None)
    _State.withdrawn.pop(name, None)
    _State.registries = None


def _tracing() -> bool:
    return os.environ.get("PLUGFORMER_TRACE_PLUGINS", "") not in ("", "0")


def hook_timeout() -> float:
    """Seconds a plugin's registration hook may take (``PLUGFORMER_PLUGIN_TIMEOUT``)."""
    raw = os.environ.get("PLUGFORMER_PLUGIN_TIMEOUT", "30")
    try:
        value = float(raw)
    except ValueError:
        raise PluginError(
            f"PLUGFORMER_PLUGIN_TIMEOUT={raw!r}: expected a positive number of seconds "
            "(0 for no limit)"
        ) from None
    return value if value > 0 else float("inf")


def _bounded(function: Callable[..., Any], timeout: float, **kwargs: Any) -> Any:
    """``function(**kwargs)`` in a daemon thread; PluginTimeout if it has not returned in time
    (the thread is abandoned: Python cannot stop it, and a daemon does not block exit)."""
    import threading

    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = function(**kwargs)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="plugformer-plugin-hook")
    thread.start()
    thread.join(None if timeout == float("inf") else timeout)
    if thread.is_alive():
        raise PluginTimeout(f"did not return within {timeout:g} s (PLUGFORMER_PLUGIN_TIMEOUT)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


class PluginTimeout(PluginError):
    """A plugin's hook did not return within the time limit."""


class PluginExit(Exception):
    """A plugin's hook called ``sys.exit()``: reported as that plugin's failure, not obeyed.

    An ``Exception`` (not a :class:`PluginError`, which callers of runtime hooks re-raise as
    a deliberate refusal), so every ``except Exception`` that isolates a plugin catches it."""


def exit_call(exc: SystemExit) -> str:
    """``sys.exit(3)``: the call behind ``exc``, for a one-line reason."""
    return "sys.exit()" if exc.code is None else f"sys.exit({exc.code!r})"


def _call_impl(impl: Any, hook_name: str, bounded: bool = False, **kwargs: Any) -> Any:
    """Call one plugin's implementation of a hook (traced when PLUGFORMER_TRACE_PLUGINS is set:
    the plugin is named before the call starts); ``bounded`` applies :func:`hook_timeout`.
    A ``sys.exit()`` in the hook is raised as :class:`PluginExit`."""
    tracing = _tracing()
    if tracing:
        print(f"[plugformer] hook {hook_name} in {impl.plugin_name}: calling", file=sys.stderr)
    t0 = time.perf_counter()
    try:
        if bounded:
            return _bounded(impl.function, hook_timeout(), **kwargs)
        return impl.function(**kwargs)
    except SystemExit as exc:
        raise_if_interrupted(exc)
        raise PluginExit(f"called {exit_call(exc)} in {hook_name}") from exc
    finally:
        if tracing:
            took = (time.perf_counter() - t0) * 1000
            print(
                f"[plugformer] hook {hook_name} in {impl.plugin_name}: {took:.1f} ms",
                file=sys.stderr,
            )
