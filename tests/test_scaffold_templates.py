"""``plugformer new-plugin NAME --template T``: every template's own tests pass unedited.

The plugin is made importable and discoverable without touching the environment: its
``src`` goes on PYTHONPATH beside a ``.dist-info`` directory declaring its entry point (what
``pip install -e`` would write), so the conformance kit reloads checkpoints by name and the
template's entry-point test finds it. The same, on ``sys.path`` in-process, lets the tests
here fine-tune each template's shipped demo spec (``NAME-demo``) by name.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plugformer import plugins
from plugformer.scaffold import TEMPLATES, write_plugin


def _discoverable(root: Path, name: str, package: str, site: Path) -> None:
    info = site / f"plugformer_{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: plugformer-{name}\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(f"[plugformer]\n{name} = {package}.plugin\n")


@pytest.mark.slow
@pytest.mark.parametrize("template", TEMPLATES)
def test_template_tests_pass_unedited(template: str, tmp_path: Path) -> None:
    name = f"demo-{template}"
    root = write_plugin(name, tmp_path, template)
    package = "plugformer_" + name.replace("-", "_")
    _discoverable(root, name, package, tmp_path / "site")
    assert "{{" not in (root / "src" / package / "task.py").read_text()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(root / "src"), str(tmp_path / "site"), os.environ.get("PYTHONPATH", "")]
        ),
        "PLUGFORMER_LOAD_PLUGINS": name,
    }
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests")],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert " passed" in tests.stdout and "skipped" not in tests.stdout.split("passed")[0][-40:]


def test_unknown_template_is_one_clear_error(tmp_path: Path) -> None:
    from plugformer.errors import PlugformerError

    with pytest.raises(PlugformerError, match="choose one of classification, pair"):
        write_plugin("demo", tmp_path, "regression")


@pytest.mark.parametrize(
    ("where", "expect"),
    [
        ("afile", "--dir {tmp}/afile is a file, not a directory"),
        ("afile/sub", "--dir {tmp}/afile/sub: {tmp}/afile is a file, not a directory"),
        ("full", "{tmp}/full/plugformer-demo already exists (a directory that is not empty)"),
        ("denied", "{tmp}/denied/plugformer-demo: permission denied (cannot write here)"),
    ],
    ids=["a-file", "under-a-file", "taken", "unwritable"],
)
def test_a_dir_that_cannot_hold_the_plugin_is_one_line(
    where: str,
    expect: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: ``new-plugin demo --dir afile`` said ``afile/plugformer-demo: cannot write (File
    exists)``, and under a file ``(Not a directory)``, naming neither the --dir nor the file.
    Each is now one line naming the path and what is wrong with it; nothing is written."""
    from plugformer import fileio
    from plugformer.cli.main import main

    (tmp_path / "afile").write_text("not a directory\n")
    (tmp_path / "full" / "plugformer-demo").mkdir(parents=True)
    (tmp_path / "full" / "plugformer-demo" / "keep.txt").write_text("mine\n")
    (tmp_path / "denied").mkdir()
    if where == "denied":  # tests run as root, whom chmod does not stop: inject the EACCES

        def denied(*args: object, **kwargs: object) -> str:
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(fileio.tempfile, "mkdtemp", denied)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as exc:
        main(["new-plugin", "demo", "--dir", str(tmp_path / where)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"plugformer: error: {expect.format(tmp=tmp_path)}"
    ), err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_scaffold_failing_midway_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The package is written under a temporary name and renamed once complete: a failure
    partway (here the disk filling up while the demo data is written) leaves neither a
    partial package nor the --dir folders the scaffold created for it."""
    from plugformer import scaffold
    from plugformer.errors import PlugformerError

    def disk_full(template: str) -> dict[str, str]:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(scaffold, "_demo_data", disk_full)
    with pytest.raises(PlugformerError, match="plugformer-demo: no space left on device"):
        write_plugin("demo", tmp_path / "new" / "deeper")
    assert list(tmp_path.iterdir()) == []


def test_readme_names_the_base_class(tmp_path: Path) -> None:
    """Before: the pair template's README said it was "built on the `pair` task base", a base
    that does not exist (it is ``ClassificationTask``)."""
    import plugformer.blocks

    for template in TEMPLATES:
        root = write_plugin(f"demo-{template}", tmp_path, template)
        readme = (root / "README.md").read_text()
        base = readme.split("built on `plugformer.blocks.", 1)[1].split("`", 1)[0]
        assert hasattr(plugformer.blocks, base), (template, base)
        task = (root / "src" / f"plugformer_demo_{template}" / "task.py").read_text()
        assert f"({base})" in task, (template, base)


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Path]]:
    """``install(template)``: scaffold ``demo-TEMPLATE`` and make it the one plugin loaded, its
    ``src`` and ``.dist-info`` on ``sys.path``; its modules are forgotten when the test ends."""
    packages: list[str] = []

    def _install(template: str) -> Path:
        name, package = f"demo-{template}", f"plugformer_demo_{template}"
        root = write_plugin(name, tmp_path, template)
        _discoverable(root, name, package, tmp_path / "site")
        monkeypatch.syspath_prepend(str(root / "src"))
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
        monkeypatch.setenv("PLUGFORMER_LOAD_PLUGINS", name)
        packages.append(package)
        importlib.invalidate_caches()
        plugins.reset()
        return root

    yield _install
    for package in packages:
        for mod in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[mod]


@pytest.mark.parametrize("template", TEMPLATES)
def test_demo_spec_is_listed_and_finetunes_by_name(
    template: str,
    micro_checkpoint: Path,
    install: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    """Before: the scaffold registered a task but shipped no spec and no data, so its README's
    first command needed a data file the user did not have."""
    from plugformer.specs import describe_specs
    from plugformer.training.finetune import finetune

    install(template)
    name = f"demo-{template}"
    listed = {row["name"]: row for row in describe_specs("task")}
    row = listed[f"{name}-demo"]
    assert (row["task"], row["distribution"]) == (name, f"plugformer-{name}"), row
    summary = finetune(
        f"{name}-demo",
        backbone=str(micro_checkpoint),
        out_dir=tmp_path / "run",
        overrides=["finetune.max_steps=2", "finetune.val_every=2", "finetune.progress=false"],
    )
    manifest = json.loads((Path(summary["checkpoint"]) / "plugformer.json").read_text())
    assert manifest["kind"] == "task" and manifest["task"]["name"] == name


def test_demo_data_is_deterministic_and_follows_its_rule(tmp_path: Path) -> None:
    for template in TEMPLATES:
        a = write_plugin(f"demo-{template}", tmp_path / "a", template)
        b = write_plugin(f"demo-{template}", tmp_path / "b", template)
        data = Path("src") / f"plugformer_demo_{template}" / "specs" / "data"
        for split in ("train", "validation", "test"):
            text = (a / data / f"{split}.jsonl").read_text()
            assert text == (b / data / f"{split}.jsonl").read_text(), (template, split)
            rows = [json.loads(line) for line in text.splitlines()]
            assert len(rows) >= 16, (template, split)
            if template == "span":
                assert all(r["context"][r["answer_start"] :].startswith(r["answer"]) for r in rows)
            if template == "tagging":
                assert all(
                    (tag != "O") == tok[0].isupper()
                    for r in rows
                    for tok, tag in zip(r["tokens"], r["tags"], strict=True)
                )
            if template in ("classification", "pair"):  # both labels in every split
                assert len({r["label"] for r in rows}) == 2, (template, split)


def test_built_wheel_ships_the_demo_spec_and_its_data(tmp_path: Path) -> None:
    root = write_plugin("demo-tagging", tmp_path, "tagging")
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheels),
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    specs = "plugformer_demo_tagging/specs/"
    assert specs + "demo-tagging-demo.toml" in names, sorted(names)
    for split in ("train", "validation", "test"):
        assert f"{specs}data/{split}.jsonl" in names, sorted(names)
