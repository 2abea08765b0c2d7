"""The ``plugformer`` command line.

Start-up imports neither torch nor Lightning: every command imports what it needs inside
its function. Errors the user can fix print one line and exit 2 (``--debug`` shows the
traceback); plugins add sub-commands through ``register_commands``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from plugformer import __version__
from plugformer.errors import Interrupted, PlugformerError

__all__ = ["cli", "main"]

SET_HELP = "Override a config value, e.g. --set model.d_model=128 (repeatable)."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="plugformer")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option(
    "--strict-plugins",
    is_flag=True,
    envvar="PLUGFORMER_STRICT_PLUGINS",
    help="A broken plugin is fatal.",
)
@click.option(
    "--threads",
    default="auto",
    envvar="PLUGFORMER_THREADS",
    show_default=True,
    metavar="N|auto|default",
    help="Intra-op threads for torch: auto = all cores, or the idle ones if others are busy; "
    "default = torch's choice.",
)
def cli(debug: bool, strict_plugins: bool, threads: str) -> None:
    """plugformer: pretrain a Transformer, fine-tune it through task plugins, benchmark it."""
    from plugformer import plugins
    from plugformer.threads import apply_threads

    os.environ["PLUGFORMER_DEBUG"] = "1" if debug else os.environ.get("PLUGFORMER_DEBUG", "")
    try:
        apply_threads(threads)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--threads") from None
    plugins.set_strict(strict_plugins)
    if strict_plugins:  # fail now, before any work, if a plugin is broken
        plugins.plugin_infos()


# --------------------------------------------------------------------------- pretraining


@cli.command()
@click.argument("config")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--resume", is_flag=True, help="Continue from out_dir/checkpoints/last.ckpt.")
def pretrain(config: str, overrides: tuple[str, ...], resume: bool) -> None:
    """Pretrain the native backbone as CONFIG says: a TOML file or a registered name (tiny)."""
    from plugformer.config import PretrainConfig, load_config
    from plugformer.specs import resolve

    cfg = load_config(resolve(config, "pretrain"), PretrainConfig, overrides)
    from plugformer.pretrain import pretrain as run

    summary = run(cfg, resume=resume)
    click.echo(json.dumps(summary, indent=2))


@cli.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("prompt")
@click.option("--max-new-tokens", default=64, show_default=True)
@click.option("--temperature", default=0.0, show_default=True, help="0 = greedy.")
@click.option("--top-k", type=int, default=None)
@click.option("--top-p", type=float, default=None)
@click.option("--repetition-penalty", default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def generate(
    checkpoint: Path,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    repetition_penalty: float,
    seed: int,
) -> None:
    """Continue PROMPT with a backbone checkpoint (KV-cache decoding)."""
    from plugformer.checkpoint import load_backbone
    from plugformer.generation import SamplingConfig
    from plugformer.generation import generate as gen

    loaded = load_backbone(checkpoint)
    if not loaded.model.causal:
        raise PlugformerError(
            f"{checkpoint}: a bidirectional (masked-LM) backbone cannot generate text"
        )
    tok = loaded.tokenizer
    ids = [tok.bos_id, *tok.encode(prompt)]
    cfg = SamplingConfig(max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed)
    out = gen(loaded.model, [ids], cfg, eos_id=tok.eos_id, pad_id=tok.pad_id)[0]
    click.echo(prompt + tok.decode(out))


# --------------------------------------------------------------------------- checkpoints and configs


@cli.group()
def ckpt() -> None:
    """Inspect checkpoints."""


@ckpt.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
def ckpt_inspect(path: Path) -> None:
    """Print a checkpoint's manifest (validating the directory)."""
    from plugformer.checkpoint import read_manifest

    click.echo(json.dumps(read_manifest(path), indent=2))


@cli.group()
def config() -> None:
    """Validate config files; print the JSON Schema."""


_KINDS = {"pretrain": "PretrainConfig", "task": "TaskSpec", "suite": "SuiteConfig"}


def _model_for(kind: str) -> Any:
    import plugformer.config as c

    if kind == "suite":
        from plugformer.bench import SuiteConfig

        return SuiteConfig
    return getattr(c, _KINDS[kind])


