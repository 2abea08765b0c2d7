"""Issue 20, "Reliability, round two": one test (or a few) per finding of the hostile-user
attack, each reproducing the attack. Signals (1) are in test_signals.py; QA memory (5) and the
SQuAD metric (8) in plugins/qa/tests; bench cells (2) in bench/test_cache.py."""

from __future__ import annotations

import json
import os
import stat
import time
import types
from pathlib import Path
from typing import Any

import click
import pytest
import torch

from plugformer import hook_calls, hookimpl, plugins
from plugformer.checkpoint import load_backbone, save_backbone, save_task
from plugformer.config import ModelConfig, TaskSpec, parse_model
from plugformer.errors import CheckpointError, DataError, PlugformerError
from plugformer.inference.predictor import load
from plugformer.models.families import LoadedBackbone
from plugformer.models.gpt import GPT
from plugformer.tokenizer import train_tokenizer

TEXTS = [
    f"the film was {w} and the plot was {v} indeed"
    for w in ("good", "bad", "fine", "odd")
    for v in ("thin", "rich", "dull")
]


# --------------------------------------------------------------------------- 3. manifests


@pytest.fixture(scope="module")
def tok() -> Any:
    return train_tokenizer(TEXTS * 4, vocab_size=300, min_frequency=1)


def _backbone(tmp: Path, tok: Any) -> Path:
    torch.manual_seed(0)
    model = GPT(ModelConfig(preset="micro", vocab_size=tok.vocab_size))
    return save_backbone(tmp / "bb", model, tok)


def _edit(path: Path, fn: Any) -> None:
    manifest = json.loads((path / "plugformer.json").read_text())
    fn(manifest)
    (path / "plugformer.json").write_text(json.dumps(manifest))


def test_a_removed_tokenizer_hash_is_refused(tmp_path: Path, tok: Any) -> None:
    """Before: the tokenizer hash was checked only when present; with it removed, a swapped
    tokenizer gave an IndexError or silently different predictions."""
    ckpt = _backbone(tmp_path, tok)
    _edit(ckpt, lambda m: m.pop("tokenizer_sha256"))
    with pytest.raises(CheckpointError, match="tokenizer_sha256"):
        load_backbone(ckpt)


def test_a_swapped_tokenizer_of_the_same_size_is_refused(tmp_path: Path, tok: Any) -> None:
    ckpt = _backbone(tmp_path, tok)
    other = train_tokenizer([t.upper() for t in TEXTS] * 4, vocab_size=300, min_frequency=1)
    assert other.vocab_size == tok.vocab_size and other.hash != tok.hash
    other.save(ckpt / "tokenizer.json")
    _edit(ckpt, lambda m: m.pop("tokenizer_sha256"))  # the attack removed the hash as well
    with pytest.raises(CheckpointError):
        load_backbone(ckpt)
    _edit(ckpt, lambda m: m.update(tokenizer_sha256=tok.hash))
    with pytest.raises(CheckpointError, match=r"tokenizer\.json does not match"):
        load_backbone(ckpt)


def test_edited_weights_are_refused_by_their_hash(tmp_path: Path, tok: Any) -> None:
    ckpt = _backbone(tmp_path, tok)
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="weights_sha256"):
        load_backbone(ckpt)


