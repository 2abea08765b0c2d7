"""Calls of the runtime hooks (``on_result``, ``register_callbacks``, ``read_examples``), one
plugin at a time, so that a plugin failing at run time is named and left out instead of ending
the run (fatal under ``--strict-plugins``). Loading plugins lives in :mod:`plugformer.plugin_manager`,
their registrations in :mod:`plugformer.plugin_registries`.
"""

from __future__ import annotations

import sys
from typing import Any

from plugformer.errors import PlugformerError, PluginError
from plugformer.plugin_manager import _call_impl, get_plugin_manager, strict

__all__ = ["call_on_result", "extra_callbacks", "guard_callback", "read_examples"]


def call_on_result(result: dict[str, Any]) -> None:
    """Tell every plugin of a finished evaluation; one plugin's failure is reported, not fatal."""
    import copy

    pm = get_plugin_manager()
    for impl in pm.hook.on_result.get_hookimpls():
        try:  # each plugin gets its own copy: an edit must not reach the caller or the others
            _call_impl(impl, "on_result", result=copy.deepcopy(result))
        except Exception as exc:
            print(
                f"plugformer: plugin {impl.plugin_name!r} failed in on_result: {exc}",
                file=sys.stderr,
            )


def _runtime_failure(impl: Any, hook_name: str, problem: str, consequence: str) -> None:
    """One plugin's runtime hook failed: one line naming the plugin on stderr, and the run goes
    on without it; under ``--strict-plugins`` the failure is fatal."""
    message = f"plugin {impl.plugin_name!r} failed in {hook_name}: {problem}"
    if strict():
        raise PluginError(message)
    print(f"plugformer: {message}; {consequence}", file=sys.stderr)


def _in_call_order(hook_name: str) -> list[Any] | None:
    """A hook's implementations in the order pluggy calls them (last registered first), or
    ``None`` when a plugin wraps the hook (``wrapper=True`` / ``hookwrapper=True``): then only
    pluggy's own call runs the wrapper around the others, and the caller uses it."""
    impls = getattr(get_plugin_manager().hook, hook_name).get_hookimpls()
    if any(impl.wrapper or impl.hookwrapper for impl in impls):
        return None
    return list(reversed(impls))


def extra_callbacks(stage: str, config: Any) -> list[Any]:
    """The plugins' Lightning callbacks for a Trainer; a plugin whose hook raises or returns
    something other than a list of callbacks is named and left out."""
    from lightning.pytorch import Callback

    out: list[Any] = []
    impls = _in_call_order("register_callbacks")
    if impls is None:  # wrapped: pluggy runs the wrapper, without per-plugin isolation
        hook = get_plugin_manager().hook.register_callbacks
        return [c for group in hook(stage=stage, config=config) if group for c in group]
    for impl in impls:
        try:
            group = _call_impl(impl, "register_callbacks", stage=stage, config=config)
        except PlugformerError:
            raise  # a deliberate, one-line refusal (a setting the plugin needs)
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if group is None:
                continue
            if isinstance(group, list | tuple) and all(isinstance(c, Callback) for c in group):
                out.extend(guard_callback(c, impl.plugin_name) for c in group)
                continue
            problem = f"it returned {type(group).__name__}, not a list of lightning Callbacks"
        _runtime_failure(impl, "register_callbacks", problem, "its callbacks are left out")
    return out


def guard_callback(callback: Any, plugin: str) -> Any:
    """``callback`` (a plugin's) with each Lightning hook it overrides guarded: the first time
    one raises, one line names the plugin, the callback and the hook on stderr, and the
    callback does nothing more; the run goes on (fatal under ``--strict-plugins``).

    The hooks are replaced on the instance, which Lightning looks them up on, so the callback
    keeps its type (Lightning treats ``ModelCheckpoint`` and ``EarlyStopping`` specially).
    ``PlugformerError`` passes through: a plugin's deliberate one-line verdict.
    """
    import functools

    from lightning.pytorch import Callback

    if not hasattr(callback, "__dict__"):  # slots only: nowhere to put a guard
        return callback
    state = {"failed": False}
    kind = type(callback)
    hooks = [
        name
        for name in dir(Callback)
        if (name.startswith("on_") or name in ("setup", "teardown"))
        and callable(getattr(Callback, name))
        and getattr(kind, name, None) is not getattr(Callback, name)
    ]

    def guarded(name: str, method: Any) -> Any:
        @functools.wraps(method)
        def call(*args: Any, **kwargs: Any) -> Any:
            if state["failed"]:
                return None
            try:
                return method(*args, **kwargs)
            except PlugformerError:
                raise
            except Exception as exc:
                state["failed"] = True
                message = (
                    f"plugin {plugin!r} failed in its callback {kind.__name__}.{name}: "
                    f"{type(exc).__name__}: {exc}"
                )
                if strict():
                    raise PluginError(message) from exc
                print(f"plugformer: {message}; the callback is switched off", file=sys.stderr)
                return None

        return call

    # A plugin may hand out the same callback object to every run: guard its own methods
    # afresh each time (a failure switches it off for one run), never a guard of a guard.
    originals = callback.__dict__.setdefault("_plugformer_unguarded", {})
    for name in hooks:
        method = originals.setdefault(name, getattr(callback, name))
        setattr(callback, name, guarded(name, method))
    return callback


def read_examples(path: str, task: Any) -> list[Any] | None:
    """The first plugin reader's rows for ``path`` (the ``read_examples`` hook), or ``None``;
    a reader that raises or returns something other than a list is named and skipped."""
    impls = _in_call_order("read_examples")
    if impls is None:  # wrapped: pluggy runs the wrapper, without per-plugin isolation
        return get_plugin_manager().hook.read_examples(path=path, task=task)
    for impl in impls:
        try:
            rows = _call_impl(impl, "read_examples", path=path, task=task)
        except PlugformerError:
            raise  # the plugin's own one-line verdict on a file it reads (bad row, ...)
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if rows is None:
                continue
            if isinstance(rows, list):
                return rows
            problem = f"it returned {type(rows).__name__}, not a list of examples"
        _runtime_failure(impl, "read_examples", f"{problem} (reading {path})", "reader skipped")
    return None
