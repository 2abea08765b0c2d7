"""Hostile input, configs and specs: bad TOML, unknown keys and values, bad ``--set`` overrides,
specs naming missing data or bad options. Every case gives exit 2 and exactly one ``plugformer:
error:`` line naming the file (and line where there is one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_helpers import cli, main_code, toml

# --------------------------------------------------------------------------- configs


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"[model\nx=1", "invalid TOML"),
        (b"\xff\xfe[model]", "not UTF-8"),
        (b"[model]\nd_model = 'wide'", "model.d_model"),
        (b"[trainer]\nmax_step = 10", "did you mean 'trainer.max_steps'"),
        (b"[model]\nn_heads = 3\nd_model = 16", "must divide"),
        (b"model = 5", "model"),
        (b"[trainer]\nbatch_size = -1", "trainer.batch_size"),
        # absurdly large: refused here, where before they failed (or hung) inside training
        (b"[trainer]\nbatch_size = 1000000000000", "less than or equal to 65536"),
        (b"[trainer]\nmax_steps = 9223372036854775807", "trainer.max_steps"),
        (b"[model]\npreset = 'huge'", "unknown preset"),
        (b"x = " + b"[" * 5000 + b"]" * 5000, ""),  # deep nesting: an error, not a crash
    ],
)
def test_config_validate_bad_files(content: bytes, expect: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    code, line = cli(capsys, "config", "validate", str(path))
    assert code == 2 and str(path) in line and expect in line


def test_config_missing_file_and_bad_override(tmp_path: Path, capsys) -> None:
    code, line = cli(capsys, "config", "validate", str(tmp_path / "nope.toml"))
    assert code == 2 and "no such config file" in line
    # paths that exist but are no file are named for what they are, not "no such file"
    code, line = cli(capsys, "config", "validate", str(tmp_path))
    assert code == 2 and "is a directory" in line
    code, line = cli(capsys, "config", "validate", "/dev/null")
    assert code == 2 and "not a regular file" in line
    good = toml(tmp_path / "ok.toml", {"seed": 1})
    code, line = cli(capsys, "config", "validate", str(good), "--set", "seed")
    assert code == 2 and "KEY=VALUE" in line
    code, line = cli(capsys, "config", "validate", str(good), "--set", "seed.x=1")
    assert code == 2 and "not a table" in line
    # A rule over a whole table that names the field: the --set that set it is blamed (it
    # named the file before, which has no preset).
    code, line = cli(
        capsys, "config", "validate", str(good), "--kind", "pretrain", "--set", "model.preset=huge"
    )
    assert code == 2 and line.startswith("plugformer: error: --set model.preset=huge: "), line


def test_a_missing_data_file_is_not_called_an_unknown_dataset(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Before: `finetune TASK --data missing.jsonl` said "unknown dataset 'missing.jsonl'"."""
    missing = tmp_path / "missing.jsonl"
    code, line = cli(capsys, "finetune", "sentiment", "--data", str(missing))
    assert code == 2 and line == f"plugformer: error: {missing}: no such file"
    code, line = cli(capsys, "finetune", "sentiment", "--data", "movie-review-sentencez")
    assert code == 2 and "no such file" not in line  # a bare name is still a dataset name