def test_an_enlarged_model_config_is_refused_before_any_allocation(
    tmp_path: Path, tok: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the model was built from model_config first (an enlarged config allocated ~2 GB),
    and only then did the weights fail to load."""
    import plugformer.models.gpt as model_mod

    ckpt = _backbone(tmp_path, tok)
    _edit(ckpt, lambda m: m["model_config"].update(d_model=4096, n_layers=32, n_heads=32))
    built: list[str] = []

    class Spy(model_mod.GPT):
        def __init__(self, cfg: Any) -> None:
            built.append(torch.empty(()).device.type)  # "meta" inside a meta-device context
            super().__init__(cfg)

    monkeypatch.setattr(model_mod, "GPT", Spy)
    with pytest.raises(CheckpointError, match=r"do not match the manifest's model_config"):
        load_backbone(ckpt)
    assert built == ["meta"]  # only the shape check's meta-device model was built


def _sentiment_checkpoint(tmp_path: Path, tok: Any) -> Path:
    """A sentiment task checkpoint on a random micro backbone (labels pos / neg)."""
    from plugformer.training.finetune import build_task

    torch.manual_seed(0)
    model = GPT(ModelConfig(preset="micro", vocab_size=tok.vocab_size))
    task = build_task("sentiment", {}, tok)
    task.prepare([task.parse_example({"text": "a", "label": lab}) for lab in ("pos", "neg")])
    spec = parse_model(TaskSpec, {"task": "sentiment", "data": {"dataset": "x"}})
    ckpt = save_task(
        tmp_path / "t", LoadedBackbone(model, tok, {}), task.build_head(model), task, spec, {}
    )
    return ckpt


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda m: m["task"].update(name=5), "task.name"),
        (lambda m: m["task"].update(options="fast"), "task.options"),
        (lambda m: m["task"].update(state=[1]), "task.state"),
        (lambda m: m.pop("task"), "a task checkpoint needs"),
        (lambda m: m.update(format_version="1"), "format_version"),
        (lambda m: m.update(kind="model"), "kind"),
    ],
)
def test_manifest_fields_are_type_checked(tmp_path: Path, tok: Any, edit: Any, field: str) -> None:
    """Before: a wrong type in a manifest's task fields ended in AttributeError/KeyError/TypeError."""
    ckpt = _sentiment_checkpoint(tmp_path, tok)
    assert load(ckpt).predict(["a good film"])[0]["label"] in ("pos", "neg")
    _edit(ckpt, edit)
    with pytest.raises(CheckpointError, match=field.replace(".", r"\.")):
        load(ckpt)


def test_a_damaged_head_is_refused(tmp_path: Path, tok: Any) -> None:
    """Before: head.safetensors had no hash; a bit-flipped head loaded and predicted garbage."""
    ckpt = _sentiment_checkpoint(tmp_path, tok)
    head = bytearray((ckpt / "head.safetensors").read_bytes())
    head[-1] ^= 0x40  # the exponent of the last weight: still a valid safetensors file
    (ckpt / "head.safetensors").write_bytes(bytes(head))
    with pytest.raises(CheckpointError, match=r"head\.safetensors does not match"):
        load(ckpt)


# --------------------------------------------------------------------------- 4. output directories


def test_a_second_run_into_a_held_directory_is_refused(tmp_path: Path, tok: Any) -> None:
    """Before: two runs into one out_dir both exited 0, with one run's weights beside the
    other's summary and a metrics.csv mixing both."""
    from plugformer.outdir import claim
    from plugformer.training.finetune import finetune

    spec = parse_model(TaskSpec, {"task": "sentiment", "data": {"train": "nowhere.csv"}})
    with claim(tmp_path / "out", "test"):
        with pytest.raises(PlugformerError, match=r"in use by another run \(pid \d+"):
            finetune(spec, "scratch:whatever", tmp_path / "out")
    with claim(tmp_path / "out", "test"):  # released when the first run ended
        pass


def test_a_run_that_fails_before_writing_leaves_no_directory(tmp_path: Path) -> None:
    """Before: a finetune refused for bad input (unknown task, missing data) left OUT/ holding
    only .plugformer.lock."""
    from plugformer.training.finetune import finetune

    spec = parse_model(TaskSpec, {"task": "no-such-task", "data": {"train": "nowhere.csv"}})
    with pytest.raises(PlugformerError):
        finetune(spec, "scratch:whatever", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "kept").mkdir()  # a directory the user made is left alone
    with pytest.raises(PlugformerError):
        finetune(spec, "scratch:whatever", tmp_path / "kept")
    assert (tmp_path / "kept").is_dir()


def test_finetune_into_a_file_is_one_line(tmp_path: Path) -> None:
    """Before: `finetune --out` a file or an unwritable path ended in "unexpected error"."""
    from plugformer.training.finetune import finetune

    (tmp_path / "file").write_text("x")
    spec = parse_model(TaskSpec, {"task": "sentiment", "data": {"train": "nowhere.csv"}})
    with pytest.raises(PlugformerError, match="not a directory"):
        finetune(spec, "scratch:x", tmp_path / "file")
    with pytest.raises(PlugformerError, match="file"):
        finetune(spec, "scratch:x", tmp_path / "file" / "below")


def test_a_stale_tokenizer_in_out_dir_is_not_reused(corpus_file: Path, tmp_path: Path) -> None:
    """Before: a fresh pretraining run silently reused any out_dir/tokenizer.json, even of
    another vocabulary size or corpus."""
    from plugformer.config import PretrainConfig
    from plugformer.data.corpus import load_documents
    from plugformer.errors import ConfigError
    from plugformer.training.pretrain import _prepare_tokenizer
    from tests.conftest import micro_config

    out = tmp_path / "run"
    out.mkdir()
    stale = train_tokenizer(TEXTS * 4, vocab_size=280, min_frequency=1)
    stale.save(out / "tokenizer.json")
    cfg = parse_model(PretrainConfig, micro_config(corpus_file, out))
    docs = load_documents(cfg.data.corpus)
    fresh = _prepare_tokenizer(cfg, out, docs)
    assert fresh.hash != stale.hash and fresh.vocab_size != 280
    assert _prepare_tokenizer(cfg, out, docs).hash == fresh.hash  # its own is reused
    cfg.tokenizer.vocab_size = 300
    with pytest.raises(ConfigError, match="--resume"):  # a resumed run must not retrain it
        _prepare_tokenizer(cfg, out, docs, resume=True)


def test_evaluate_prints_its_metrics_when_the_checkpoint_is_read_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: `evaluate` computed the metrics, failed writing eval_test.json beside a read-only
    checkpoint and never printed them."""
    import plugformer.training.finetune as ft
    from plugformer.cli.main import main

    monkeypatch.setattr(
        ft, "evaluate", lambda spec, ckpt, split="test", **kw: {"metrics": {"accuracy": 0.75}}
    )
    (tmp_path / "ro").write_text("a file: nothing can be written below it")
    spec = tmp_path / "s.toml"
    spec.write_text('task = "sentiment"\n[data]\ndataset = "x"\n')
    main(["evaluate", str(spec), "--checkpoint", str(tmp_path / "ro" / "ckpt")])  # exits 0
    out = capsys.readouterr()
    assert json.loads(out.out) == {"accuracy": 0.75}
    assert "not saved" in out.err
    # Written where the user did not say: the file is named on stderr (stdout stays the JSON).
    (tmp_path / "ok").mkdir()
    main(["evaluate", str(spec), "--checkpoint", str(tmp_path / "ok" / "ckpt")])
    out = capsys.readouterr()
    assert json.loads(out.out) == {"accuracy": 0.75}
    assert f"result written to {tmp_path / 'ok' / 'eval_test.json'}" in out.err


def test_outputs_are_readable_by_others_under_a_normal_umask(tmp_path: Path) -> None:
    """Before: atomic writes left files 0600 and directories 0700 (mkstemp/mkdtemp modes)."""
    from plugformer.fileio import atomic_dir, atomic_write_json

    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "r.json", {"a": 1})
        with atomic_dir(tmp_path / "d") as d:
            atomic_write_json(d / "x.json", {})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "d" / "x.json").stat().st_mode) == 0o644


def test_checkpoint_weights_are_readable_by_others_under_a_normal_umask(tmp_path: Path) -> None:
    """Before: safetensors' save_file creates 0600 files, so model/head weights stayed private."""
    import torch
    from safetensors.torch import save_file

    from plugformer.fileio import atomic_dir

    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "ckpt") as d:
            save_file({"w": torch.zeros(2)}, str(d / "model.safetensors"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ckpt" / "model.safetensors").stat().st_mode) == 0o644


# --------------------------------------------------------------------------- 6. plugins


def test_on_result_gets_a_copy() -> None:
    """Before: a plugin editing the result changed what evaluate printed and the cache stored."""
    plugin = types.ModuleType("vandal")

    @hookimpl
    def on_result(result: dict[str, Any]) -> None:
        result["metrics"]["accuracy"] = 1.0
        result.clear()

    plugin.on_result = on_result  # type: ignore[attr-defined]
    plugins.register_plugin(plugin, "vandal")
    result = {"metrics": {"accuracy": 0.5}}
    hook_calls.call_on_result(result)
    assert result == {"metrics": {"accuracy": 0.5}}


def test_a_runtime_hook_that_raises_is_named_and_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a plugin whose register_callbacks or read_examples raised (or returned a
    non-list) stopped every fine-tuning run with "unexpected error: RuntimeError: ...", exit 1,
    naming no plugin; the other plugins' callbacks and the core's readers are unaffected."""
    from lightning.pytorch import Callback

    from plugformer.training.finetune import build_task

    good_callback = Callback()
    healthy, broken, garbage = (types.ModuleType(n) for n in ("healthy", "boom", "garbage"))

    @hookimpl
    def register_callbacks(stage: str, config: Any) -> list[Any]:
        return [good_callback]

    @hookimpl(specname="register_callbacks")
    def raising_callbacks(stage: str, config: Any) -> list[Any]:
        raise RuntimeError("tracker offline")

    @hookimpl(specname="read_examples")
    def raising_reader(path: str, task: Any) -> None:
        raise KeyError("format")

    @hookimpl(specname="register_callbacks")
    def not_a_list(stage: str, config: Any) -> int:
        return 42

    healthy.register_callbacks = register_callbacks  # type: ignore[attr-defined]
    broken.register_callbacks, broken.read_examples = raising_callbacks, raising_reader  # type: ignore[attr-defined]
    garbage.register_callbacks = not_a_list  # type: ignore[attr-defined]
    for module in (healthy, broken, garbage):
        plugins.register_plugin(module, module.__name__)
    assert hook_calls.extra_callbacks("finetune", None) == [good_callback]
    err = capsys.readouterr().err
    assert "plugin 'boom' failed in register_callbacks: RuntimeError: tracker offline" in err
    assert "plugin 'garbage' failed in register_callbacks: it returned int, not a list" in err

    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "a good film", "label": "pos"}\n')
    task = build_task("sentiment", {}, None)
    assert [ex.text for ex in task.read_file(data)] == ["a good film"]
    assert "plugin 'boom' failed in read_examples: KeyError" in capsys.readouterr().err

    plugins.set_strict(True)  # --strict-plugins: a broken plugin is fatal
    with pytest.raises(
        PlugformerError, match=r"plugin '(boom|garbage)' failed in register_callbacks"
    ):
        hook_calls.extra_callbacks("finetune", None)


def test_a_plugin_callback_that_raises_mid_training_is_named_and_switched_off(
    micro_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a plugin's Lightning callback raising in a training step ended the fine-tune
    with Lightning's traceback, naming no plugin. Now one line names the plugin, the callback
    and the hook, the callback is switched off, the run finishes, and the other plugins'
    callbacks keep running; under ``--strict-plugins`` the same failure is fatal."""
    from lightning.pytorch import Callback

    import plugformer

    if "sentiment" not in plugins.tasks().names():
        pytest.skip("sentiment plugin not installed")

    class Flaky(Callback):
        calls = 0

        def on_train_batch_end(self, *args: Any) -> None:
            Flaky.calls += 1
            raise ValueError("metrics server said no")

    class Counter(Callback):
        steps = 0

        def on_train_batch_end(self, *args: Any) -> None:
            Counter.steps += 1

    flaky, counting = types.ModuleType("flaky"), types.ModuleType("counting")
    flaky.register_callbacks = hookimpl(specname="register_callbacks")(  # type: ignore[attr-defined]
        lambda stage, config: [Flaky()]
    )
    counting.register_callbacks = hookimpl(specname="register_callbacks")(  # type: ignore[attr-defined]
        lambda stage, config: [Counter()]
    )
    plugins.register_plugin(flaky, "flaky")
    plugins.register_plugin(counting, "counting")
    rows = [{"text": f"{w} film number {i}", "label": w} for i, w in enumerate(["good", "bad"] * 8)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = TaskSpec(
        task="sentiment",
        data={"train": str(tmp_path / "train.jsonl")},
        finetune={"max_steps": 3, "batch_size": 4, "progress": False},
    )
    summary = plugformer.finetune(spec, backbone=str(micro_checkpoint), out_dir=tmp_path / "run")
    assert summary["steps"] == 3
    assert (Flaky.calls, Counter.steps) == (1, 3)
    err = capsys.readouterr().err
    assert (
        "plugin 'flaky' failed in its callback Flaky.on_train_batch_end: "
        "ValueError: metrics server said no; the callback is switched off"
    ) in err

    plugins.set_strict(True)
    with pytest.raises(PlugformerError, match="plugin 'flaky' failed in its callback"):
        plugformer.finetune(spec, backbone=str(micro_checkpoint), out_dir=tmp_path / "strict")


def test_a_callback_handed_out_twice_is_guarded_afresh_each_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A plugin that returns the same callback object to every run gets it guarded once per
    run: a failure switches it off for that run only, and guards never nest."""
    from lightning.pytorch import Callback

    class Once(Callback):
        def on_train_start(self, *args: Any) -> None:
            raise RuntimeError("no tracker")

    shared = Once()
    for _ in range(2):
        hook_calls.guard_callback(shared, "tracker")
        shared.on_train_start(None, None)
        shared.on_train_start(None, None)  # switched off: no second line
    assert capsys.readouterr().err.count("plugin 'tracker' failed in its callback") == 2
    assert shared.on_train_start.__wrapped__.__func__ is Once.on_train_start


def test_a_wrapper_on_a_runtime_hook_still_wraps_it(tmp_path: Path) -> None:
    """A ``wrapper=True`` implementation of ``read_examples`` runs around the readers (pluggy's
    own call), not as a reader of its own whose generator is refused as "not a list"."""
    from plugformer.training.finetune import build_task

    seen: list[str] = []
    plugin = types.ModuleType("auditor")

    @hookimpl(wrapper=True, specname="read_examples")
    def audit(path: str, task: Any) -> Any:
        seen.append(Path(path).name)
        rows = yield
        return rows

    plugin.read_examples = audit  # type: ignore[attr-defined]
    plugins.register_plugin(plugin, "auditor")
    data = tmp_path / "rows.jsonl"
    data.write_text('{"text": "a good film", "label": "pos"}\n')
    task = build_task("sentiment", {}, None)
    assert [ex.text for ex in task.read_file(data)] == ["a good film"]
    assert seen == ["rows.jsonl"]


def test_a_plugin_cannot_replace_a_core_command(capsys: pytest.CaptureFixture[str]) -> None:
    from plugformer.cli import main as cli_mod
    from plugformer.cli.run import pretrain

    plugin = types.ModuleType("usurper")

    @hookimpl
    def register_commands(cli: click.Group) -> None:
        @cli.command("pretrain")
        def fake() -> None:
            click.echo("hijacked")

        @cli.command("usurper-extra")
        def extra() -> None:
            click.echo("fine")

    plugin.register_commands = register_commands  # type: ignore[attr-defined]
    plugins.register_plugin(plugin, "usurper")
    cli_mod._add_commands()
    assert cli_mod.cli.commands["pretrain"] is pretrain
    assert "usurper-extra" in cli_mod.cli.commands  # new commands are still welcome
    assert "may not replace the core command 'pretrain'" in capsys.readouterr().err


def test_the_core_commands_come_through_register_commands() -> None:
    """The root group holds nothing of its own: the default plugin adds the core's commands
    through the same hook as a third-party plugin's."""
    from plugformer.cli import main as cli_mod

    pm = plugins.get_plugin_manager()
    owners = {i.plugin_name for i in pm.hook.register_commands.get_hookimpls()}
    assert "commands" in owners
    cli_mod._add_commands()
    for name in ("pretrain", "finetune", "evaluate", "predict", "generate", "bench", "data"):
        assert name in cli_mod.cli.commands


def test_a_hanging_registration_hook_is_timed_out_and_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a plugin hanging in a registration hook hung `plugins` and `predict` forever, and
    PLUGFORMER_TRACE_PLUGINS never named it (it printed only after a call returned)."""
    plugin = types.ModuleType("sleeper")

    @hookimpl
    def register_tasks(register: Any) -> None:
        time.sleep(30)

    plugin.register_tasks = register_tasks  # type: ignore[attr-defined]
    monkeypatch.setenv("PLUGFORMER_PLUGIN_TIMEOUT", "0.5")
    monkeypatch.setenv("PLUGFORMER_TRACE_PLUGINS", "1")
    plugins.register_plugin(plugin, "sleeper")
    t0 = time.perf_counter()
    infos = {i.name: i for i in plugins.plugin_infos()}
    assert time.perf_counter() - t0 < 10
    assert (
        infos["sleeper"].status == "broken"
        and "did not return within 0.5 s" in infos["sleeper"].error
    )
    assert "sentiment" in plugins.tasks()  # the others still load
    assert "register_tasks in sleeper: calling" in capsys.readouterr().err


# --------------------------------------------------------------------------- 7. inputs and configs


def _sentiment() -> Any:
    from plugformer.training.finetune import build_task

    return build_task("sentiment", {}, None)


def test_a_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("text,label\na fine film,pos\na dull film,neg\n".encode("utf-8-sig"))
    examples = _sentiment().read_file(path)
    assert [e.text for e in examples] == ["a fine film", "a dull film"]


def test_an_empty_label_cell_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("text,label\ngood,pos\nbad,\n")
    with pytest.raises(DataError, match=rf"{path}:3: field 'label': .*empty label"):
        _sentiment().read_file(path)


def test_integer_labels_written_as_floats_are_one_class(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [("good", 1), ("fine", "1.0"), ("bad", 0), ("awful", 0.0), ("ok", " 1 ")]
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows))
    task = _sentiment()
    task.prepare(task.read_file(path))
    assert task.labels == ["0", "1"]


def test_label_errors_name_file_and_line(tmp_path: Path) -> None:
    from plugformer.training.finetune import build_task

    path = tmp_path / "d.csv"
    path.write_text("text,label\ngood,pos\nbad,neg\nodd,maybe\n")
    task = build_task("sentiment", {"labels": ["neg", "pos"]}, None)
    with pytest.raises(DataError, match=rf"{path}:4: training labels \['maybe'\]"):
        task.prepare(task.read_file(path))


def test_an_unseen_label_at_scoring_time_names_file_and_line(tmp_path: Path) -> None:
    """Before: `evaluate --data` on a file with a label the checkpoint never saw said
    "example (no id): label 'maybe' is not one of ['neg', 'pos']", naming no file or line."""
    from plugformer.training.finetune import build_task

    train, test = tmp_path / "train.csv", tmp_path / "test.jsonl"
    train.write_text("text,label\ngood,pos\nbad,neg\n")
    test.write_text('{"text": "fine", "label": "pos"}\n{"text": "hm", "label": "maybe"}\n')
    task = build_task("sentiment", {}, None)
    task.prepare(task.read_file(train))
    examples = task.read_file(test)
    with pytest.raises(DataError, match=rf"^{test}:2: label 'maybe' is not one of"):
        task.update_metrics(task.metrics(), [{"label": "pos"}] * 2, examples)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("seed = 1979-05-27", "date"),
        ("seed = 4294967296", "seed"),
        ("[optim]\nbetas = [nan, 0.95]", "betas"),
        ("[optim]\nbetas = [0.9, inf]", "betas"),
        ("[trainer]\nmax_steps = true", "max_steps"),
        ("out_dir = 2026-12-01T10:00:00", "date"),
    ],
)
def test_bad_config_values_fail_validation_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, message: str
) -> None:
    """Before: TOML dates, seeds beyond 2**32 and NaN betas passed `config validate` and then
    crashed the run with "unexpected error"; `max_steps = true` was taken as 1."""
    from plugformer.cli.main import main

    path = tmp_path / "c.toml"
    path.write_text(
        f'{line}\n[data]\ncorpus = ["x.txt"]\n'
        if not line.startswith("[")
        else f'[data]\ncorpus = ["x.txt"]\n{line}\n'
    )
    with pytest.raises(SystemExit) as exc:
        main(["config", "validate", str(path), "--kind", "pretrain"])
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    lines = [ln for ln in err.splitlines() if ln.startswith("plugformer:")]
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0], err


def test_a_task_spec_seed_beyond_32_bits_is_refused() -> None:
    from plugformer.errors import ConfigError

    with pytest.raises(ConfigError, match="seed"):
        parse_model(TaskSpec, {"task": "sentiment", "data": {"dataset": "x"}, "seed": 2**32})
