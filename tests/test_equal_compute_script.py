"""``benchmarks/equal_compute.py``'s ``--set`` overrides: parsed as TOML values, applied by path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "equal_compute.py"


@pytest.fixture(scope="module")
def equal_compute():
    spec = importlib.util.spec_from_file_location("equal_compute", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_set_values_are_toml(equal_compute):
    got = equal_compute.parse_set(
        ["finetune.lr_backbone=3e-3", "finetune.batch_size=32", "options.decoding=greedy"]
    )
    assert got == {
        "finetune.lr_backbone": 0.003,
        "finetune.batch_size": 32,
        "options.decoding": "greedy",
    }
    assert isinstance(got["finetune.batch_size"], int)


def test_set_without_a_value_is_refused(equal_compute):
    with pytest.raises(SystemExit, match=r"SECTION\.FIELD=VALUE"):
        equal_compute.parse_set(["finetune.lr_backbone"])


def test_overrides_replace_the_cells_settings_by_path(equal_compute):
    config = {"finetune": {"lr_backbone": 1.5e-2, "batch_size": 64}, "data": {"max_eval": 100}}
    equal_compute._apply(config, {"finetune.lr_backbone": 3e-3, "options.beam_size": 2})
    assert config == {
        "finetune": {"lr_backbone": 3e-3, "batch_size": 64},
        "data": {"max_eval": 100},
        "options": {"beam_size": 2},
    }