def test_a_spec_whose_data_file_is_missing_names_the_spec_and_field(
    capsys: pytest.CaptureFixture[str], micro_checkpoint: Path, tmp_path: Path
) -> None:
    """Before: "plugformer: error: gone.jsonl: no such file", naming neither the spec nor which
    of its data fields gave the path."""
    spec = tmp_path / "reviews.toml"
    spec.write_text('task = "sentiment"\n[data]\ntrain = "gone.jsonl"\n')
    code, line = cli(
        capsys,
        "finetune",
        str(spec),
        "--backbone",
        str(micro_checkpoint),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2 and line == (
        f"plugformer: error: spec 'reviews': data.train: {tmp_path / 'gone.jsonl'}: no such file"
    )


def test_a_bad_set_override_is_named_as_the_override(tmp_path: Path, capsys) -> None:
    """Before: ``--set model.nope=1`` was reported as an unknown key of the config file."""
    good = toml(tmp_path / "ok.toml", {"seed": 1})
    code, line = cli(capsys, "config", "validate", str(good), "--set", "model.nope=1")
    assert code == 2 and line.endswith("--set model.nope=1: unknown key 'model.nope'")
    code, line = cli(capsys, "config", "validate", str(good), "--set", "seed=abc")
    assert code == 2 and "--set seed=abc: seed:" in line
    bad = toml(tmp_path / "bad.toml", {"seed": 1, "model": {"nope": 1}})
    code, line = cli(capsys, "config", "validate", str(bad), "--set", "seed=2")
    assert code == 2 and f"{bad}: unknown key 'model.nope'" in line  # the file's own error
    # A typo in the section (the first part of the key) is the override's too.
    code, line = cli(capsys, "config", "validate", str(good), "--set", "trainr.max_steps=20")
    assert code == 2 and "--set trainr.max_steps=20: unknown key 'trainr'" in line, line
    for empty in ("..=5", ".trainer=5", "=5"):  # blamed the config file's "(top level)"
        code, line = cli(capsys, "config", "validate", str(good), "--set", empty)
        assert code == 2 and f"--set {empty!r}: expected a dotted key" in line, line


def test_config_validate_checks_a_specs_task_and_options(tmp_path: Path, capsys) -> None:
    """Before: a spec with a misspelt option or an unknown task was "valid", and finetune then
    refused it."""
    spec = toml(
        tmp_path / "s.toml", {"task": "sentiment", "data": {"dataset": "movie-review-sentences"}}
    )
    assert main_code(capsys, "config", "validate", str(spec)) == 0
    bad = toml(
        tmp_path / "o.toml",
        {"task": "sentiment", "data": {"dataset": "x"}, "options": {"poolin": "mean"}},
    )
    code, line = cli(capsys, "config", "validate", str(bad))
    assert code == 2 and "options of task 'sentiment'" in line and "poolin" in line
    unknown = toml(tmp_path / "t.toml", {"task": "sentimnt", "data": {"dataset": "x"}})
    code, line = cli(capsys, "config", "validate", str(unknown))
    assert code == 2 and f"{unknown}: unknown task 'sentimnt'" in line  # names the file
    bounded = toml(
        tmp_path / "m.toml",
        {"task": "sentiment", "data": {"dataset": "x"}, "options": {"max_length": -1}},
    )
    code, line = cli(capsys, "config", "validate", str(bounded))
    assert code == 2 and "max_length" in line and "greater than or equal to 1" in line, line


def test_config_validate_checks_that_a_specs_data_exists(tmp_path: Path, capsys) -> None:
    """Before: a spec naming an unknown dataset or a missing data file was "valid" (the schema
    only), and finetune then refused it. Now validate finds both, as finetune does, in one line
    naming the spec file and the field, and fetches nothing."""
    typo = toml(tmp_path / "d.toml", {"task": "sentiment", "data": {"dataset": "movie-reviewz"}})
    code, line = cli(capsys, "config", "validate", str(typo))
    assert code == 2 and line.startswith(
        f"plugformer: error: {typo}: data.dataset: unknown dataset 'movie-reviewz'"
    ), line
    # data files are relative to the spec file, as finetune reads them
    gone = toml(tmp_path / "f.toml", {"task": "sentiment", "data": {"train": "gone.jsonl"}})
    code, line = cli(capsys, "config", "validate", str(gone))
    assert code == 2 and line == (
        f"plugformer: error: {gone}: data.train: {tmp_path / 'gone.jsonl'}: no such file"
    )
    code, line = cli(capsys, "config", "validate", str(gone), "--set", "data.test=nope.csv")
    assert code == 2 and "data.train" in line  # the file's own first
    (tmp_path / "gone.jsonl").write_text('{"text": "fine", "label": "pos"}\n')
    assert main_code(capsys, "config", "validate", str(gone)) == 0
    code, line = cli(capsys, "config", "validate", str(gone), "--set", "data.test=nope.csv")
    assert code == 2 and line == f"plugformer: error: {gone}: data.test: nope.csv: no such file"
    # a suite's specs are checked the same way
    suite = tmp_path / "suite.toml"
    suite.write_text(f'tasks = ["{typo}"]\nbackbones = [{{name = "a", ref = "nowhere"}}]\n')
    code, line = cli(capsys, "config", "validate", str(suite))
    assert code == 2 and f"{typo}: data.dataset: unknown dataset" in line, line
    # a registered dataset is looked up, not fetched
    from plugformer.data.cache import plugformer_home

    known = toml(tmp_path / "k.toml", {"task": "sentiment", "data": {"dataset": "vader-nyt"}})
    assert main_code(capsys, "config", "validate", str(known)) == 0
    assert not (plugformer_home() / "data").exists() and not any(plugformer_home().glob("*"))


def test_finetune_and_bench_name_the_spec_file_of_a_bad_option(
    tmp_path: Path, capsys, micro_checkpoint: Path
) -> None:
    """Before: finetune said only "options of task 'sentiment': …", not which file, and a suite
    found the error when it built the cell."""
    bad = toml(
        tmp_path / "o.toml",
        {"task": "sentiment", "data": {"dataset": "x"}, "options": {"poolin": "mean"}},
    )
    code, line = cli(capsys, "finetune", str(bad), "--backbone", "scratch:nowhere")
    assert code == 2 and line.endswith(
        f"{bad}: options of task 'sentiment': unknown key 'poolin' (did you mean 'pooling'?)"
    )
    good = toml(tmp_path / "g.toml", {"task": "sentiment", "data": {"dataset": "x"}})
    code, line = cli(capsys, "finetune", str(good), "--set", "options.pooling=meen")
    assert code == 2 and "--set options.pooling=meen: pooling: Input should be" in line
    suite = tmp_path / "suite.toml"
    suite.write_text(
        f'tasks = ["{bad}"]\nbackbones = [{{name = "b", ref = "{micro_checkpoint}"}}]\n'
    )
    code, line = cli(capsys, "bench", str(suite), "--out", str(tmp_path / "runs"))
    assert code == 2 and f"{bad}: options of task 'sentiment'" in line
    suite.write_text(
        f'tasks = ["{good}"]\nbackbones = [{{name = "b", ref = "{micro_checkpoint}"}}]\n'
        '[overrides]\noptions = {pooling = "meen"}\n'
    )
    code, line = cli(capsys, "bench", str(suite), "--out", str(tmp_path / "runs"))
    assert code == 2 and f"{suite}: its overrides on g.toml: options of task" in line
    assert not (tmp_path / "runs").exists()
