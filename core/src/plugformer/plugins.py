"""The plugin manager: entry-point discovery, isolation of broken plugins, registries, tracing.

Plugins come from two places, loaded the same way: the core's own defaults
(:data:`DEFAULT_PLUGINS`) and every entry point of the ``plugformer`` group (first-party
task packages included). Each is loaded on its own: a plugin that fails to import, declares
an incompatible ``PLUGFORMER_API``, has a hook implementation with a bad signature or a name
that is no hook of :mod:`plugformer.hookspecs`, registers a name another plugin has (a name
of the core's own stays the core's), or raises inside a registration hook is recorded as
broken and skipped — unless plugins are strict (``--strict-plugins`` or
``PLUGFORMER_STRICT_PLUGINS=1``), which makes it fatal.

Environment: ``PLUGFORMER_LOAD_PLUGINS=a,b`` loads only those entry points, by entry-point or
distribution name (empty: none; a name that matches nothing installed is warned about);
``PLUGFORMER_TRACE_PLUGINS=1`` prints every hook call (plugin by plugin, before it starts,
so a hang names its culprit) with its duration to stderr; ``PLUGFORMER_PLUGIN_TIMEOUT``
(seconds, default 30) bounds each plugin's registration hook: one that does not return in
time is reported broken and skipped. The runtime hooks (``on_result``, ``register_callbacks``,
``read_examples``) are called plugin by plugin in :mod:`plugformer.hook_calls`.
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
from plugformer.errors import PluginError
from plugformer.registries import CORE_OWNER, Registry

__all__ = [
    "DEFAULT_PLUGINS",
    "PluginInfo",
    "Registry",
    "backbones",
    "check_lazy_references",
    "datasets",
    "decoding_strategies",
    "get_plugin_manager",
    "get_task_class",
    "named_specs",
    "objectives",
    "plugin_infos",
    "raise_if_broken",
    "reset",
    "set_strict",
    "strict",
    "tasks",
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
REGISTRATION_HOOKS = (
    "register_tasks",
    "register_backbones",
    "register_datasets",
    "register_objectives",
    "register_decoding_strategies",
    "register_specs",
)
SPEC_KINDS = {
    "task": ("task spec", "specs"),
    "suite": ("suite", "suites"),
    "pretrain": ("pretrain config", "pretrain configs"),
}
"""``register_specs`` kinds → (label in messages, key in ``provides``); see :mod:`plugformer.specs`."""


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
    _State.warned_unmatched = False


def _broken(info: PluginInfo, reason: str) -> None:
    info.status = "broken"
    info.error = reason
    if _State.strict:
        raise PluginError(f"plugin {info.name!r} ({info.distribution}): {reason}")


def _api_ok(module: Any, info: PluginInfo) -> bool:
    spec = getattr(module, "PLUGFORMER_API", None)
    info.api = spec or ""
    if spec is None:
        return True  # undeclared: assume compatible, as pytest does with missing metadata
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

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
            _broken(info, f"import failed: {type(exc).__name__}: {exc}")
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
    _register(pm, module, info)
    _State.registries = None
    return info


def unregister_plugin(name: str) -> None:
    pm = get_plugin_manager()
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    _State.infos.pop(name, None)
    _State.registries = None


def _tracing() -> bool:
    return os.environ.get("PLUGFORMER_TRACE_PLUGINS", "") not in ("", "0")


def hook_timeout() -> float:
    """Seconds a plugin's registration hook may take (``PLUGFORMER_PLUGIN_TIMEOUT``)."""
    raw = os.environ.get("PLUGFORMER_PLUGIN_TIMEOUT", "30")
    try:
        value = float(raw)
    except ValueError:
        raise PluginError(f"PLUGFORMER_PLUGIN_TIMEOUT={raw!r} is not a number of seconds") from None
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


def _call_impl(impl: Any, hook_name: str, bounded: bool = False, **kwargs: Any) -> Any:
    """Call one plugin's implementation of a hook (traced when PLUGFORMER_TRACE_PLUGINS is set:
    the plugin is named before the call starts); ``bounded`` applies :func:`hook_timeout`."""
    tracing = _tracing()
    if tracing:
        print(f"[plugformer] hook {hook_name} in {impl.plugin_name}: calling", file=sys.stderr)
    t0 = time.perf_counter()
    try:
        if bounded:
            return _bounded(impl.function, hook_timeout(), **kwargs)
        return impl.function(**kwargs)
    finally:
        if tracing:
            took = (time.perf_counter() - t0) * 1000
            print(
                f"[plugformer] hook {hook_name} in {impl.plugin_name}: {took:.1f} ms",
                file=sys.stderr,
            )