def _guess_kind(data: dict[str, Any]) -> str:
    if "task" in data:
        return "task"
    if "tasks" in data or "backbones" in data:
        return "suite"
    return "pretrain"


def _named_file(ref: str, kind: str | None) -> Path:
    """A config file, or the file registered under a name (of ``kind``, or of the one kind that
    has it)."""
    from plugformer import specs

    if kind is not None or specs.is_path(ref):
        return specs.resolve(ref, kind or "task")
    from plugformer import plugins

    kinds = [k for k in specs.KINDS if ref in plugins.named_specs(k)]
    if len(kinds) > 1:
        raise PlugformerError(
            f"{ref!r} names a {' and a '.join(kinds)} config; say which with --kind"
        )
    return specs.resolve(ref, kinds[0] if kinds else "task")


@config.command("validate")
@click.argument("file")
@click.option(
    "--kind", type=click.Choice(list(_KINDS)), default=None, help="Default: guessed from the keys."
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
def config_validate(file: str, kind: str | None, overrides: tuple[str, ...]) -> None:
    """Check FILE (a path or a registered name) against its schema; print the resolved config."""
    from plugformer.config import apply_overrides, load_toml, parse_model

    path = _named_file(file, kind)
    data = apply_overrides(load_toml(path), overrides)
    kind = kind or _guess_kind(data)
    model = parse_model(_model_for(kind), data, str(path))
    click.echo(f"{path}: valid {kind} config", err=True)
    click.echo(model.model_dump_json(indent=2))


@config.command("schema")
@click.option("--kind", type=click.Choice(list(_KINDS)), default="pretrain", show_default=True)
def config_schema(kind: str) -> None:
    """Print the JSON Schema of a config kind."""
    click.echo(json.dumps(_model_for(kind).model_json_schema(), indent=2))


# --------------------------------------------------------------------------- plugins


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--check", is_flag=True, help="Import every lazy task reference (slower; catches typos)."
)
def plugins_cmd(as_json: bool, check: bool) -> None:
    """List plugins: distribution, version, hooks, what they provide, status."""
    from plugformer import plugins

    infos = plugins.plugin_infos()
    if check:
        infos = plugins.check_lazy_references()
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


@cli.command("tasks")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def tasks_cmd(as_json: bool) -> None:
    """List the named task specs: name, task, dataset, the distribution that ships it."""
    _list_named("task", ("name", "task", "dataset", "distribution"), as_json)


@cli.command("suites")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def suites_cmd(as_json: bool) -> None:
    """List the named benchmark suites: name, task specs, distribution, description."""
    _list_named("suite", ("name", "tasks", "distribution", "description"), as_json)


def _list_named(kind: str, columns: tuple[str, ...], as_json: bool) -> None:
    from plugformer import plugins
    from plugformer.specs import describe_specs

    rows = describe_specs(kind)
    clashes = plugins.named_specs(kind).conflicts
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
    for name, owners in sorted(clashes.items()):
        click.echo(
            f"plugformer: {kind} name {name!r} is registered by {' and '.join(owners)}; "
            "uninstall one of them",
            err=True,
        )


@cli.command("new-plugin")
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


# --------------------------------------------------------------------------- tasks


def _data_table(data: Path, validation: Path | None) -> dict[str, Any]:
    """``--data`` (a file or a dataset name) and ``--validation`` as a spec's ``[data]``."""
    if not data.exists():
        table: dict[str, Any] = {"dataset": str(data)}
    else:
        table = {"train": str(data)}
        if validation is None:
            table["holdout"] = 0.1  # a seeded share, announced in one line by finetune
    if validation is not None:
        table["validation"] = str(validation)
    return table


