"""The path from data to benchmark: a declarative spec run end to end, --data with a held-out
validation share or --validation, evaluate CKPT --data (the stored spec), spec paths relative
to the spec file, the generic predict (--field, task flags, echoed ids), and diagnostics of
broken task plugins."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from plugformer import hookimpl, plugins
from plugformer.cli.main import main
from plugformer.errors import PluginError

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "tasks" / "classification" / "movie-reviews.toml"
ROWS = [
    {"id": f"r{i}", "text": f"a {w} film, truly {w}", "label": lab}
    for i, (w, lab) in enumerate(
        [("great", "pos"), ("lovely", "pos"), ("awful", "neg"), ("dreadful", "neg")] * 5
    )
]


def run(argv: list[str], capsys: pytest.CaptureFixture[str], code: int = 0) -> tuple[str, str]:
    got = 0
    try:
        main(argv)
    except SystemExit as exc:
        got = exc.code or 0
    out = capsys.readouterr()
    assert got == code, out.err[-2000:]
    return out.out, out.err


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.slow
def test_declarative_spec_data_paths_evaluate_and_predict(
    micro_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = _write(tmp_path / "train.jsonl", ROWS)
    fast = ["--set", "finetune.max_steps=4", "--set", "finetune.batch_size=4"]
    fast += ["--set", "finetune.val_every=2", "--set", "finetune.progress=false"]
    out, err = run(
        [
            *["finetune", str(SPEC), "--data", str(train), "--backbone", str(micro_checkpoint)],
            *["--out", str(tmp_path / "run"), *fast],
        ],
        capsys,
    )
    held = [ln for ln in err.splitlines() if "holding out" in ln]
    assert len(held) == 1 and "2 of 20" in held[0], err
    summary = json.loads(out)
    assert summary["train_examples"] == 18 and "accuracy" in summary["val_metrics"]
    ckpt = Path(summary["checkpoint"])

    # --validation FILE: no hold-out, every training row trains
    val = _write(tmp_path / "val.jsonl", ROWS[:4])
    out, err = run(
        [
            *["finetune", "classification", "--data", str(train), "--validation", str(val)],
            *["--backbone", str(micro_checkpoint), "--out", str(tmp_path / "run2"), *fast],
        ],
        capsys,
    )
    assert "holding out" not in err and json.loads(out)["train_examples"] == 20

    # evaluate CKPT --data FILE: the spec stored in the checkpoint, this data
    test = _write(tmp_path / "test.jsonl", ROWS[:6])
    out, _ = run(
        ["evaluate", str(ckpt), "--data", str(test), "--out", str(tmp_path / "e.json")], capsys
    )
    assert set(json.loads(out)) == {"accuracy", "macro_f1", "mcc"}
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["n_examples"] == 6
    assert result["metric_info"]["mcc"]["range"] == [-1.0, 1.0]

    # a spec's relative data paths resolve against the spec file, not the working directory
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "data").mkdir()
    _write(tmp_path / "specs" / "data" / "test.jsonl", ROWS[:3])
    (tmp_path / "specs" / "s.toml").write_text(
        'task = "classification"\n[data]\ntrain = "data/test.jsonl"\ntest = "data/test.jsonl"\n'
    )
    out, _ = run(
        ["evaluate", str(tmp_path / "specs" / "s.toml"), "--checkpoint", str(ckpt)], capsys
    )
    assert "accuracy" in json.loads(out)

    # generic predict: --field, a task field as its own flag, and the input's id echoed
    out, _ = run(["predict", str(ckpt), "--field", "text=a great film", "--field", "id=x7"], capsys)
    line = json.loads(out)
    assert line["id"] == "x7" and line["label"] in {"pos", "neg"}
    out, _ = run(["predict", str(ckpt), "--text", "an awful film"], capsys)
    assert json.loads(out)["label"] in {"pos", "neg"}
    _, err = run(["predict", str(ckpt), "--txt", "x"], capsys, code=2)
    assert "no field 'txt'" in err


def test_installed_but_broken_task_says_why() -> None:
    broken = types.ModuleType("plugformer_nli_plugin")

    @hookimpl
    def register_tasks(register):
        raise RuntimeError("labels.txt is missing")

    broken.register_tasks = register_tasks  # type: ignore[attr-defined]
    plugins.register_plugin(broken, "nli", distribution="plugformer-nli")
    with pytest.raises(PluginError, match=r"task 'nli' is installed but broken: .*labels.txt"):
        plugins.get_task_class("nli")


def test_plugins_check_imports_lazy_references(capsys: pytest.CaptureFixture[str]) -> None:
    typo = types.ModuleType("plugformer_typo_plugin")
    typo.register_tasks = hookimpl(  # type: ignore[attr-defined]
        lambda register: register("plugformer.blocks:ClasificationTask", name="typo")
    )
    plugins.register_plugin(typo, "typo", distribution="plugformer-typo")
    assert next(i for i in plugins.plugin_infos() if i.name == "typo").status == "ok"
    out, _ = run(["plugins", "--json", "--check"], capsys, code=1)
    info = next(i for i in json.loads(out) if i["name"] == "typo")
    assert info["status"] == "broken" and "ClasificationTask" in info["error"]


def test_a_lazy_task_whose_class_has_another_name_is_broken(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: it fine-tuned, then its checkpoint named a task no plugin registers."""
    misnamed = types.ModuleType("plugformer_misnamed_plugin")
    misnamed.register_tasks = hookimpl(  # type: ignore[attr-defined]
        lambda register: register(
            "plugformer.default_plugins.declarative:Classification", name="reviews2"
        )
    )
    plugins.register_plugin(misnamed, "misnamed", distribution="plugformer-misnamed")
    with pytest.raises(PluginError, match=r"declares name = 'classification'; the registered"):
        plugins.get_task_class("reviews2")
    out, _ = run(["plugins", "--json", "--check"], capsys, code=1)
    info = next(i for i in json.loads(out) if i["name"] == "misnamed")
    assert info["status"] == "broken" and "'reviews2'" in info["error"]
