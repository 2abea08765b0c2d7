"""Reading config files: TOML loading, ``--set KEY=VALUE`` overrides, and pydantic validation
errors turned into one line that names the file (or the override) and the field.

The config models themselves live in :mod:`plugformer.config`, which re-exports these names;
this module knows nothing of them, so any pydantic model (a task's ``Options``, a suite) is
loaded and reported the same way.
"""

from __future__ import annotations

import datetime
import difflib
import json
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from plugformer.errors import ConfigError

__all__ = [
    "apply_overrides",
    "format_validation_error",
    "load_toml",
    "override_list",
    "parse_model",
]

M = TypeVar("M", bound=BaseModel)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file; a missing file or a syntax error is one ConfigError line."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, expected a TOML config file")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: not a regular file, expected a TOML config file")
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        # utf-8-sig: a byte-order mark (Windows editors write one) is dropped, not an error
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    _refuse_dates(data, str(path), "")
    return data


def _refuse_dates(value: Any, source: str, where: str) -> None:
    """TOML dates and times have no place in a plugformer config: name the first one."""
    if isinstance(value, datetime.date | datetime.time):
        raise ConfigError(
            f"{source}: {where or 'value'}: a TOML date/time ({value.isoformat()}) where no config "
            "field takes one; quote it if you mean text"
        )
    if isinstance(value, dict):
        for k, v in value.items():
            _refuse_dates(v, source, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_dates(v, source, f"{where}[{i}]")


def _parse_value(raw: str) -> Any:
    """``--set`` values are TOML literals where they parse (1, 2.5, true, "x", [1, 2]), else strings."""
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        return raw
    return raw if isinstance(value, datetime.date | datetime.time) else value


def override_list(overrides: Any) -> tuple[str, ...]:
    """``overrides`` (a list of ``KEY=VALUE`` strings, from Python or ``--set``) as a tuple;
    one string is refused: iterating it would apply one override per character."""
    if isinstance(overrides, str | bytes):
        raise TypeError(
            f"overrides must be a list of KEY=VALUE strings, e.g. [{overrides!r}], not one string"
        )
    out = tuple(overrides)
    for item in out:
        if not isinstance(item, str):
            raise TypeError(f"overrides: {item!r} is not a KEY=VALUE string")
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``a.b=c`` overrides to a nested dict (returns a new dict)."""
    data = json.loads(json.dumps(data))  # deep copy of plain data
    for item in override_list(overrides):
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. model.d_model=128")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(p.strip() for p in parts):  # "..=5", ".trainer=5", "=5"
            raise ConfigError(
                f"--set {item!r}: expected a dotted key such as trainer.max_steps before '='"
            )
        node = data
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {p!r} is not a table")
        node[parts[-1]] = _parse_value(raw.strip())
    return data


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names valid at the location of an error (for did-you-mean)."""
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return []
    return list(model.model_fields)


def format_validation_error(
    exc: ValidationError, model: type[BaseModel], source: str, prefix: str = ""
) -> str:
    """One line for every error (up to five): ``file: field a.b: what was expected; ...``;
    ``prefix`` (``model.options``) is where ``model`` sits in the file."""
    errors = exc.errors()
    shown = "; ".join(_describe_error(err, model, prefix) for err in errors[:_ERRORS_SHOWN])
    more = len(errors) - _ERRORS_SHOWN
    return f"{source}: {shown}" + (
        f" [and {more} more error{'s' if more > 1 else ''}]" if more > 0 else ""
    )


_ERRORS_SHOWN = 5
"""Errors one message names; a file with more gets a count of the rest."""


def _describe_error(err: Any, model: type[BaseModel], prefix: str = "") -> str:
    """``field a.b: what was expected (got ...)`` for one pydantic error."""
    loc = tuple(err["loc"])
    where = tuple(prefix.split(".")) if prefix else ()
    dotted = ".".join(str(p) for p in (*where, *loc)) or "(top level)"
    if err["type"] == "extra_forbidden":
        candidates = _fields_at(model, loc)
        hint = difflib.get_close_matches(str(loc[-1]), candidates, n=1)
        return f"unknown key {dotted!r}" + (
            f" (did you mean {'.'.join([*where, *map(str, loc[:-1]), hint[0]])!r}?)" if hint else ""
        )
    if err["type"] == "missing":  # its "input" is the table the key is missing from
        return f"missing key {dotted!r}"
    got = err.get("input")
    shown = repr(got) if not isinstance(got, dict) else "a table"
    text = err["msg"]
    if err["type"] == "value_error":  # a validator's own sentence, without pydantic's prefix
        text = str(err.get("ctx", {}).get("error", text.removeprefix("Value error, ")))
    # a rule over a whole table names its fields itself: the table is not shown
    whole = err["type"] == "value_error" and isinstance(got, dict)
    if not (loc or where):
        return text
    return f"{dotted}: {text}" + ("" if whole else f" (got {shown[:60]})")


def parse_model(
    model: type[M],
    data: dict[str, Any],
    source: str = "<config>",
    overrides: list[str] | tuple[str, ...] = (),
    prefix: str = "",
) -> M:
    """Validate ``data`` against ``model``; errors become one ConfigError line, naming
    ``source``, or the ``--set`` override that brought the bad key or value in. ``prefix``
    (``model.options``) is where ``data`` sits in the file: errors name ``prefix.key``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(first["loc"]))
        unknown = first["type"] == "extra_forbidden"
        # a rule over a whole table (`model`) that names the field it refused (`preset`)
        ruling = first["type"] == "value_error" and isinstance(first.get("input"), dict)
        for item in reversed(overrides):  # a key given twice: the last one is the one used
            key = item.split("=", 1)[0].strip()
            inside = key.startswith(loc + ".") if loc else "." not in key
            named = ruling and key.rsplit(".", 1)[-1] in str(first.get("msg", ""))
            # an unknown section (`--set trainr.max_steps=5`) is a prefix of the key
            if loc == key or loc.startswith(key + ".") or (inside and (unknown or named)):
                source = f"--set {item.strip()}"
                break
        raise ConfigError(format_validation_error(exc, model, source, prefix)) from None
