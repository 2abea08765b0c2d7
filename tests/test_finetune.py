"""Fine-tune → evaluate → predict through the CLI, for every installed first-party task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugformer import plugins
from plugformer.cli.main import main


def _sentiment(d: Path) -> tuple[dict, list[str]]:
    rows = [
        {"text": f"a {w} film, truly {w}", "label": lab}
        for w, lab in [("great", "pos"), ("lovely", "pos"), ("awful", "neg"), ("dreadful", "neg")]
        * 6
    ]
    return {"train": rows, "test": rows[:8]}, ["a great film"]


def _qa(d: Path) -> tuple[dict, list[str]]:
    rows = []
    for i, name in enumerate(["Bingley", "Darcy", "Bennet", "Lucas"] * 4):
        ctx = f"The house was let at last. It was taken by {name} on Monday."
        rows.append(
            {
                "id": str(i),
                "context": ctx,
                "question": "Who took the house?",
                "answers": [{"text": name, "answer_start": ctx.index(name)}],
            }
        )
    return {"train": rows, "test": rows[:4]}, [
        json.dumps({"question": "Who took it?", "context": rows[0]["context"]})
    ]


def _translation(d: Path) -> tuple[dict, list[str]]:
    pairs = [
        ("the house", "la casa"),
        ("the dog", "el perro"),
        ("a house", "una casa"),
        ("the cat", "el gato"),
    ] * 5
    rows = [{"source": s, "target": t} for s, t in pairs]
    return {"train": rows, "test": rows[:4]}, ["the dog"]


def _generation(d: Path) -> tuple[dict, list[str]]:
    rows = [
        {"prompt": f"Article: {w} news today. Headline:", "completion": f" {w} news"}
        for w in ["Local", "Sports", "Weather", "Market"] * 5
    ]
    return {"train": rows, "test": rows[:4]}, ["Article: Local news today. Headline:"]


BUILDERS = {
    "sentiment": _sentiment,
    "qa": _qa,
    "translation": _translation,
    "generation": _generation,
}


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = 0
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    return out.out


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(BUILDERS))
def test_finetune_evaluate_predict_round_trip(
    task: str, micro_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if task not in plugins.tasks().names():
        pytest.skip(f"plugin for task {task!r} not installed")
    splits, inputs = BUILDERS[task](tmp_path)
    for split, rows in splits.items():
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = tmp_path / f"{task}.toml"
    spec.write_text(
        f'task = "{task}"\n[data]\ntrain = "{tmp_path / "train.jsonl"}"\ntest = "{tmp_path / "test.jsonl"}"\n'
        "[finetune]\nmax_steps = 6\nbatch_size = 4\nprogress = false\n"
    )
    out = run(
        [
            "finetune",
            str(spec),
            "--backbone",
            str(micro_checkpoint),
            "--out",
            str(tmp_path / "run"),
        ],
        capsys,
    )
    summary = json.loads(out)
    ckpt = Path(summary["checkpoint"])
    manifest = json.loads((ckpt / "plugformer.json").read_text())
    assert manifest["kind"] == "task" and manifest["task"]["name"] == task
    assert (
        manifest["parent_weights_sha256"]
        == json.loads((micro_checkpoint / "plugformer.json").read_text())["weights_sha256"]
    )
    metrics = json.loads(
        run(
            [
                "evaluate",
                str(spec),
                "--checkpoint",
                str(ckpt),
                "--out",
                str(tmp_path / "eval.json"),
            ],
            capsys,
        )
    )
    result = json.loads((tmp_path / "eval.json").read_text())
    assert result["main_metric"] in metrics and result["n_examples"] == len(splits["test"])
    preds = run(["predict", str(ckpt), *inputs], capsys).strip().splitlines()
    assert len(preds) == len(inputs) and all(json.loads(p) is not None for p in preds)


def test_shorthand_and_bad_data_give_one_line(
    micro_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "sentiment" not in plugins.tasks().names():
        pytest.skip("sentiment plugin not installed")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": "pos"}\n{"text": 3.5\n')
    with pytest.raises(SystemExit) as exc:
        main(["finetune", "sentiment", "--data", str(bad), "--backbone", str(micro_checkpoint)])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and f"{bad}:2:" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as exc:
        main(["finetune", "sentimnt", "--data", str(bad), "--backbone", str(micro_checkpoint)])
    assert "did you mean 'sentiment'" in capsys.readouterr().err


def test_bf16_mixed_fine_tuning_clips_with_the_fused_optimizer(
    micro_checkpoint: Path, tmp_path: Path
) -> None:
    """Lightning's mixed-precision plugin refuses to clip gradients for a fused optimizer;
    on a CPU with native bf16 (where precision "auto" is bf16-mixed) every fine-tune stopped
    at its first step. plugformer clips itself, in any precision."""
    if "sentiment" not in plugins.tasks().names():
        pytest.skip("sentiment plugin not installed")
    import plugformer
    from plugformer.config import TaskSpec

    rows, _ = _sentiment(tmp_path)
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows["train"]) + "\n")
    spec = TaskSpec(
        task="sentiment",
        data={"train": str(tmp_path / "train.jsonl")},
        finetune={"max_steps": 3, "batch_size": 4, "grad_clip": 0.5, "precision": "bf16-mixed"},
    )
    summary = plugformer.finetune(spec, backbone=str(micro_checkpoint), out_dir=tmp_path / "run")
    assert summary["steps"] == 3


def test_decoding_options_change_at_evaluation_and_prediction(
    micro_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``evaluate --set options.K=V`` and ``predict --option K=V`` change a checkpoint's saved
    task options for that run (they were silently ignored: the checkpoint's options won);
    an unknown or invalid option is one line, and one that reshapes the head is refused."""
    if "translation" not in plugins.tasks().names():
        pytest.skip("translation plugin not installed")
    import plugformer
    from plugformer.config import TaskSpec
    from plugformer.errors import CheckpointError, ConfigError

    splits, _ = _translation(tmp_path)
    for split, rows in splits.items():
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = TaskSpec(
        task="translation",
        data={"train": str(tmp_path / "train.jsonl"), "test": str(tmp_path / "test.jsonl")},
        finetune={"max_steps": 4, "batch_size": 4, "progress": False},
    )
    ckpt = Path(
        plugformer.finetune(spec, backbone=str(micro_checkpoint), out_dir=tmp_path / "run")[
            "checkpoint"
        ]
    )
    out = tmp_path / "eval.json"
    run(["evaluate", str(ckpt), "--set", "options.beam_size=1", "--out", str(out)], capsys)
    assert json.loads(out.read_text())["options_changed"] == {"beam_size": 1}
    greedy = plugformer.load(ckpt, options={"decoding": "greedy", "no_repeat_ngram_size": 2})
    assert (greedy.task.options.decoding, greedy.task.options.no_repeat_ngram_size) == (
        "greedy",
        2,
    )
    assert plugformer.load(ckpt).task.options.decoding == "beam"  # the saved ones otherwise
    line = run(["predict", str(ckpt), "the dog", "--option", "beam_size=2"], capsys)
    assert "translation" in json.loads(line)
    with pytest.raises(ConfigError, match="no option 'beam_sise'"):
        plugformer.load(ckpt, options={"beam_sise": 2})
    with pytest.raises(ConfigError, match="beam_size"):
        plugformer.load(ckpt, options={"beam_size": 0})
    with pytest.raises(CheckpointError, match="does not fit options") as info:
        plugformer.load(ckpt, options={"pointer": True})
    # the tensors that do not fit are named, not torch's "Error(s) in loading state_dict"
    assert "tensors:" in str(info.value) and "Error(s)" not in str(info.value)


