"""The dataset registry: recipe name -> :class:`Recipe`, filled by ``register_datasets`` hooks.

:func:`collect_recipes` asks a pluggy plugin manager for every plugin's recipes;
:func:`default_registry` is the registry the CLI and ``get_dataset("name")`` use.
"""

from __future__ import annotations

import difflib
from typing import Any

from plugformer.data.recipes import Recipe
from plugformer.errors import DataError, PluginError

__all__ = ["DatasetRegistry", "collect_recipes", "default_registry"]


class DatasetRegistry:
    """Recipes by name, in registration order."""

    def __init__(
        self,
        recipes: list[Recipe] | tuple[Recipe, ...] = (),
        unavailable: dict[str, str] | None = None,
    ) -> None:
        self._recipes: dict[str, Recipe] = {}
        self._unavailable = dict(unavailable or {})
        """Names only a broken plugin registers → the one-line reason."""
        for recipe in recipes:
            self.register(recipe)

    def register(self, recipe: Recipe) -> None:
        """Add ``recipe``; a second recipe of the same name is a :class:`PluginError`."""
        if not isinstance(recipe, Recipe):
            raise PluginError(f"register_datasets: expected a plugformer.Recipe, got {recipe!r}")
        if recipe.name in self._recipes:
            raise PluginError(f"dataset {recipe.name!r} is registered twice")
        self._recipes[recipe.name] = recipe

    def get(self, name: str) -> Recipe:
        """The recipe called ``name``; :class:`DataError` with suggestions if there is none."""
        if name not in self._recipes and name in self._unavailable:
            raise PluginError(self._unavailable[name])
        try:
            return self._recipes[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._recipes), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            known = ", ".join(self._recipes) or "none"
            raise DataError(f"unknown dataset {name!r}{hint} (known: {known})") from None

    def all(self) -> list[Recipe]:
        return list(self._recipes.values())

    def __contains__(self, name: object) -> bool:
        return name in self._recipes

    def __len__(self) -> int:
        return len(self._recipes)


def collect_recipes(pm: Any) -> DatasetRegistry:
    """A registry holding every recipe the plugins of ``pm`` register."""
    registry = DatasetRegistry()
    pm.hook.register_datasets(register=registry.register)
    return registry


def default_registry() -> DatasetRegistry:
    """The recipes of all installed plugins (``plugformer.plugins.datasets()``), or, where the
    plugin manager does not provide them, of the core's own corpus recipes alone."""
    try:
        from plugformer import plugins
    except ModuleNotFoundError as exc:
        if exc.name != "plugformer.plugins":
            raise
        plugins = None  # type: ignore[assignment]
    datasets = getattr(plugins, "datasets", None)
    if datasets is not None:
        found = datasets()
        if isinstance(found, DatasetRegistry):
            return found
        # plugformer.plugins.Registry: name -> recipe in ``items`` (clashes already reported);
        # a name only a broken plugin registers says so
        withheld = getattr(found, "withheld", {})
        unavailable = {n: why for n in withheld if (why := found.broken_owner(n))}
        return DatasetRegistry(list(found.items.values()), unavailable)

    import pluggy

    from plugformer import hookspecs
    from plugformer.default_plugins import corpora

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(corpora)
    return collect_recipes(pm)
