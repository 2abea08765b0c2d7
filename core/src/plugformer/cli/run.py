"""Built-in commands that train or score: ``pretrain``, ``finetune``, ``evaluate``.

A task spec comes from a file, a registered spec name, or a task name plus ``--data``
(:func:`plugformer.specs.load_task_spec`). Nothing is imported from torch until a command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from plugformer.cli.options import SET_HELP
from plugformer.errors import PlugformerError

__all__ = ["evaluate", "finetune", "pretrain"]


@click.command()
@click.argument("config")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--resume", is_flag=True, help="Continue from out_dir/checkpoints/last.ckpt.")
def pretrain(config: str, overrides: tuple[str, ...], resume: bool) -> None:
    """Pretrain the native backbone as CONFIG says: a TOML file or a registered name (tiny)."""
    from plugformer.config import PretrainConfig, load_config
    from plugformer.models.families import check_model_family
    from plugformer.specs import resolve

    path = resolve(config, "pretrain")
    cfg = load_config(path, PretrainConfig, overrides)
    check_model_family(cfg.model, str(path), overrides)  # before a tokenizer is trained
    from plugformer.training.pretrain import pretrain as run

    summary = run(cfg, resume=resume)
    click.echo(json.dumps(summary, indent=2))


@click.command()
@click.argument("spec")
@click.option(
    "--backbone", help="Backbone checkpoint or reference (native:DIR, scratch:DIR, hf:NAME)."
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Training data file or dataset name (shorthand). Without --validation, 10% of a "
    "file's rows (seeded) are held out for validation.",
)
@click.option(
    "--validation", type=click.Path(path_type=Path), help="Validation data file (with --data)."
)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Output directory (default runs/<spec>)."
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted run from OUT/checkpoints/last.ckpt."
)
def finetune(
    spec: str,
    backbone: str | None,
    data: Path | None,
    validation: Path | None,
    out: Path | None,
    overrides: tuple[str, ...],
    resume: bool,
) -> None:
    """Fine-tune a task: SPEC is a spec file or name (plugformer tasks), or a task name with --data."""
    from plugformer.specs import load_task_spec

    s = load_task_spec(spec, data, overrides, validation)
    from plugformer.training.finetune import finetune as run

    summary = run(s, backbone, out, resume=resume)
    summary.pop("val_history", None)
    click.echo(json.dumps(summary, indent=2))


def _is_checkpoint(path: Path) -> bool:
    return (path / "plugformer.json").is_file()


def _check_task_checkpoint(path: Path) -> None:
    """One line for what ``evaluate PATH`` was given when it is not a task checkpoint."""
    usage = "give CHECKPOINT [--data FILE] or SPEC --checkpoint CHECKPOINT"
    if not path.exists():
        raise PlugformerError(f"{path}: no such checkpoint directory; {usage}")
    if not _is_checkpoint(path):
        raise PlugformerError(f"{path}: not a checkpoint (no plugformer.json); {usage}")
    from plugformer.checkpoint import read_manifest

    if read_manifest(path).get("kind") != "task":
        raise PlugformerError(
            f"{path}: a backbone checkpoint; evaluate scores task checkpoints "
            "(fine-tune it first: plugformer finetune SPEC --backbone CHECKPOINT)"
        )


def _scored_data(data: Path, split: str) -> dict[str, str]:
    """``--data`` as the spec's data section: a dataset recipe (its split ``split`` is scored)
    or a file scored as ``split``, whole (the spec's ``max_test`` / ``max_eval`` are for its
    own data, not for what the user brought)."""
    from plugformer.specs import is_dataset_name

    return {"dataset": str(data)} if is_dataset_name(data) else {split: str(data)}


def _spec_from_checkpoint(
    checkpoint: Path, data: Path | None, split: str, overrides: tuple[str, ...]
) -> Any:
    """The spec stored in a task checkpoint, with ``--data`` as the split to score."""
    from plugformer.checkpoint import read_manifest
    from plugformer.config import TaskSpec, apply_overrides, parse_model

    stored = read_manifest(checkpoint).get("spec")
    if not stored:
        raise PlugformerError(f"{checkpoint}: stores no spec; give a SPEC file or --data FILE")
    raw = {k: v for k, v in stored.items() if v is not None}
    if data is not None:
        raw["data"] = _scored_data(data, split)
    return parse_model(
        TaskSpec, apply_overrides(raw, overrides), f"{checkpoint} (stored spec)", overrides
    )


def _default_result_name(split: str, data: Path | None, overrides: tuple[str, ...]) -> str:
    """Where ``evaluate`` writes beside the checkpoint when not told: ``eval_test.json`` for
    its own split and settings; other data or settings get their own name (the data file's
    stem, a hash of the ``--set``s), so they never overwrite the checkpoint's own result."""
    import hashlib

    name = f"eval_{split}"
    if data is not None:
        name += f"-{Path(data).stem}"
    if overrides:
        name += "-set-" + hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:8]
    return f"{name}.json"


@click.command()
@click.argument("target", metavar="SPEC|CHECKPOINT")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=Path),
    help="Task checkpoint directory (when the first argument is a spec).",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="Data file (or dataset name) to score; default: the spec's --split.",
)
@click.option(
    "--split", default="test", show_default=True, type=click.Choice(["validation", "test"])
)
@click.option("--out", type=click.Path(path_type=Path), help="Write the result JSON here.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
def evaluate(
    target: str,
    checkpoint: Path | None,
    data: Path | None,
    split: str,
    out: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Score a task checkpoint; prints (and writes) the metrics as JSON.

    \b
    plugformer evaluate CKPT --data test.jsonl      the checkpoint's own spec, this data
    plugformer evaluate CKPT                        the checkpoint's own spec and split
    plugformer evaluate SPEC --checkpoint CKPT      another spec's data
    plugformer evaluate CKPT --set options.beam_size=8   a decoding setting changed
    """
    if checkpoint is None:
        _check_task_checkpoint(Path(target))
        checkpoint = Path(target)
        s = _spec_from_checkpoint(checkpoint, data, split, overrides)
    else:
        from plugformer.specs import load_task_spec

        s = load_task_spec(target, None, overrides)
        if data is not None:
            from plugformer.config import TaskData, parse_model

            scored = parse_model(TaskData, _scored_data(data, split), f"--data {data}")
            s = s.model_copy(update={"data": scored})
    from plugformer.config import apply_overrides
    from plugformer.fileio import atomic_write_json
    from plugformer.training.finetune import evaluate as run

    # --set options.K=V changes the checkpoint's task options for this evaluation (the
    # checkpoint's options are the ones it was trained with, whatever the spec file says).
    changed = apply_overrides({}, [o for o in overrides if o.strip().startswith("options.")])
    result = run(s, checkpoint, split=split, options=changed.get("options"))
    click.echo(json.dumps(result["metrics"], indent=2))  # shown even if the file cannot be written
    target = out or checkpoint.parent / _default_result_name(split, data, overrides)
    try:
        atomic_write_json(target, result)
    except PlugformerError as exc:
        if out is not None:  # asked for: a failure
            raise
        click.echo(f"plugformer: warning: result not saved ({exc}); pass --out FILE", err=True)
    else:
        if out is None:  # a file the user did not name: say where it went
            click.echo(f"plugformer: result written to {target}", err=True)
