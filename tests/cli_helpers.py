"""Helpers of the hostile-input tests (tests/test_hostile_*.py): run ``plugformer`` in-process
and read its one error line; write a TOML config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugformer.cli.main import main


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``plugformer ARGS`` in-process; (exit code, the single error line)."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("plugformer:")]
    assert len(lines) == 1, err[-3000:]
    return int(exit_info.value.code or 0), lines[0]


def toml(path: Path, cfg: dict) -> Path:
    lines = [f"{k} = {json.dumps(v)}" for k, v in cfg.items() if not isinstance(v, dict)]
    for table, values in cfg.items():
        if isinstance(values, dict):
            lines += [f"[{table}]", *(f"{k} = {json.dumps(v)}" for k, v in values.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def main_code(capsys, *args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exc:
        capsys.readouterr()
        return int(exc.code or 0)
    capsys.readouterr()
    return 0
