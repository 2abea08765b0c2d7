"""Built-in commands that list what is installed (``plugins``, ``tasks``, ``suites``) or
scaffold a new plugin (``new-plugin``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

__all__ = ["new_plugin", "plugins_cmd", "suites_cmd", "tasks_cmd"]


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--check", is_flag=True, help="Import every lazy task reference (slower; catches typos)."
)
def plugins_cmd(as_json: bool, check: bool) -> None:
    """List plugins: distribution, version, hooks, what they provide, status."""
    from plugformer.plugin_registries import check_lazy_references, plugin_infos

    infos = plugin_infos()
    if check:
        infos = check_lazy_references()
    if as_json:
        click.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        if check and any(i.status != "ok" for i in infos):
            raise SystemExit(1)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="plugformer plugins")
    for col in ("plugin", "distribution", "version", "provides", "hooks", "status"):
        table.add_column(col)
    for i in infos:
        provides = "; ".join(f"{k}: {', '.join(v)}" for k, v in i.provides.items() if v)
        status = "ok" if i.status == "ok" else f"[red]broken[/red]: {i.error}"
        table.add_row(i.name, i.distribution, i.version, provides, ", ".join(i.hooks), status)
    Console(width=160).print(table)
    if check and any(i.status != "ok" for i in infos):
        raise SystemExit(1)


@click.command("tasks")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tasks_cmd(as_json: bool) -> None:
    """List the named task specs: name, task, dataset, the distribution that ships it."""
    _list_named("task", ("name", "task", "dataset", "distribution"), as_json)


@click.command("suites")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def suites_cmd(as_json: bool) -> None:
    """List the named benchmark suites: name, task specs, distribution, description."""
    _list_named("suite", ("name", "tasks", "distribution", "description"), as_json)


def _list_named(kind: str, columns: tuple[str, ...], as_json: bool) -> None:
    from plugformer.plugin_registries import named_specs
    from plugformer.specs import describe_specs

    rows = describe_specs(kind)
    clashes = named_specs(kind).conflicts
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"plugformer {kind}s" if kind == "suite" else "plugformer task specs")
        for col in columns:
            table.add_column(col)
        for row in rows:
            cells = [row.get(c, "") for c in columns]
            cells = [", ".join(c) if isinstance(c, list) else str(c) for c in cells]
            if row.get("error"):
                cells[-1] = f"[red]{row['error']}[/red]"
            table.add_row(*cells)
        Console(width=160).print(table)
        if kind == "task":
            _tasks_without_specs({str(row.get("task", "")) for row in rows})
    for name, owners in sorted(clashes.items()):
        click.echo(
            f"plugformer: {kind} name {name!r} is registered by {' and '.join(owners)}; "
            "uninstall one of them",
            err=True,
        )
    registry = named_specs(kind)
    withheld = {n: i for n, i in registry.withheld.items() if n not in registry.items}
    for info in {id(i): i for i in withheld.values()}.values():
        names = sorted(n for n, i in withheld.items() if i is info)
        click.echo(
            f"plugformer: not listed, because {info.distribution} (plugin {info.name}) is "
            f"broken: {', '.join(names)}; `plugformer plugins` says why",
            err=True,
        )
    # A plugin that failed before registering (an import error, a bad hook) names nothing to
    # withhold: say that it is broken, or its missing specs would go unexplained.
    from plugformer.plugin_registries import plugin_infos

    reported = {id(i) for i in withheld.values()}
    for info in plugin_infos():
        if info.status == "broken" and id(info) not in reported:
            click.echo(
                f"plugformer: {info.distribution} (plugin {info.name}) is broken, so nothing it "
                f"provides is listed: {info.error}",
                err=True,
            )


def _tasks_without_specs(with_specs: set[str]) -> None:
    """The registered tasks no named spec uses (the core's bases, a freshly installed task
    plugin): they are fine-tuned by name with ``--data``, so a user must see them too."""
    from plugformer.plugin_registries import tasks

    bare = sorted(set(tasks().names()) - with_specs)
    if bare:
        click.echo(
            f"tasks without a named spec: {', '.join(bare)} "
            "(plugformer finetune TASK --data FILE; `plugformer plugins` says who provides each)"
        )


@click.command("new-plugin")
@click.argument("name")
@click.option(
    "--dir", "directory", type=click.Path(path_type=Path), default=Path("."), show_default=True
)
@click.option(
    "--template",
    type=click.Choice(["classification", "pair", "span", "generation", "tagging"]),
    default="classification",
    show_default=True,
    help="The task's shape (its base in plugformer.blocks).",
)
def new_plugin(name: str, directory: Path, template: str) -> None:
    """Write a complete third-party task plugin distribution named plugformer-NAME."""
    from plugformer.scaffold import write_plugin

    path = write_plugin(name, directory, template)
    click.echo(f"wrote {path}\nnext: pip install -e {path} && pytest {path}")
