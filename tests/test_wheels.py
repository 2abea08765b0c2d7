"""The distributions as users get them: every member's sdist and wheel built and checked, the
wheels installed (not editable) into a fresh virtual environment outside the checkout, and
the command line run there — plugins, named task specs, a fine-tune by name, the default job.

Slow (a few minutes: the build, a CPU torch and the dependencies installed from the local
package index); ``make test`` runs it, ``-m "not slow"`` skips it.
"""

from __future__ import annotations

import email
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import AUSTEN

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["plugformer"]["workspace"][
    "members"
]
TORCH = "torch==2.13.0"
"""Installed first, as `make install` does: an unpinned torch would pull a multi-GB CUDA build."""
FIRST_PARTY_SPECS = {p.stem: p.parents[3].name for p in ROOT.glob("plugins/*/src/*/specs/*.toml")}
"""Each first-party spec's name → the plugin directory that ships it (``generation`` ships the
``compression`` task's spec too)."""

pytestmark = pytest.mark.slow


def _run(cmd: list[str], timeout: float, **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
    assert res.returncode == 0, (
        f"{cmd}: exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    )
    return res


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Every member's sdist and wheel, built from a copy of its folder (the checkout stays clean),
    plus what the builds printed."""
    work, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    logs = []
    skip = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache")
    for member in MEMBERS:
        src = work / Path(member).name
        shutil.copytree(ROOT / member, src, ignore=skip)
        # --no-isolation: the test environment's setuptools (the core's `test` extra pins >=77).
        res = _run(
            [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)], 300
        )
        logs.append(res.stdout + res.stderr)
    return {"dir": out, "log": "\n".join(logs)}


def test_every_distribution_builds_and_passes_twine_check(dists: dict[str, object]) -> None:
    out = Path(str(dists["dir"]))
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == len(sdists) == len(MEMBERS)
    # setuptools warns of deprecated metadata (the old `project.license` table) in its output.
    assert not re.search(r"deprecat", str(dists["log"]), re.IGNORECASE), str(dists["log"])[-3000:]
    _run([sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists)], 120)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            names = zf.namelist()
            meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
            meta = email.message_from_string(zf.read(meta_name).decode())
        assert meta["Requires-Python"] == ">=3.11", wheel.name
        assert meta["License-Expression"] == "MIT", wheel.name
        assert any(n.endswith("licenses/LICENSE") for n in names), wheel.name
        assert meta["Description-Content-Type"] == "text/markdown"
        assert meta["Name"] in meta.get_payload(), (
            f"{wheel.name}: long description is not its README"
        )
        if meta["Name"] == "plugformer":
            for folder in ("pretrain", "suites"):
                shipped = {Path(n).stem for n in names if f"plugformer/configs/{folder}/" in n}
                here = {
                    p.stem for p in (ROOT / "core/src/plugformer/configs" / folder).glob("*.toml")
                }
                assert shipped == here and here, folder
        else:
            package = meta["Name"].replace("-", "_")
            shipped = {Path(n).stem for n in names if n.startswith(f"{package}/specs/")}
            kind = meta["Name"].removeprefix("plugformer-")
            here = {p.stem for p in ROOT.glob(f"plugins/{kind}/src/{package}/specs/*.toml")}
            assert shipped == here and here, wheel.name


@pytest.fixture(scope="module")
def venv(dists: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A fresh virtual environment outside the checkout with the wheels installed (not editable),
    torch pinned first; returns its bin folder and a clean environment to run commands in."""
    where = tmp_path_factory.mktemp("venv") / "env"
    # Nothing of this process leaks in: a PYTHONPATH (a checkout's sources) would both shadow
    # the wheels and make pip skip dependencies it finds there.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PLUGFORMER_LOAD_PLUGINS")
    }
    _run([sys.executable, "-m", "venv", str(where)], 120, env=env)
    py = where / "bin" / "python"
    # This environment's (recent) pip installs into the new one.
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--no-input"]
    _run([*pip, TORCH], 600, env=env)
    _run([*pip, *map(str, sorted(Path(str(dists["dir"])).glob("*.whl")))], 600, env=env)
    env["PATH"] = f"{where / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PLUGFORMER_PROGRESS"] = "0"
    cwd = tmp_path_factory.mktemp("elsewhere")  # not the repository
    return {"bin": where / "bin", "py": py, "env": env, "cwd": cwd}


