"""Suite files a user gets wrong: each is one line naming the file and field, before any cell.

Found in a user audit of ``plugformer bench`` (the toy workspace and fakes are in
``conftest.py``; the mistakes the earlier audits found are in ``test_suites.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from plugformer.errors import PlugformerError
from plugformer.suites.bench import run_suite
from tests.bench.conftest import Fakes, quiet, write_suite


@pytest.mark.parametrize(
    ("fields", "expect"),
    [
        # accepted, then 'unexpected error: OverflowError: cannot convert float infinity to
        # integer' from the ETA once the cells were planned
        ({"budget_scale": "inf"}, "bad-input.toml: budget_scale: Input should be a finite number"),
        (
            {"overrides": "{finetune = {max_minutes = inf}}"},
            "bad-input.toml: its overrides on alpha.toml: finetune.max_minutes: Input should be "
            "a finite number",
        ),
    ],
)
def test_a_bad_suite_is_one_line_before_any_cell(
    workspace: Path, fakes: Fakes, fields: dict[str, str], expect: str
) -> None:
    run = workspace / "runs" / "bad-input"
    with pytest.raises(PlugformerError) as err:
        run_suite(write_suite(workspace, "bad-input", **fields), run, log=quiet)
    assert expect in str(err.value)
    assert not fakes.finetunes and not run.exists()