def _load_spec(
    spec: str, data: Path | None, overrides: tuple[str, ...], validation: Path | None = None
) -> Any:
    """SPEC: a spec file, a registered spec name (``plugformer tasks``), or a task name + --data."""
    from plugformer import plugins
    from plugformer.config import (
        TaskSpec,
        apply_overrides,
        load_toml,
        parse_model,
        resolve_spec_paths,
    )
    from plugformer.specs import is_path, resolve

    path, named = Path(spec), plugins.named_specs("task")
    if not is_path(spec) and (spec in named or spec in named.conflicts):
        path = resolve(spec, "task")  # a registered spec name
    if path.suffix == ".toml" or path.exists():
        raw = resolve_spec_paths(load_toml(path), path)  # data paths are relative to the file
        source = str(path)
        raw.setdefault("name", path.stem)
    else:  # the shorthand: a task name plus --data
        if data is None:
            import difflib

            hint = difflib.get_close_matches(spec, named.names(), n=1)
            raise PlugformerError(
                f"{spec!r} is neither a spec file nor a spec name"
                + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + "; `plugformer tasks` lists the names; with a task name, give --data FILE (or a dataset name)"
            )
        source = "command line"
        raw = {"task": spec, "data": _data_table(data, validation)}
    if data is not None and path.exists():
        raw["data"] = _data_table(data, validation)
    elif validation is not None:
        raw.setdefault("data", {})["validation"] = str(validation)
    return parse_model(TaskSpec, apply_overrides(raw, overrides), source)


@cli.command()
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
    s = _load_spec(spec, data, overrides, validation)
    from plugformer.finetune import finetune as run

    summary = run(s, backbone, out, resume=resume)
    summary.pop("val_history", None)
    click.echo(json.dumps(summary, indent=2))


def _is_checkpoint(path: Path) -> bool:
    return (path / "plugformer.json").is_file()


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
        raw["data"] = {split: str(data)} if data.exists() else {"dataset": str(data)}
    return parse_model(TaskSpec, apply_overrides(raw, overrides), f"{checkpoint} (stored spec)")


@cli.command()
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
    """
    if checkpoint is None:
        if not _is_checkpoint(Path(target)):
            raise PlugformerError(
                f"{target}: not a task checkpoint; give CHECKPOINT [--data FILE] "
                "or SPEC --checkpoint CHECKPOINT"
            )
        checkpoint = Path(target)
        s = _spec_from_checkpoint(checkpoint, data, split, overrides)
    else:
        s = _load_spec(target, None, overrides)
        if data is not None:
            s = s.model_copy(
                update={"data": s.data.model_copy(update={split: str(data), "dataset": None})}
            )
    from plugformer.fileio import atomic_write_json
    from plugformer.finetune import evaluate as run

    result = run(s, checkpoint, split=split)
    click.echo(json.dumps(result["metrics"], indent=2))  # shown even if the file cannot be written
    target = out or checkpoint.parent / f"eval_{split}.json"
    try:
        atomic_write_json(target, result)
    except PlugformerError as exc:
        if out is not None:  # asked for: a failure
            raise
        click.echo(f"plugformer: warning: result not saved ({exc}); pass --out FILE", err=True)


def _parse_input(text: str) -> Any:
    """An input line: a JSON object (``{"question": ..., "context": ...}``) or plain text."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlugformerError(f"input {text[:40]!r}: invalid JSON object ({exc.msg})") from None
    return text