def _reviews_spec(d: Path, max_steps: int) -> Path:
    """A sentiment spec file over train/test JSONL files written beside it."""
    splits, _ = _sentiment(d)
    for split, rows in splits.items():
        (d / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = d / "reviews.toml"
    spec.write_text(
        'task = "sentiment"\n[data]\ntrain = "train.jsonl"\ntest = "test.jsonl"\n'
        f"[finetune]\nmax_steps = {max_steps}\nbatch_size = 4\nprogress = false\n"
    )
    return spec


def test_python_api_takes_a_spec_file_and_predicts_one_input(
    micro_checkpoint: Path, tmp_path: Path
) -> None:
    """``plugformer.finetune`` takes what the CLI takes (a spec file or name, ``--set``
    overrides), and ``Predictor.predict`` of one string is that string's prediction, not one
    per character."""
    import plugformer

    spec = _reviews_spec(tmp_path, max_steps=50)
    summary = plugformer.finetune(
        str(spec),
        backbone=str(micro_checkpoint),
        out_dir=tmp_path / "run",
        overrides=["finetune.max_steps=2"],
    )
    assert summary["steps"] == 2
    predictor = plugformer.load(summary["checkpoint"])
    one = predictor.predict("a great film")
    assert one == predictor.predict(["a great film"])[0]
    assert one["label"] in {"pos", "neg"}
    assert predictor.predict({"text": "an awful film"}) == predictor.predict(["an awful film"])[0]
    metrics = plugformer.evaluate(str(spec), summary["checkpoint"])["metrics"]
    assert 0.0 <= metrics["accuracy"] <= 1.0

    with pytest.raises(TypeError, match="spec must be a TaskSpec"):
        plugformer.finetune(42, backbone=str(micro_checkpoint))  # type: ignore[arg-type]


def test_python_api_mistakes_are_named(
    micro_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Python caller's slips get the framework's one-line errors, not a stray TypeError or
    a wrong result: one override string (it was applied character by character: ``--set
    'f'``), an unknown split (an AttributeError from pydantic), a non-list input to predict,
    a bad item in a list of inputs (which one?), predict on a backbone checkpoint; and a run
    into a finished run's directory says it replaces it."""
    import plugformer
    from plugformer.errors import ConfigError, DataError, PlugformerError

    spec = _reviews_spec(tmp_path, max_steps=2)
    with pytest.raises(TypeError, match=r"a list of KEY=VALUE strings, e.g. \['finetune"):
        plugformer.finetune(str(spec), backbone=str(micro_checkpoint), overrides="finetune.x=1")
    ckpt = plugformer.finetune(str(spec), backbone=str(micro_checkpoint), out_dir=tmp_path / "r")
    assert "holds a finished run" not in capsys.readouterr().err
    plugformer.finetune(str(spec), backbone=str(micro_checkpoint), out_dir=tmp_path / "r")
    assert f"{tmp_path / 'r'} holds a finished run; this one replaces it" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="split 'dev': expected one of test, validation, train"):
        plugformer.evaluate(str(spec), ckpt["checkpoint"], split="dev")
    predictor = plugformer.load(ckpt["checkpoint"])
    with pytest.raises(DataError, match="a string, a dict or a list of them, not int"):
        predictor.predict(5)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"^inputs\[1\]: .*field 'text'"):
        predictor.predict([{"text": "good"}, {"txt": "bad"}])
    with pytest.raises(PlugformerError, match="a backbone checkpoint, with no task head"):
        plugformer.load(micro_checkpoint).predict("a great film")


