"""``plugformer quickstart``: the command (torch is imported only when it runs)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--minutes",
    default=None,
    type=float,
    help=(
        "Pretraining wall-clock budget of each backbone (a shared trunk, then its own annealing)"
        "  [default: 4.5, plugformer.suites.quickstart.MINUTES; 1.0 with --fast]"
    ),
)
@click.option(
    "--fast", is_flag=True, help="A ~3-minute smoke run: tiny model, small data, one seed."
)
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("runs/quickstart"), show_default=True
)
@click.option(
    "--seeds", type=int, default=2, show_default=True, help="Seeds per task and backbone."
)
@click.option(
    "--deadline",
    default=None,
    type=click.FloatRange(min=0),
    metavar="MINUTES",
    help=(
        "End the job within this many minutes of its start ($PLUGFORMER_JOB_START, which `make "
        "quickstart` sets before installing, else now): the suite's fine-tuning budgets shrink "
        "to fit, never below the specs' own; 0 turns it off  [default: 28.5]"
    ),
)
@click.option(
    "--update-readme",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="PATH",
    help="Rewrite the generated quickstart section of this README (the repository's own).",
)
def quickstart(
    minutes: float | None,
    fast: bool,
    out: Path,
    seeds: int | None,
    deadline: float | None,
    update_readme: Path | None,
) -> None:
    """The default job: real data → tokenizer → pretraining → default suite → report."""
    from plugformer.suites.quickstart import DEADLINE_MINUTES, MINUTES
    from plugformer.suites.quickstart import quickstart as run

    if minutes is None:
        minutes = 1.0 if fast else MINUTES
    if deadline is None:
        deadline = DEADLINE_MINUTES
    run(
        minutes=minutes,
        fast=fast,
        out=out,
        seeds=1 if fast else seeds,
        update_readme=update_readme,
        deadline=deadline or None,
    )