def _collect() -> dict[str, Registry]:
    """Call each registration hook plugin by plugin, so one failure is attributed and isolated."""
    if _State.registries is not None:
        return _State.registries
    pm = get_plugin_manager()
    _State.withheld = {}
    for name in _State.broken_by_registration:
        if name in _State.infos:
            _State.infos[name].status, _State.infos[name].error = "ok", ""
    _State.broken_by_registration = set()
    regs = {
        "register_tasks": Registry("task"),
        "register_backbones": Registry("backbone family"),
        "register_datasets": Registry("dataset"),
        "register_objectives": Registry("objective"),
        "register_decoding_strategies": Registry("decoding strategy"),
        **{f"specs:{k}": Registry(*names) for k, names in SPEC_KINDS.items()},
    }
    by_owner: dict[str, PluginInfo] = {}
    for info in _State.infos.values():
        info.provides = {}  # rebuilt below (registries are re-collected after register_plugin)
    for hook_name in REGISTRATION_HOOKS:
        impls = getattr(pm.hook, hook_name).get_hookimpls()
        # The core's defaults register first whatever a plugin's tryfirst/trylast says, so a
        # plugin reusing one of the core's names is the one that clashes (Registry.add).
        impls.sort(key=lambda i: not getattr(_State.infos.get(i.plugin_name), "default", False))
        for impl in impls:
            info = _State.infos.get(impl.plugin_name)
            if info is None:
                continue
            if info.status != "ok":
                _withhold(impl, hook_name, info)
                continue
            owner = CORE_OWNER if info.default else f"{info.distribution} (plugin {info.name})"
            by_owner[owner] = info
            added: list[tuple[Registry, str]] = []

            def register(
                *args: Any,
                _info: PluginInfo = info,
                _owner: str = owner,
                _added: list[tuple[Registry, str]] = added,
                _hook: str = hook_name,
                **kw: Any,
            ) -> None:
                if by_owner[_owner].status != "ok":  # a late call from a timed-out hook
                    return
                for key, name, item in _registrations(_hook, args, kw, _info):
                    regs[key].add(name, item, _owner)
                    _added.append((regs[key], name))

            try:
                _call_impl(impl, hook_name, bounded=True, register=register)
            except PluginTimeout as exc:
                _State.hung.add(info.name)
                _broken(info, f"{hook_name} {exc}")
            except PluginError as exc:
                # A name clash: neither registration can be trusted, so both plugins are broken
                # (a clash with the core's own name is recorded as none: only this plugin is).
                clashes = [o for r in regs.values() for o in r.conflicts.values()]
                for owners in clashes:
                    for other in owners:
                        if (
                            other in by_owner
                            and by_owner[other] is not info
                            and by_owner[other].status == "ok"
                        ):
                            by_owner[other].status, by_owner[other].error = "broken", str(exc)
                            _State.broken_by_registration.add(by_owner[other].name)
                _broken(info, str(exc))
            except Exception as exc:
                _broken(info, f"{hook_name} raised {type(exc).__name__}: {exc}")
            if info.status != "ok" and info.name not in _State.hung:
                _State.broken_by_registration.add(info.name)
            for reg, name in added:
                info.provides.setdefault(reg.key, []).append(name)
    for (key, name), broken in _State.withheld.items():
        regs[key].withheld.setdefault(name, broken)
    _State.registries = regs
    return regs


def _withhold(impl: Any, hook_name: str, info: PluginInfo) -> None:
    """Record what a broken plugin's registration hook names, without registering any of it,
    so that asking for one of those names says which plugin is broken rather than "unknown".
    A hook that timed out is not called again; any error here is ignored (the plugin is
    already reported)."""
    if info.name in _State.hung:
        return

    def record(*args: Any, **kw: Any) -> None:
        for key, name, _item in _registrations(hook_name, args, kw, info):
            _State.withheld.setdefault((key, name), info)

    try:
        _call_impl(impl, hook_name, bounded=True, register=record)
    except Exception:  # the plugin is broken already, and reported as such
        pass


