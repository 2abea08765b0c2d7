"""What the plugins register, collected into registries: tasks, backbone families, datasets,
objectives, decoding strategies and named config files.

The registration hooks (``register_tasks`` … ``register_specs``) are called once, plugin by
plugin, when a registry is first asked for, each under :func:`plugformer.plugins.hook_timeout`:
a hook that raises, calls ``sys.exit()``, hangs or registers a name another plugin has marks
its plugin broken (a name of the core's own stays the core's), and what a broken plugin would
have registered is withheld — what it registered before it broke included: a plugin's
registrations count all together or not at all — so that asking for it names the broken plugin
rather than "unknown", and none of its hooks is called again. A plugin whose
``register_commands`` fails is broken the same way (:func:`mark_broken`), and a broken plugin's
commands are withdrawn with the rest (:mod:`plugformer.cli.main`). The registries
are rebuilt after :func:`plugformer.plugins.register_plugin` or ``unregister_plugin``.
Loading the plugins, and calling a hook under tracing and a timeout, live in
:mod:`plugformer.plugin_manager`; :mod:`plugformer.plugins` is the public face of both.
"""

from __future__ import annotations

import importlib
from typing import Any

from plugformer.errors import PluginError, raise_if_interrupted
from plugformer.plugin_manager import (
    PluginExit,
    PluginInfo,
    PluginTimeout,
    _broken,
    _call_impl,
    _State,
    exit_call,
    get_plugin_manager,
    raised_at,
)
from plugformer.registries import CORE_OWNER, Registry

__all__ = [
    "REGISTRATION_HOOKS",
    "SPEC_KINDS",
    "backbones",
    "check_lazy_references",
    "datasets",
    "decoding_strategies",
    "get_task_class",
    "mark_broken",
    "named_specs",
    "objectives",
    "plugin_infos",
    "raise_if_broken",
    "tasks",
]

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


def _collect() -> dict[str, Registry]:
    """Call each registration hook plugin by plugin, so one failure is attributed and isolated.

    A plugin's registrations take effect all together or not at all: when it breaks (a hook
    raises, exits, hangs or clashes, in its first hook or a later one), everything it had
    registered so far is withdrawn and withheld, and the plugin is taken out of the manager
    (:func:`_set_aside`), so none of its runtime hooks is called either."""
    if _State.registries is not None:
        return _State.registries
    pm = get_plugin_manager()
    _State.withheld = {}
    for name, info in _State.infos.items():  # in load order, so hooks keep their order
        if name in _State.broken_by_registration:
            info.status, info.error = "ok", ""
            plugin = _State.withdrawn.pop(name, None)
            if plugin is not None and pm.get_plugin(name) is None:
                pm.register(plugin, name=name)  # a fresh chance, as the status says
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
    registered: dict[str, list[tuple[str, str, Any]]] = {}
    """Plugin name → (registry key, name, item) of everything it registered, over all hooks."""
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
            added = registered.setdefault(info.name, [])

            def register(
                *args: Any,
                _info: PluginInfo = info,
                _owner: str = owner,
                _added: list[tuple[str, str, Any]] = added,
                _hook: str = hook_name,
                **kw: Any,
            ) -> None:
                if _info.status != "ok":  # a late call from a timed-out or broken hook
                    return
                for key, name, item in _registrations(_hook, args, kw, _info):
                    regs[key].add(name, item, _owner)
                    _added.append((key, name, item))

            newly_broken = [info]
            try:
                _call_impl(impl, hook_name, bounded=True, register=register)
            except PluginTimeout as exc:
                _State.hung.add(info.name)
                _broken(info, f"{hook_name} {exc}")
            except PluginExit as exc:  # sys.exit() in the hook: this plugin's failure only
                _broken(info, str(exc))
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
                            newly_broken.append(by_owner[other])
                _broken(info, str(exc))
            except Exception as exc:
                raise_if_interrupted(exc)
                _broken(info, f"{hook_name} raised {type(exc).__name__}: {exc}{raised_at(exc)}")
            if info.status != "ok" and info.name not in _State.hung:
                _State.broken_by_registration.add(info.name)
            for broken in newly_broken:
                if broken.status != "ok":
                    _withdraw(regs, broken, registered.get(broken.name, []))
    for (key, name), broken in _State.withheld.items():
        regs[key].withheld.setdefault(name, broken)
    for name, entries in registered.items():
        for key, reg_name, _item in entries:
            _State.infos[name].provides.setdefault(regs[key].key, []).append(reg_name)
    _set_aside(pm)
    _State.registries = regs
    return regs


