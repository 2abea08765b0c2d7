"""Hostile input, the environment: a PLUGFORMER_HOME that is a file or not writable. Every case
gives exit 2 and exactly one ``plugformer: error:`` line naming the file (and line where there
is one)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plugformer.errors import DataError
from tests.cli_helpers import cli
from tests.conftest import micro_config


def test_a_plugformer_home_that_is_a_file_is_one_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Before: "downloading ..." and then ``unexpected error: NotADirectoryError``."""
    home = tmp_path / "home"
    home.write_text("")
    monkeypatch.setenv("PLUGFORMER_HOME", str(home))
    code, line = cli(capsys, "data", "get", "shakespeare")
    assert code == 2 and f"PLUGFORMER_HOME={home}: {home} is a file" in line
    monkeypatch.setenv("PLUGFORMER_HOME", str(home / "sub"))
    code, line = cli(capsys, "data", "get", "shakespeare")
    assert code == 2 and f"PLUGFORMER_HOME={home / 'sub'}: {home} is a file" in line


def test_pretraining_into_a_plugformer_home_that_is_a_file_is_one_error(
    corpus_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pretraining writes its token cache under PLUGFORMER_HOME: checked as a download is."""
    from plugformer.config import PretrainConfig, parse_model
    from plugformer.errors import DataError
    from plugformer.training.pretrain import pretrain

    home = tmp_path / "home"
    home.write_text("")
    monkeypatch.setenv("PLUGFORMER_HOME", str(home))
    cfg = micro_config(corpus_file, tmp_path / "run", max_steps=2)
    with pytest.raises(DataError, match=rf"PLUGFORMER_HOME={home}: {home} is a file"):
        pretrain(parse_model(PretrainConfig, cfg))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_plugformer_home_is_one_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: ``unexpected error: PermissionError`` halfway through a download."""
    from plugformer.data.cache import writable_home

    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o500)
    monkeypatch.setenv("PLUGFORMER_HOME", str(home))
    try:
        with pytest.raises(DataError, match=rf"PLUGFORMER_HOME={home}: .* is not writable"):
            writable_home()
    finally:
        home.chmod(0o700)
