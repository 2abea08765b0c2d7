"""Built-in commands that run a checkpoint on inputs: ``predict`` (task) and ``generate`` (backbone)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from plugformer.errors import PlugformerError

__all__ = ["generate", "predict"]


@click.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("prompt")
@click.option("--max-new-tokens", default=64, show_default=True)
@click.option("--temperature", default=0.0, show_default=True, help="0 = greedy.")
@click.option("--top-k", type=int, default=None)
@click.option("--top-p", type=float, default=None)
@click.option("--repetition-penalty", default=1.0, show_default=True)
@click.option(
    "--no-repeat-ngram-size",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Never repeat an n-gram of the completion of this size (0: off).",
)
@click.option("--seed", type=int, default=0, show_default=True)
def generate(
    checkpoint: Path,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    repetition_penalty: float,
    no_repeat_ngram_size: int,
    seed: int,
) -> None:
    """Continue PROMPT with a backbone checkpoint (KV-cache decoding)."""
    from plugformer.checkpoint import load_backbone
    from plugformer.inference.generation import SamplingConfig
    from plugformer.inference.generation import generate as gen
    from plugformer.models.families import check_decodable

    cfg = SamplingConfig(  # checked (one line) before the checkpoint is read
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        repetition_penalty=repetition_penalty,
        seed=seed,
        no_repeat_ngram_size=no_repeat_ngram_size,
    )
    loaded = load_backbone(checkpoint)
    if not loaded.model.causal:
        raise PlugformerError(
            f"{checkpoint}: a bidirectional (masked-LM) backbone cannot generate text"
        )
    try:
        check_decodable(loaded.model)
    except PlugformerError as exc:
        raise PlugformerError(f"{checkpoint}: {exc}") from None
    tok = loaded.tokenizer
    ids = [tok.bos_id, *tok.encode(prompt)]
    room = loaded.model.max_seq_len - len(ids)  # new tokens the context leaves
    if room < 1:
        raise PlugformerError(
            f"prompt: {len(ids)} tokens (with <bos>) fill {checkpoint}'s context of "
            f"{loaded.model.max_seq_len} tokens, leaving none to generate; shorten it"
        )
    if max_new_tokens > room:
        click.echo(
            f"plugformer: note: the context ({loaded.model.max_seq_len} tokens) leaves room "
            f"for {room} new tokens after the prompt, not {max_new_tokens}",
            err=True,
        )
    out = gen(loaded.model, [ids], cfg, eos_id=tok.eos_id, pad_id=tok.pad_id)[0]
    click.echo(prompt + tok.decode(out))


def _parse_input(text: str, where: str | None = None) -> Any:
    """An input line: a JSON object (``{"question": ..., "context": ...}``) or plain text;
    ``where`` (``file:line``) names it in errors."""
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            what = where or f"input {text[:40]!r}"
            raise PlugformerError(f"{what}: invalid JSON object ({exc.msg})") from None
    return text


def _lines(stream: Any, name: str) -> Any:
    """``(line number, text)`` of a byte stream's lines, decoded as UTF-8 one by one, so that a
    line that is not UTF-8 is one error naming ``name:line``."""
    for n, raw in enumerate(stream, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PlugformerError(
                f"{name}:{n}: not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
        yield n, text.removeprefix("\ufeff") if n == 1 else text


def _check_inputs(task: Any, inputs: list[Any], places: list[str]) -> None:
    """Refuse the first input the task cannot read, naming where it came from (``file:line``,
    ``<stdin>:line``, ``argument N``), before anything is predicted or printed."""
    for value, where in zip(inputs, places, strict=True):
        try:
            task.read_input(value)
        except PlugformerError as exc:
            message = str(exc).removeprefix("<input>: ").removeprefix("<input>")
            raise type(exc)(f"{where}: {message}") from None


def _field_value(text: str) -> Any:
    """A ``--field`` value: a JSON list when it reads as one (``tokens='["a", "b"]'``, for a
    field that holds a list), else the text as given."""
    if text.lstrip().startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(value, list):
            return value
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
            fields[key.replace("-", "_")] = _field_value(value)
        else:
            texts.append(arg)
        i += 1
    return texts, fields


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.argument("texts", nargs=-1)
@click.option(
    "--input",
    "input_file",
    type=click.File("rb"),
    help="One input per line (text or JSON, UTF-8), or one per row of a .csv/.tsv file with a "
    "header; - for stdin.",
)
@click.option(
    "--field",
    "fields",
    multiple=True,
    metavar="NAME=VALUE",
    help="One field of a single input, e.g. --field premise='...' (repeatable; a JSON list for "
    'a field that holds one: --field tokens=\'["a", "b"]\'). Any field of the task\'s '
    "examples also works as its own flag: --question ... --context ...",
)
@click.option(
    "--option",
    "task_options",
    multiple=True,
    metavar="NAME=VALUE",
    help="Change a task option saved in the checkpoint, for this run: decoding settings such "
    "as --option beam_size=8 or --option no_repeat_ngram_size=3 (repeatable).",
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
    task_options: tuple[str, ...],
    precision: str | None,
) -> None:
    """Predict with a task checkpoint; one JSON line per input (with the input's id, if any)."""
    plain, one = _split_field_flags([*texts, *ctx.args])
    for item in fields:
        if "=" not in item:
            raise PlugformerError(f"--field {item!r}: expected NAME=VALUE")
        key, value = item.split("=", 1)
        one[key.strip()] = _field_value(value)
    inputs: list[Any] = [_parse_input(t) for t in plain]
    places = [f"argument {i}" for i in range(1, len(inputs) + 1)]
    if one:
        inputs.append(one)
        places.append("the --field values")
    if input_file is not None:
        name = getattr(input_file, "name", "<stdin>")
        name = "<stdin>" if name in ("<stdin>", "-") or not isinstance(name, str) else name
        if Path(name).suffix.lower() in (".csv", ".tsv"):
            # A table: one input per row, its header naming the fields (or the columns the
            # checkpoint was trained with), as `finetune --data` reads it; not one per line.
            from plugformer.data.readers import read_records

            input_file.close()
            for where, record in read_records(name):
                inputs.append(record)
                places.append(where)
        else:
            for n, line in _lines(input_file, name):
                line = line.rstrip("\r\n")
                if line.strip():
                    inputs.append(_parse_input(line, f"{name}:{n}"))
                    places.append(f"{name}:{n}")
        if not inputs:
            raise PlugformerError(f"{name}: no inputs in it (empty, blank lines or a header only)")
    if not inputs and not sys.stdin.isatty():
        for n, line in _lines(sys.stdin.buffer, "<stdin>"):
            if line.strip():
                inputs.append(_parse_input(line.rstrip("\r\n"), f"<stdin>:{n}"))
                places.append(f"<stdin>:{n}")
    if not inputs:
        raise PlugformerError(
            "nothing to predict: give TEXT arguments, --field NAME=VALUE, --input FILE, or pipe lines on stdin"
        )
    import plugformer
    from plugformer.config import apply_overrides

    for item in task_options:
        if "=" not in item:
            raise PlugformerError(f"--option {item!r}: expected NAME=VALUE, e.g. beam_size=8")
    options = apply_overrides({}, list(task_options)) or None
    predictor = plugformer.load(checkpoint, precision, options)
    if not hasattr(predictor, "predict"):
        raise PlugformerError(
            f"{checkpoint}: a backbone checkpoint; use `plugformer generate` or fine-tune it first"
        )
    known = getattr(predictor.task, "Example", None)
    columns = getattr(predictor.task.options, "columns", None) or {}
    unknown = sorted(set(one) - set(getattr(known, "model_fields", one)) - set(columns.values()))
    if unknown:
        raise PlugformerError(
            f"task {predictor.task.name!r} has no field {unknown[0]!r}; its fields: "
            + ", ".join(known.model_fields)  # type: ignore[union-attr]
        )
    _check_inputs(predictor.task, inputs, places)
    for value, pred in zip(inputs, predictor.predict(inputs), strict=True):
        ident = value.get("id") if isinstance(value, dict) else None
        if ident is not None:
            pred = (
                {"id": ident, **pred}
                if isinstance(pred, dict)
                else {"id": ident, "prediction": pred}
            )
        click.echo(json.dumps(pred, ensure_ascii=False))
