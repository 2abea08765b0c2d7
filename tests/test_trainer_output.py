"""What a training run prints: the progress bar's title, and no warnings users cannot act on."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tests.conftest import micro_config


def test_progress_bar_title_has_no_epoch_limit(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
):
    """Runs end on steps or minutes (Lightning's max_epochs = -1): the bar reads "Epoch 0",
    never Lightning's "Epoch 0/-2"."""
    from plugformer.config import PretrainConfig, parse_model
    from plugformer.training.pretrain import pretrain

    monkeypatch.setenv("PLUGFORMER_PROGRESS", "1")
    cfg = micro_config(corpus_file, tmp_path / "run", max_steps=3, val_every=3, progress=True)
    pretrain(parse_model(PretrainConfig, cfg))
    out = capfd.readouterr()
    shown = out.out + out.err
    assert "Epoch 0" in shown
    assert "/-2" not in shown


def test_progress_bar_draws_on_stderr_leaving_stdout_to_the_summary(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
):
    """``plugformer pretrain ... > summary.json`` must get the summary alone: the bar goes to
    stderr (Lightning's defaults draw on stdout)."""
    import json

    from plugformer.cli.main import main
    from tests.test_crash_safety import write_config

    monkeypatch.setenv("PLUGFORMER_PROGRESS", "1")
    cfg = micro_config(corpus_file, tmp_path / "run", max_steps=3, val_every=3, progress=True)
    monkeypatch.setenv("PLUGFORMER_HOME", str(tmp_path / "home"))
    main(["pretrain", str(write_config(tmp_path / "pretrain.toml", cfg))])
    out = capfd.readouterr()
    assert "Epoch 0" in out.err
    assert json.loads(out.out)["steps"] == 3


def test_pretraining_raises_no_lightning_pytree_deprecation(corpus_file: Path, tmp_path: Path):
    """Lightning 2.6 on torch 2.13 warns about torch's deprecated LeafSpec in every training
    process; plugformer silences that one warning (and only that one)."""
    from plugformer.config import PretrainConfig, parse_model
    from plugformer.training.pretrain import pretrain

    cfg = micro_config(corpus_file, tmp_path / "run", max_steps=3, val_every=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pretrain(parse_model(PretrainConfig, cfg))
    assert not [w for w in caught if "LeafSpec" in str(w.message)]


def test_a_resumed_runs_progress_bar_counts_to_its_step_limit(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
):
    """Before: Lightning's total is the steps still to run while the resumed bar counts on from
    the interrupted run's batches: a run stopped at step 3 and resumed to 6 read "6/3"."""
    from plugformer.config import PretrainConfig, parse_model
    from plugformer.training.pretrain import pretrain

    monkeypatch.setenv("PLUGFORMER_PROGRESS", "1")
    cfg = micro_config(corpus_file, tmp_path / "run", max_steps=3, val_every=3, progress=True)
    pretrain(parse_model(PretrainConfig, cfg))
    capfd.readouterr()
    cfg["trainer"]["max_steps"] = 6
    pretrain(parse_model(PretrainConfig, cfg), resume=True)
    out = capfd.readouterr()
    shown = out.out + out.err
    assert "6/6" in shown and "6/3" not in shown
    assert "v_num" not in shown