def plugformer(venv: dict[str, object], *args: str, timeout: float = 600) -> str:
    exe = Path(str(venv["bin"])) / "plugformer"
    res = _run([str(exe), *args], timeout, env=venv["env"], cwd=venv["cwd"])
    return res.stdout


def test_installed_wheels_know_their_plugins_specs_and_suites(venv: dict[str, object]) -> None:
    where = _run(
        [str(venv["py"]), "-c", "import plugformer, sys; print(plugformer.__file__)"],
        60,
        env=venv["env"],
        cwd=venv["cwd"],
    ).stdout.strip()
    package = Path(where).parent
    assert "site-packages" in package.parts and ROOT not in package.parents
    plugins = {p["name"]: p for p in json.loads(plugformer(venv, "plugins", "--json"))}
    assert {"sentiment", "qa", "translation", "generation", "configs"} <= set(plugins)
    assert all(p["status"] == "ok" for p in plugins.values()), plugins
    tasks = {t["name"]: t for t in json.loads(plugformer(venv, "tasks", "--json"))}
    assert set(FIRST_PARTY_SPECS) <= set(tasks)
    for name, plugin in FIRST_PARTY_SPECS.items():
        assert "site-packages" in tasks[name]["path"], name
        assert tasks[name]["distribution"] == f"plugformer-{plugin}", name
    suites = {s["name"] for s in json.loads(plugformer(venv, "suites", "--json"))}
    assert {"default", "smoke", "quickstart-fast"} <= suites
    # No path of the installed library reaches into a checkout's layout.
    for path in [*package.rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        assert "parents[" not in text and not re.search(r"\bREPO\b", text), path


@pytest.mark.network
def test_pretrain_and_finetune_by_name_from_installed_wheels(venv: dict[str, object]) -> None:
    """``plugformer pretrain tiny`` and ``plugformer finetune sentiment-smoke`` (a spec the
    sentiment plugin ships) from a directory that is not the repository; micro-sized."""
    corpus = Path(str(venv["cwd"])) / "austen.txt"
    corpus.write_text(AUSTEN * 4, encoding="utf-8")
    summary = json.loads(
        plugformer(
            venv, "pretrain", "tiny",
            *("--set", "model.preset=micro", "--set", "tokenizer.vocab_size=300"),
            *("--set", f'data.corpus=["{corpus}"]', "--set", "data.val_fraction=0.15"),
            *("--set", "trainer.max_steps=4", "--set", "trainer.val_every=2"),
            *("--set", "trainer.val_batches=1", "--set", "out_dir=pre"),
        )
    )  # fmt: skip
    result = json.loads(
        plugformer(
            venv, "finetune", "sentiment-smoke", "--backbone", summary["checkpoint"],
            *("--set", "finetune.max_steps=3", "--set", "finetune.val_every=3"),
            *("--set", "data.max_train=32", "--set", "data.max_eval=16", "--out", "tuned"),
        )
    )  # fmt: skip
    assert Path(str(venv["cwd"]), "tuned").is_dir() and result["checkpoint"]


@pytest.mark.network
def test_quickstart_fast_from_installed_wheels(venv: dict[str, object]) -> None:
    """The default job from the wheels alone, in a folder that is not the repository; a 15-second
    pretraining budget keeps it short (the suite stage is --fast's smoke suite)."""
    plugformer(venv, "quickstart", "--fast", "--minutes", "0.25", "--out", "qs", timeout=600)
    report = (Path(str(venv["cwd"])) / "qs" / "report.md").read_text(encoding="utf-8")
    for task in ("sentiment", "qa", "translation", "generation"):
        assert task in report
