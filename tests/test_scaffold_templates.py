"""``plugformer new-plugin NAME --template T``: every template's own tests pass unedited.

The plugin is made importable and discoverable without touching the environment: its
``src`` goes on PYTHONPATH beside a ``.dist-info`` directory declaring its entry point (what
``pip install -e`` would write), so the conformance kit reloads checkpoints by name and the
template's entry-point test finds it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
