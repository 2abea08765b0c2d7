"""Built-in commands that look at files: ``ckpt inspect``, ``config validate`` / ``config schema``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from plugformer.cli.options import SET_HELP
from plugformer.errors import PlugformerError

__all__ = ["ckpt", "config"]


@click.group()
def ckpt() -> None:
    """Inspect checkpoints."""


@ckpt.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--manifest-only",
    is_flag=True,
    help="Check the manifest and that the files exist, without loading the weights.",
)
def ckpt_inspect(path: Path, manifest_only: bool) -> None:
    """Print a checkpoint's manifest once the directory is verified: files, hashes, and
    weights that load into the model the manifest describes."""
    from plugformer.checkpoint import read_manifest, verify_checkpoint

    manifest = read_manifest(path) if manifest_only else verify_checkpoint(path)
    click.echo(json.dumps(manifest, indent=2))


@click.group()
def config() -> None:
    """Validate config files; print the JSON Schema."""


_KINDS = {"pretrain": "PretrainConfig", "task": "TaskSpec", "suite": "SuiteConfig"}


def _model_for(kind: str) -> Any:
    import plugformer.config as c

    if kind == "suite":
        from plugformer.suites.bench import SuiteConfig

        return SuiteConfig
    return getattr(c, _KINDS[kind])


def _guess_kind(data: dict[str, Any]) -> str:
    if "task" in data:
        return "task"
    if "tasks" in data or "backbones" in data:
        return "suite"
    return "pretrain"


def _named_file(ref: str, kind: str | None) -> tuple[Path, str | None]:
    """A config file, or the file registered under a name (of ``kind``, or of the one kind that
    has it), with the kind its registration says (``None`` for a path: guessed from its keys,
    a registered file's kind is not: a misspelt ``task =`` must not make it a pretrain config)."""
    from plugformer import specs

    if kind is not None or specs.is_path(ref):
        return specs.resolve(ref, kind or "task"), kind
    from plugformer.plugin_registries import SPEC_KINDS, named_specs

    kinds = [k for k in SPEC_KINDS if ref in named_specs(k)]
    if len(kinds) > 1:
        raise PlugformerError(
            f"{ref!r} names a {' and a '.join(kinds)} config; say which with --kind"
        )
    return specs.resolve(ref, kinds[0] if kinds else "task"), kinds[0] if kinds else None


@config.command("validate")
@click.argument("file")
@click.option(
    "--kind", type=click.Choice(list(_KINDS)), default=None, help="Default: guessed from the keys."
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
def config_validate(file: str, kind: str | None, overrides: tuple[str, ...]) -> None:
    """Check FILE (a path or a registered name) against its schema; print the resolved config."""
    from plugformer.config import apply_overrides, load_toml, parse_model

    path, registered = _named_file(file, kind)
    raw = load_toml(path)
    data = apply_overrides(raw, overrides)
    kind = registered or _guess_kind(data)
    if kind == "suite":
        data.setdefault("name", path.stem)  # as `plugformer bench` reads it (load_suite)
    model = parse_model(_model_for(kind), data, str(path), overrides)
    # "valid" must mean "will run": the task (or the backbone family) exists and takes its
    # options, a spec's dataset and data files exist; a suite's specs, overrides and backbone
    # task lists are checked as `plugformer bench` checks them
    detail = ""
    if kind == "task":
        from plugformer.config import check_task_options, resolve_spec_paths
        from plugformer.specs import check_task_data

        check_task_options(model, str(path), overrides)
        # the data files as finetune finds them: the file's paths relative to the file, a
        # --set path as given
        located = apply_overrides(resolve_spec_paths(raw, path), overrides)
        check_task_data(parse_model(_model_for(kind), located, str(path), overrides), str(path))
    elif kind == "pretrain":
        from plugformer.models.families import check_model_family

        check_model_family(model.model, str(path), overrides)
    elif kind == "suite":
        from plugformer.suites.plan import plan_cells

        refs = {b.name: b.ref for b in model.backbones}
        detail = f" ({len(plan_cells(model, path, refs, check_only=True))} cells)"
    click.echo(f"{path}: valid {kind} config{detail}", err=True)
    click.echo(model.model_dump_json(indent=2))


@config.command("schema")
@click.option("--kind", type=click.Choice(list(_KINDS)), default="pretrain", show_default=True)
def config_schema(kind: str) -> None:
    """Print the JSON Schema of a config kind."""
    click.echo(json.dumps(_model_for(kind).model_json_schema(), indent=2))
