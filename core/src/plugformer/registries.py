"""``Registry``: name → item for one kind of thing plugins register (tasks, datasets, specs…),
remembering which plugin registered each name, so that a clash names both plugins and a name
only a broken plugin registers says which one is broken. :mod:`plugformer.plugin_registries`
fills them."""

from __future__ import annotations

from typing import Any, Protocol

from plugformer.errors import PluginError

__all__ = ["CORE_OWNER", "Registry"]

CORE_OWNER = "plugformer"
"""The owner of everything the core's default plugins register (a plugin's owner names its
distribution and entry point, so it never reads the same)."""


class PluginInfo(Protocol):
    """What a registry needs of a broken plugin to name it (:class:`plugformer.plugins.PluginInfo`)."""

    name: str
    distribution: str
    error: str


class Registry:
    """Name → item, remembering which plugin registered each (to name both on a clash)."""

    def __init__(self, kind: str, key: str | None = None) -> None:
        self.kind = kind
        self.key = key or kind.split()[0] + "s"
        """The key of ``PluginInfo.provides`` that lists this registry's names."""
        self.items: dict[str, Any] = {}
        self.owners: dict[str, str] = {}
        self.conflicts: dict[str, list[str]] = {}
        self.withheld: dict[str, PluginInfo] = {}
        """Names a broken plugin would have registered here, with that plugin."""

    def add(self, name: str, item: Any, owner: str) -> None:
        """Register ``name``; a :class:`PluginError` if another owner has it already, or if
        plugins clashed on it already (their registrations are withdrawn, the clash stays). A
        name the core registered stays the core's and is not recorded as a clash: installing a
        plugin must never switch off a built-in (the plugin is the one reported broken)."""
        if name in self.items and self.owners[name] == CORE_OWNER and owner != CORE_OWNER:
            raise PluginError(
                f"{self.kind} {name!r} is built into plugformer; {owner} registers it too: "
                f"rename its {self.kind}"
            )
        if name in self.items and self.owners[name] != owner:
            self.conflicts.setdefault(name, [self.owners[name]]).append(owner)
            raise PluginError(
                f"{self.kind} {name!r} is registered by both {self.owners[name]!r} and {owner!r}; "
                "uninstall one of them"
            )
        if name in self.conflicts:
            # Contested already: the clashing plugins' registrations were withdrawn (they are
            # broken), but the name stays contested, as it was before they were withdrawn.
            if owner not in self.conflicts[name]:
                self.conflicts[name].append(owner)
            raise PluginError(
                f"{self.kind} {name!r} is registered by both {self.conflicts[name][0]!r} and "
                f"{owner!r}; uninstall one of them"
            )
        self.items[name] = item
        self.owners[name] = owner

    def get(self, name: str) -> Any:
        if name in self.conflicts:
            owners = " and ".join(repr(o) for o in self.conflicts[name])
            raise PluginError(
                f"{self.kind} {name!r} is registered by {owners}; uninstall one of them"
            )
        broken = self.broken_owner(name)
        if broken is not None:
            raise PluginError(broken)
        if name not in self.items:
            import difflib

            hint = difflib.get_close_matches(name, self.items, n=1)
            known = ", ".join(sorted(self.items)) or "none installed"
            raise PluginError(
                f"unknown {self.kind} {name!r}"
                + (f" (did you mean {hint[0]!r}?)" if hint else f"; known: {known}")
            )
        return self.items[name]

    def broken_owner(self, name: str) -> str | None:
        """For a name only a broken plugin registers: one line saying so, and why."""
        info = self.withheld.get(name) if name not in self.items else None
        if info is None:
            return None
        return (
            f"{self.kind} {name!r} comes from {info.distribution} (plugin {info.name}), "
            f"which is broken: {info.error}"
        )

    def __contains__(self, name: str) -> bool:
        return name in self.items

    def names(self) -> list[str]:
        return sorted(self.items)

    def all(self) -> list[Any]:
        return [self.items[n] for n in self.names()]