def _withdraw(
    regs: dict[str, Registry], info: PluginInfo, entries: list[tuple[str, str, Any]]
) -> None:
    """Take back everything a plugin that has just broken registered (in this hook and in the
    ones before it): the names are withheld instead, so asking for one names the broken plugin.
    A name it clashed on stays in its registry's ``conflicts``, so that a third plugin
    registering it later clashes too (:meth:`Registry.add`)."""
    owner = CORE_OWNER if info.default else f"{info.distribution} (plugin {info.name})"
    for key, name, item in entries:
        reg = regs[key]
        if reg.items.get(name) is item and reg.owners.get(name) == owner:
            del reg.items[name], reg.owners[name]
        _State.withheld.setdefault((key, name), info)
    entries.clear()


def _set_aside(pm: Any) -> None:
    """Take every plugin that broke while registering out of the manager, so that none of its
    hooks (callbacks, readers, ``on_result``) is called; :func:`_collect` puts it back when the
    registries are rebuilt."""
    for name, info in _State.infos.items():
        if info.status == "ok":
            continue
        plugin = pm.get_plugin(name)
        if plugin is not None:
            pm.unregister(plugin)
            _State.withdrawn[name] = plugin


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
    except Exception as exc:  # the plugin is broken already, and reported as such
        raise_if_interrupted(exc)


_KEYWORDS = {
    "register_specs": ("path", "kind", "name"),
    "register_tasks": ("task", "name"),
    "register_datasets": ("recipe",),
}
"""The keywords each hook's ``register`` callback takes; the others take ``name`` and
``factory`` (``objective`` for objectives)."""


def _check_keywords(hook_name: str, kw: dict[str, Any]) -> None:
    """Refuse a keyword the callback does not take: read with ``kw.get``, a misspelt one
    (``knd="suite"``) would be dropped and the call would silently do something else."""
    import difflib

    allowed = _KEYWORDS.get(hook_name, ("name", "factory", "objective"))
    for key in kw:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PluginError(
                f"{hook_name}: register() got an unexpected keyword {key!r}{hint}; "
                f"it takes {', '.join(allowed)}"
            )


def _registrations(
    hook_name: str, args: tuple[Any, ...], kw: dict[str, Any], info: PluginInfo
) -> list[tuple[str, str, Any]]:
    """Normalise the arguments of one ``register`` call to (registry key, name, item) triples."""
    _check_keywords(hook_name, kw)
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


def mark_broken(name: str, reason: str, hung: bool = False) -> None:
    """Record plugin ``name`` as broken by a hook outside the registries (its
    ``register_commands`` failed at CLI start-up): as when a registration hook fails, what it
    registers is withheld and none of its hooks is called again once the registries are
    (re)built. ``hung``: the hook timed out, so it is not called again even to name what it
    registers. Never raises, even when strict: :func:`raise_if_broken` reports it."""
    info = _State.infos.get(name)
    if info is None or info.status != "ok":
        return
    info.status, info.error = "broken", reason
    if hung:
        _State.hung.add(name)
    _State.registries = None  # rebuilt without it


def broken_note() -> str:
    """``"; broken plugins, which may provide it: NAME (reason), ..."`` for an unknown-name
    error, or ``""`` when every plugin loaded. A plugin that failed to import registers no
    names at all, so "unknown name" alone would send its author looking for a typo."""
    broken = [i for i in plugin_infos() if i.status == "broken"]
    if not broken:
        return ""
    shown = "; ".join(f"{i.name} ({i.error})" for i in broken[:3])
    more = f"; and {len(broken) - 3} more" if len(broken) > 3 else ""
    return f"; broken plugins, which may provide it: {shown}{more} (`plugformer plugins`)"


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
            raise_if_interrupted(exc)
            raise PluginError(
                f"task {name!r} ({reg.owners[name]}): cannot import {item}: {exc}"
            ) from exc
        except SystemExit as exc:  # the task's module exits at import: the task is broken
            raise_if_interrupted(exc)
            raise PluginError(
                f"task {name!r} ({reg.owners[name]}): cannot import {item}: "
                f"called {exit_call(exc)} while being imported"
            ) from exc
        declared = getattr(item, "name", None)
        if declared != name:
            # A checkpoint records the class's name, so a mismatch trains fine and then
            # writes a checkpoint that no installed task can load.
            raise PluginError(
                f"task {name!r} ({reg.owners[name]}): {reg.items[name]} declares "
                f"name = {declared!r}; the registered name and the class's name must agree"
            )
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
