"""Configuration: TOML loading, overrides, clear one-line errors, presets, schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugformer.config import (
    MODEL_PRESETS,
    ModelConfig,
    PretrainConfig,
    TaskSpec,
    apply_overrides,
    load_config,
)
from plugformer.errors import ConfigError
from plugformer.tomlconfig import load_toml


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_loads_toml_and_applies_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "[model]\nd_model = 64\nn_heads = 4\n[trainer]\nmax_steps = 5\n")
    cfg = load_config(
        path, PretrainConfig, ["model.n_layers=3", "optim.lr=0.01", "data.corpus=['a.txt']"]
    )
    assert (cfg.model.d_model, cfg.model.n_layers, cfg.trainer.max_steps) == (64, 3, 5)
    assert cfg.optim.lr == 0.01 and cfg.data.corpus == ["a.txt"]


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, "[model]\nn_layer = 2\n")
    with pytest.raises(
        ConfigError,
        match=r"c.toml: unknown key 'model.n_layer' \(did you mean 'model.n_layers'\?\)",
    ):
        load_config(path)


def test_type_error_names_file_and_dotted_path(tmp_path: Path) -> None:
    path = write(tmp_path, '[trainer]\nbatch_size = "big"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: trainer.batch_size:") and "\n" not in msg


def test_a_rule_over_a_table_reads_as_its_own_sentence(tmp_path: Path) -> None:
    """Before: "c.toml: model: Value error, n_heads (4) must divide d_model (30) (got a table)",
    and a rule over the whole file began "(top level): Value error, ..."."""
    from plugformer.suites.config import load_suite

    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, "[model]\nd_model = 30\nn_heads = 4\n"))
    assert str(err.value) == f"{tmp_path / 'c.toml'}: model: n_heads (4) must divide d_model (30)"
    suite = tmp_path / "s.toml"
    suite.write_text(
        'tasks = ["t"]\nbackbones = [{name = "a", ref = "x"}, {name = "a", ref = "y"}]\n'
    )
    with pytest.raises(ConfigError) as err:
        load_suite(suite)
    assert str(err.value) == f"{suite}: backbones: duplicates a"


def test_config_validate_takes_a_suite_without_a_name(tmp_path: Path, capsys) -> None:
    """Before: "s.toml: name: Field required" for a suite file that `plugformer bench` runs
    (its name defaults to the file's)."""
    from plugformer.cli.main import main

    suite = tmp_path / "s.toml"
    suite.write_text(
        'tasks = ["movie-reviews"]\nseeds = 2\nbaselines = false\n'
        'backbones = [{name = "a", ref = "x"}]\n'
    )
    main(["config", "validate", str(suite)])  # returns: no error
    out, err = capsys.readouterr()
    assert '"name": "s"' in out
    assert "valid suite config (2 cells)" in err  # two seeds of "a"


def test_config_validate_checks_a_suite_as_bench_would(tmp_path: Path, capsys) -> None:
    """Before: a suite was checked against its schema only, so "valid" could name a spec that
    does not exist or a backbone override the task refuses; `plugformer bench` then failed.
    Now the same checks as bench's plan run, without checkpoints or downloads."""
    from plugformer.cli.main import main

    suite = tmp_path / "s.toml"
    suite.write_text('tasks = ["movie-reviewz"]\nbackbones = [{name = "a", ref = "nowhere"}]\n')
    with pytest.raises(SystemExit) as exit_:
        main(["config", "validate", str(suite)])
    assert exit_.value.code != 0
    assert "movie-reviewz" in capsys.readouterr().err
    suite.write_text(
        'tasks = ["movie-reviews"]\nbackbones = [{name = "a", ref = "nowhere", '
        'overrides = { options = { poolin = "mean" } } }]\n'
    )
    with pytest.raises(SystemExit) as exit_:
        main(["config", "validate", str(suite)])
    assert exit_.value.code != 0
    err = capsys.readouterr().err
    assert "backbone 'a'" in err and "poolin" in err
    main(["config", "validate", "default", "--kind", "suite"])
    assert "valid suite config (" in capsys.readouterr().err
    # a backbone's family and recipe are checked too (its checkpoint may be made later)
    for ref, reason in [
        ("scrach:runs/x/final", "unknown backbone family 'scrach'"),
        ("scratch:", "names no checkpoint or model after the family"),
        ("hf:minilm-l7", "did you mean 'minilm-l6'?"),
    ]:
        suite.write_text(
            f'tasks = ["movie-reviews"]\nbackbones = [{{name = "a", ref = "{ref}"}}]\n'
        )
        with pytest.raises(SystemExit) as exit_:
            main(["config", "validate", str(suite)])
        err = capsys.readouterr().err
        assert exit_.value.code != 0 and f"{suite}: backbone 'a': " in err and reason in err


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write(tmp_path, "[model\n"))


