"""``plugformer bench``: run a benchmark suite, or compare two suite runs.

``plugformer bench SUITE`` is short for ``plugformer bench run SUITE``. Like the rest of the
CLI, importing this module imports neither torch nor Lightning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from plugformer.errors import ConfigError

__all__ = ["bench"]


class _RunByDefault(click.Group):
    """A group whose arguments, when the first names no sub-command, are ``run``'s: the SUITE
    and its options in any order (``bench --seeds 1 s.toml`` as well as ``bench s.toml --seeds
    1``)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in self.get_help_option_names(ctx):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_RunByDefault, subcommand_metavar="SUITE [OPTIONS] | COMMAND [ARGS]...")
def bench() -> None:
    """Benchmark suites: `plugformer bench SUITE` runs one; `bench compare A B` compares runs.

    `bench SUITE` is `bench run SUITE` and takes its options (--seeds N, --out DIR, --backbone
    LABEL=REF, --workers N: see `plugformer bench run --help`)."""


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        label, sep, ref = item.partition("=")
        if not sep or not label or not ref:
            raise ConfigError(
                f"--backbone {item!r}: expected LABEL=REF, e.g. pretrained=runs/pretrain/final"
            )
        out[label] = ref
    return out


@bench.command("run")
@click.argument("suite", type=click.Path(path_type=Path))
@click.option(
    "--seeds", type=click.IntRange(min=1), help="Run seeds 0..N-1 instead of the suite's."
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Run directory (default runs/bench/<suite>)."
)
@click.option(
    "--backbone",
    "backbones",
    multiple=True,
    metavar="LABEL=REF",
    help="Replace the reference of the suite's backbone LABEL (repeatable).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Cells at once, each in its own process (default: the suite's `workers`).",
)
def run(
    suite: Path,
    seeds: int | None,
    out: Path | None,
    backbones: tuple[str, ...],
    workers: int | None,
) -> None:
    """Run SUITE (TOML): every task × backbone × seed, cached per cell; write the report."""
    from plugformer.suites.bench import run_suite

    run_dir = run_suite(suite, out, seeds=seeds, backbones=_pairs(backbones), workers=workers)
    click.echo((run_dir / "report.md").read_text(encoding="utf-8"))


@bench.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def compare(run_a: Path, run_b: Path, as_json: bool) -> None:
    """Compare two suite runs per task × column (paired permutation test over common seeds;
    an interval over seeds and test examples when the cells keep per-example statistics)."""
    import json
    from dataclasses import asdict

    from plugformer.suites.compare import compare_runs, format_comparison

    rows = compare_runs(run_a, run_b)
    if as_json:
        data: list[dict[str, Any]] = [{**asdict(r), "delta": r.delta} for r in rows]
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(format_comparison(rows, str(run_a), str(run_b)))