def _split_field_flags(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """Texts, and ``--name value`` / ``--name=value`` pairs click left over: a task's own
    fields (``--question ... --context ...``), checked against its example model later."""
    texts: list[str] = []
    fields: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and len(arg) > 2:
            key, eq, value = arg[2:].partition("=")
            if not eq:
                if i + 1 >= len(args):
                    raise PlugformerError(f"predict: --{key} needs a value")
                value, i = args[i + 1], i + 1
            fields[key.replace("-", "_")] = value
        else:
            texts.append(arg)
        i += 1
    return texts, fields


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1)
@click.option(
    "--input",
    "input_file",
    type=click.File("r"),
    help="One input per line (text or JSON); - for stdin.",
)
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="NAME=VALUE",
    help="One field of a single input, e.g. --field premise='...' (repeatable). Any field of "
    "the task's examples also works as its own flag: --question ... --context ...",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "bf16", "int8"]),
    default=None,
    help="Inference precision (default: the checkpoint's [inference] precision); int8 "
    "quantises the linear layers dynamically, for fast CPU decoding.",
)
@click.pass_context
def predict(
    ctx: click.Context,
    checkpoint: Path,
    texts: tuple[str, ...],
    input_file: Any,
    fields: tuple[str, ...],
    precision: str | None,
) -> None:
    """Predict with a task checkpoint; one JSON line per input (with the input's id, if any)."""
    plain, one = _split_field_flags([*texts, *ctx.args])
    for item in fields:
        if "=" not in item:
            raise PlugformerError(f"--field {item!r}: expected NAME=VALUE")
        key, value = item.split("=", 1)
        one[key.strip()] = value
    inputs: list[Any] = [_parse_input(t) for t in plain]
    if one:
        inputs.append(one)
    if input_file is not None:
        for line in input_file:
            line = line.rstrip("\n")
            if line.strip():
                inputs.append(_parse_input(line))
    if not inputs and not sys.stdin.isatty():
        inputs = [_parse_input(line.rstrip("\n")) for line in sys.stdin if line.strip()]
    if not inputs:
        raise PlugformerError(
            "nothing to predict: give TEXT arguments, --field NAME=VALUE, --input FILE, or pipe lines on stdin"
        )
    import plugformer

    predictor = plugformer.load(checkpoint, precision)
    if not hasattr(predictor, "predict"):
        raise PlugformerError(
            f"{checkpoint}: a backbone checkpoint; use `plugformer generate` or fine-tune it first"
        )
    known = getattr(predictor.task, "Example", None)
    unknown = sorted(set(one) - set(getattr(known, "model_fields", one)))
    if unknown:
        raise PlugformerError(
            f"task {predictor.task.name!r} has no field {unknown[0]!r}; its fields: "
            + ", ".join(known.model_fields)  # type: ignore[union-attr]
        )
    for value, pred in zip(inputs, predictor.predict(inputs), strict=True):
        ident = value.get("id") if isinstance(value, dict) else None
        if ident is not None:
            pred = (
                {"id": ident, **pred}
                if isinstance(pred, dict)
                else {"id": ident, "prediction": pred}
            )
        click.echo(json.dumps(pred, ensure_ascii=False))


# --------------------------------------------------------------------------- assembly


def _add_optional_commands() -> None:
    from plugformer.data.commands import data

    cli.add_command(data)
    for modname, attr in (("plugformer.bench", "bench"), ("plugformer.quickstart", "quickstart")):
        try:
            import importlib

            mod = importlib.import_module(modname + "_cli")
            cli.add_command(getattr(mod, attr))
        except ModuleNotFoundError:
            pass


_CORE_COMMANDS: dict[str, click.Command] | None = None


def _add_plugin_commands() -> None:
    from plugformer import plugins

    try:
        pm = plugins.get_plugin_manager()
    except PlugformerError as exc:  # strict mode, or a broken environment
        click.echo(f"plugformer: {exc}", err=True)
        return
    global _CORE_COMMANDS
    if _CORE_COMMANDS is None:  # before any plugin added one (main may run more than once)
        _CORE_COMMANDS = dict(cli.commands)
    core = _CORE_COMMANDS  # core commands cannot be replaced or removed by a plugin
    for impl in pm.hook.register_commands.get_hookimpls():
        try:
            plugins._call_impl(impl, "register_commands", bounded=True, cli=cli)
        except Exception as exc:
            click.echo(
                f"plugformer: plugin {impl.plugin_name!r} failed to add commands: {exc}", err=True
            )
        for name, command in core.items():
            if cli.commands.get(name) is not command:
                cli.commands[name] = command
                click.echo(
                    f"plugformer: plugin {impl.plugin_name!r} may not replace the core command "
                    f"{name!r}; ignored",
                    err=True,
                )


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line for user errors, tracebacks only with --debug."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("PLUGFORMER_DEBUG") == "1"
    from plugformer.signals import install_default_handlers

    install_default_handlers()
    try:
        _add_optional_commands()
        _add_plugin_commands()
        cli.main(argv, prog_name="plugformer", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("plugformer: aborted", err=True)
        sys.exit(130)
    except Interrupted as exc:
        click.echo(f"plugformer: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except PlugformerError as exc:
        if debug:
            raise
        click.echo(f"plugformer: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("plugformer: interrupted by SIGINT", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        click.echo(
            f"plugformer: unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