def test_cross_field_rules() -> None:
    with pytest.raises(ValueError, match="must divide"):
        ModelConfig(d_model=30, n_heads=4)
    assert PretrainConfig(objective="mlm").model.causal is False


def test_presets_fill_unset_fields() -> None:
    cfg = ModelConfig(preset="tiny", n_layers=3)
    assert cfg.d_model == MODEL_PRESETS["tiny"]["d_model"] and cfg.n_layers == 3
    with pytest.raises(ValueError, match="did you mean 'tiny'"):
        ModelConfig(preset="tinny")


def test_override_syntax_errors() -> None:
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["model.d_model"])


def test_task_spec_requires_data() -> None:
    with pytest.raises(ValueError, match=r"data\.dataset"):
        TaskSpec(task="sentiment", data={})


def test_repo_configs_validate() -> None:
    root = Path(__file__).resolve().parents[1]
    paths = sorted((root / "core" / "src" / "plugformer" / "configs" / "pretrain").glob("*.toml"))
    assert paths
    for path in paths:
        load_config(path, PretrainConfig)


def test_finetune_and_trainer_share_one_set_of_hardware_settings() -> None:
    """Issue 18: fine-tuning reuses the trainer's hardware settings (same fields, same
    defaults) instead of copying them; the TOML keys under [finetune] stay as users write them."""
    from plugformer.config import FinetuneConfig, HardwareConfig, TaskSpec, TrainerConfig

    shared = set(HardwareConfig.model_fields)
    assert shared == {"precision", "strategy", "accelerator", "devices", "num_nodes", "progress"}
    assert issubclass(FinetuneConfig, HardwareConfig) and issubclass(TrainerConfig, HardwareConfig)
    assert FinetuneConfig().hardware() == TrainerConfig().hardware()
    assert FinetuneConfig().precision == "auto"
    spec = TaskSpec.model_validate(
        {
            "task": "sentiment",
            "data": {"train": "t.jsonl"},
            "finetune": {"precision": "32-true", "devices": 1, "accelerator": "cpu"},
        }
    )
    assert spec.finetune.hardware()["precision"] == "32-true"
    assert TrainerConfig(**spec.finetune.hardware()).accelerator == "cpu"


def test_every_error_of_a_file_is_named_in_its_one_line() -> None:
    """Two mistakes in one spec: both are named (the first used to hide behind
    "[and 1 more error]"); past five, the rest are counted."""
    from plugformer.config import TaskSpec, parse_model
    from plugformer.errors import ConfigError

    raw = {"task": "sentiment", "bogus": 1, "finetune": {"max_stepz": 3}}
    with pytest.raises(ConfigError) as info:
        parse_model(TaskSpec, raw, "spec.toml")
    line = str(info.value)
    assert "\n" not in line and line.startswith("spec.toml: ")
    assert "unknown key 'bogus'" in line
    assert "unknown key 'finetune.max_stepz' (did you mean 'finetune.max_steps'?)" in line
    assert "more error" not in line

    many = {"task": "sentiment", **{f"bogus{i}": i for i in range(6)}}
    with pytest.raises(ConfigError, match=r"\[and 2 more errors\]$") as info:
        parse_model(TaskSpec, many, "spec.toml")
    assert "missing key 'data'" in str(info.value)  # not "Field required (got a table)"


def test_a_key_set_twice_blames_the_last_set_the_one_used(tmp_path: Path) -> None:
    """Before: the error named the first ``--set`` of the key, whose value was overridden."""
    path = write(tmp_path, "[trainer]\nmax_steps = 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, PretrainConfig, ["trainer.max_steps=3", "trainer.max_steps=0"])
    msg = str(err.value)
    assert msg.startswith("--set trainer.max_steps=0:"), msg


def test_a_toml_file_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    """Before: a config saved by a Windows editor (UTF-8 with a BOM) was "invalid TOML:
    Invalid statement (at line 1, column 1)"."""
    path = tmp_path / "c.toml"
    path.write_bytes(b"\xef\xbb\xbfseed = 3\n[trainer]\nmax_steps = 5\n")
    assert load_toml(path) == {"seed": 3, "trainer": {"max_steps": 5}}