def test_predict_reads_inputs_by_the_training_files_column_names(
    micro_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint trained with ``options.columns.text = "review"`` predicts inputs that name
    the field ``review`` (JSON lines, ``--field``, a CSV file with a header row), as it read its
    training files; a CSV file gives one input per row, never its header."""
    import csv

    import plugformer

    rows, _ = _sentiment(tmp_path)
    data = tmp_path / "reviews.csv"
    with data.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["review", "label"])
        writer.writerows([r["text"], r["label"]] for r in rows["train"])
    out = run(
        [
            "finetune",
            "sentiment",
            "--data",
            str(data),
            "--backbone",
            str(micro_checkpoint),
            "--out",
            str(tmp_path / "run"),
            "--set",
            "options.columns.text=review",
            "--set",
            "finetune.max_steps=2",
            "--set",
            "finetune.progress=false",
        ],
        capsys,
    )
    ckpt = json.loads(out)["checkpoint"]
    expected = plugformer.load(ckpt).predict({"text": "a great film"})

    lines = tmp_path / "in.jsonl"
    lines.write_text(json.dumps({"review": "a great film", "id": "r1"}) + "\n")
    got = json.loads(run(["predict", ckpt, "--input", str(lines)], capsys))
    assert got == {"id": "r1", **expected}
    assert json.loads(run(["predict", ckpt, "--field", "review=a great film"], capsys)) == expected

    table = tmp_path / "in.csv"
    table.write_text("review\na great film\nan awful film\n")
    printed = run(["predict", ckpt, "--input", str(table)], capsys).splitlines()
    assert len(printed) == 2
    first = json.loads(printed[0])  # batched with another row: equal up to padding's rounding
    assert first["label"] == expected["label"]
    assert first["probs"] == pytest.approx(expected["probs"], abs=1e-5)


def test_field_flags_take_a_json_list_for_a_field_that_holds_one() -> None:
    """``--field tokens='["a", "b"]'`` (a tagging task's words) is a list; text that only
    starts with a bracket stays text."""
    from plugformer.cli.predict import _split_field_flags

    texts, fields = _split_field_flags(
        ["hello", "--tokens", '["New", "York"]', "--text=[spoiler] great", "--tags", "[1, 2"]
    )
    assert texts == ["hello"]
    assert fields == {"tokens": ["New", "York"], "text": "[spoiler] great", "tags": "[1, 2"}


def test_finetune_max_seq_len_extends_a_rotary_backbone_and_the_checkpoint_keeps_it(
    micro_checkpoint: Path, tmp_path: Path
) -> None:
    """``finetune.max_seq_len`` lets a task read past the pretraining context (32 tokens for
    the micro backbone): the features are encoded to the longer budget, and the checkpoint
    reloads with it."""
    import plugformer

    words = " ".join(["very"] * 40)
    rows = [
        {"text": f"a {w} film, {words} {w}", "label": lab}
        for w, lab in [("great", "pos"), ("awful", "neg")] * 4
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = {
        "task": "sentiment",
        "data": {"train": str(tmp_path / "train.jsonl"), "holdout": 0.25},
        "finetune": {"max_steps": 2, "batch_size": 4, "progress": False, "max_seq_len": 48},
    }
    from plugformer.config import TaskSpec

    summary = plugformer.finetune(
        TaskSpec.model_validate(spec), backbone=str(micro_checkpoint), out_dir=tmp_path / "run"
    )
    manifest = json.loads((Path(summary["checkpoint"]) / "plugformer.json").read_text())
    assert manifest["model_config"]["max_seq_len"] == 48
    predictor = plugformer.load(summary["checkpoint"])
    assert predictor.backbone.max_seq_len == 48 and predictor.task.length_budget == 48
    (feature,) = predictor.task.encode(predictor.task.example_from_input(rows[0]), train=False)
    assert 32 < len(feature["input_ids"]) <= 48  # longer than the pretraining context
    assert predictor.predict(rows[0]["text"])["label"] in {"pos", "neg"}


def test_resume_from_another_models_checkpoint_is_one_line_not_a_plugin_error(
    micro_checkpoint: Path, tmp_path: Path
) -> None:
    """``finetune --resume`` with another backbone (or head) than the interrupted run's: one
    line saying so. Lightning's load_state_dict failure inside ``fit`` used to be reported as
    the task plugin failing on its first batch."""
    import torch

    import plugformer
    from plugformer.config import TaskSpec
    from plugformer.errors import ConfigError

    rows = [{"text": f"a {w} film", "label": lab} for w, lab in [("great", "pos"), ("bad", "neg")]]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows * 4) + "\n")
    spec = TaskSpec.model_validate(
        {
            "task": "sentiment",
            "data": {"train": str(tmp_path / "train.jsonl"), "holdout": 0.25},
            "finetune": {"max_steps": 2, "batch_size": 4, "progress": False},
        }
    )
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    # an interrupted run's checkpoint, written by a model of another width
    other = {"backbone.wte.weight": torch.zeros(7, 3), "head.proj.weight": torch.zeros(2, 3)}
    torch.save({"state_dict": other, "global_step": 1}, out / "checkpoints" / "last.ckpt")
    with pytest.raises(ConfigError, match=r"--resume: .*written by a different model") as info:
        plugformer.finetune(spec, backbone=str(micro_checkpoint), out_dir=out, resume=True)
    assert "\n" not in str(info.value)