def _registrations(
    hook_name: str, args: tuple[Any, ...], kw: dict[str, Any], info: PluginInfo
) -> list[tuple[str, str, Any]]:
    """Normalise the arguments of one ``register`` call to (registry key, name, item) triples."""
    if hook_name == "register_specs":
        from plugformer.specfiles import named_files

        return [(f"specs:{f.kind}", f.name, f) for f in named_files(args, kw, info.distribution)]
    return [(hook_name, *_registration(hook_name, args, kw))]


def _registration(hook_name: str, args: tuple[Any, ...], kw: dict[str, Any]) -> tuple[str, Any]:
    """Normalise the arguments of the ``register`` callbacks to (name, item)."""
    if hook_name == "register_tasks":
        task = args[0] if args else kw["task"]
        if isinstance(task, str):  # lazy "module:Class"
            name = kw.get("name") or (args[1] if len(args) > 1 else None)
            if not name:
                raise PluginError(f"register({task!r}) needs name=... for a lazy task reference")
            return name, task
        return task.name, task
    if hook_name == "register_datasets":
        recipe = args[0] if args else kw["recipe"]
        return recipe.name, recipe
    name = args[0] if args else kw["name"]
    item = args[1] if len(args) > 1 else kw.get("factory", kw.get("objective"))
    return name, item


def plugin_infos() -> list[PluginInfo]:
    """Every plugin with its status; registrations are collected so ``provides`` is filled."""
    get_plugin_manager()
    _collect()
    return list(_State.infos.values())


def raise_if_broken() -> None:
    """Strict mode's check before any work: a plugin found broken, even before strict mode
    was switched on (the CLI loads plugins to build its commands before it reads its flags),
    is a :class:`PluginError`."""
    for info in plugin_infos():
        if info.status == "broken":
            raise PluginError(f"plugin {info.name!r} ({info.distribution}): {info.error}")


def tasks() -> Registry:
    return _collect()["register_tasks"]


def backbones() -> Registry:
    return _collect()["register_backbones"]


def datasets() -> Registry:
    return _collect()["register_datasets"]


def objectives() -> Registry:
    return _collect()["register_objectives"]


def decoding_strategies() -> Registry:
    return _collect()["register_decoding_strategies"]


def named_specs(kind: str) -> Registry:
    """Named config files of one ``register_specs`` kind: ``task``, ``suite`` or ``pretrain``."""
    return _collect()[f"specs:{kind}"]


def get_task_class(name: str) -> type:
    """The Task class registered under ``name`` (importing a lazy reference on first use)."""
    reg = tasks()
    if name not in reg:
        broken = _broken_provider(name)
        if broken is not None:
            raise PluginError(f"task {name!r} is installed but broken: {broken.error}")
    item = reg.get(name)
    if isinstance(item, str):
        modname, _, attr = item.partition(":")
        try:
            item = getattr(importlib.import_module(modname), attr)
        except Exception as exc:
            raise PluginError(
                f"task {name!r} ({reg.owners[name]}): cannot import {item}: {exc}"
            ) from exc
        reg.items[name] = item
    return item


def _broken_provider(name: str) -> PluginInfo | None:
    """A broken plugin that likely provides ``name``: its entry point or distribution names it."""
    for info in _State.infos.values():
        dist_words = info.distribution.lower().replace("_", "-").split("-")
        if info.status != "ok" and (info.name == name or name.lower() in dist_words):
            return info
    return None


def check_lazy_references() -> list[PluginInfo]:
    """Import every lazy ``module:Class`` task reference; a failure marks its plugin broken.

    ``plugformer plugins --check``: a typo in a reference otherwise shows as ``ok`` until the
    task is first used.
    """
    reg = tasks()
    for name in reg.names():
        if not isinstance(reg.items[name], str):
            continue
        try:
            get_task_class(name)
        except PluginError as exc:
            owner = reg.owners[name]
            info = next(
                (
                    i
                    for i in _State.infos.values()
                    if owner
                    in (CORE_OWNER if i.default else f"{i.distribution} (plugin {i.name})",)
                ),
                None,
            )
            if info is not None:
                info.status, info.error = "broken", str(exc)
    return list(_State.infos.values())
