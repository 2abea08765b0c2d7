"""Crash safety: SIGKILL at random steps + ``--resume`` reproduces the uninterrupted run
bit for bit; checkpoints are written atomically; a non-finite loss, an unwritable output
directory and a full disk each end the run with one clear line and a non-zero exit."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import micro_config

PLUGFORMER = [sys.executable, "-m", "plugformer"]


def write_config(path: Path, cfg: dict) -> Path:
    """A TOML file for ``cfg`` (JSON literals are valid TOML for the values used here)."""
    lines: list[str] = []
    top = {k: v for k, v in cfg.items() if not isinstance(v, dict)}
    for k, v in top.items():
        lines.append(f"{k} = {json.dumps(v)}")
    for table, values in cfg.items():
        if isinstance(values, dict):
            lines.append(f"[{table}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def cli_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PLUGFORMER_HOME": str(home),
        "PLUGFORMER_PROGRESS": "0",
        "PYTHONUNBUFFERED": "1",
    }


def run_cli(args: list[str], home: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PLUGFORMER, *args], env=cli_env(home), capture_output=True, text=True, timeout=timeout
    )


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("plugformer:")]


def ckpt_step(path: Path) -> int:
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # not there yet
        return -1


def same_weights(a: Path, b: Path) -> list[str]:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    return [k for k in wa if not torch.equal(wa[k], wb[k])]


# --------------------------------------------------------------------------- SIGKILL chaos


@pytest.mark.slow
def test_sigkill_at_random_steps_then_resume_is_exact(corpus_file: Path, tmp_path: Path) -> None:
    steps = 36
    trainer = {"max_steps": steps, "checkpoint_every": 2, "val_every": 8, "batch_size": 4,
               "accumulate_grad_batches": 2, "accelerator": "cpu", "devices": 1}  # fmt: skip
    home = tmp_path / "home"
    # the uninterrupted reference runs in-process (same code path, one process start saved)
    from plugformer.config import PretrainConfig, parse_model
    from plugformer.training.pretrain import pretrain

    os.environ["PLUGFORMER_HOME"] = str(home)  # restored by conftest's monkeypatch of it
    pretrain(parse_model(PretrainConfig, micro_config(corpus_file, tmp_path / "ref", **trainer)))

    out = tmp_path / "chaos"
    cfg = write_config(tmp_path / "chaos.toml", micro_config(corpus_file, out, **trainer))
    last = out / "checkpoints" / "last.ckpt"
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "1234")))
    targets = sorted(rng.sample(range(4, steps - 6), 3))
    kills: list[tuple[int, int]] = []  # (step targeted, step of the checkpoint left behind)
    for i, target in enumerate(targets):
        args = ["pretrain", str(cfg)] + (["--resume"] if i else [])
        proc = subprocess.Popen([*PLUGFORMER, *args], env=cli_env(home), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            if ckpt_step(last) >= target:
                time.sleep(
                    rng.uniform(0, 0.05)
                )  # land anywhere in a step, or in a checkpoint write
                break
            time.sleep(0.01)
        assert proc.poll() is None, (
            f"run ended before the kill at step {target}: {proc.stderr.read()[-2000:]}"
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        proc.stderr.close()
        # what a kill leaves behind must load, and must be a completed save
        kills.append((target, ckpt_step(last)))
        assert kills[-1][1] >= target
        assert not (out / "final").exists()
    r = run_cli(["pretrain", str(cfg), "--resume"], home)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["steps"] == steps
    diff = same_weights(
        tmp_path / "ref" / "final" / "model.safetensors", out / "final" / "model.safetensors"
    )
    assert not diff, f"weights differ after kills {kills}: {diff}"
    ref = json.loads((tmp_path / "ref" / "summary.json").read_text())
    assert summary["val_loss"] == ref["val_loss"]
    # (a kill inside a checkpoint write may leave a hidden .last.ckpt.*.tmp; never a bad last.ckpt)
    assert sorted(p.name for p in (out / "checkpoints").glob("last*.ckpt")) == ["last.ckpt"]


def test_checkpoint_write_is_atomic_when_killed_mid_write(
    corpus_file: Path, tmp_path: Path
) -> None:
    """A failure inside ``torch.save`` (as a kill would cause) leaves the old last.ckpt intact."""
    from plugformer.training.common import AtomicCheckpointIO

    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()

    class Boom(Exception):
        pass

    real_save = torch.save

    def half_save(obj, f, *a, **kw):  # write half the bytes, then die
        import io as _io

        buf = _io.BytesIO()
        real_save(obj, buf)
        f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        raise Boom

    torch.save = half_save
    try:
        with pytest.raises(Boom):
            io.save_checkpoint({"global_step": 2, "w": torch.zeros(3)}, path)
    finally:
        torch.save = real_save
    assert path.read_bytes() == before
    assert torch.load(path, weights_only=True)["global_step"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # the temporary file is gone


def test_rerun_without_resume_is_refused_and_resume_keeps_one_last_ckpt(
    corpus_file: Path, tmp_path: Path
) -> None:
    """A second run into an out_dir that holds a run is refused in one line, before anything is
    rewritten: Lightning would otherwise resume it silently under the new settings (an
    OnExceptionCheckpoint turns ckpt_path=None into "last"), as it did before this check.
    ``--resume`` continues it, and never leaves a stale last.ckpt beside last-v1.ckpt."""
    from plugformer.config import PretrainConfig, parse_model
    from plugformer.errors import ConfigError
    from plugformer.training.pretrain import pretrain

    run = tmp_path / "run"
    cfg = micro_config(corpus_file, run, max_steps=4, checkpoint_every=2)
    pretrain(parse_model(PretrainConfig, cfg))
    before = {  # the run's files (not the lock, which names its latest holder)
        p: p.read_bytes()
        for p in run.rglob("*")
        if p.is_file() and "logs" not in p.parts and p.name != ".plugformer.lock"
    }
    cfg["trainer"]["max_steps"] = 6
    with pytest.raises(ConfigError, match=r"holds a pretraining run .*--resume") as info:
        pretrain(parse_model(PretrainConfig, cfg))
    assert "\n" not in str(info.value)
    assert {p: p.read_bytes() for p in before} == before  # nothing rewritten
    pretrain(parse_model(PretrainConfig, cfg), resume=True)
    ckpts = sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))
    assert ckpts == ["last.ckpt"]
    assert ckpt_step(run / "checkpoints" / "last.ckpt") == 6


def test_resume_with_another_model_shape_is_one_line(corpus_file: Path, tmp_path: Path) -> None:
    """--resume under other model settings than the interrupted run's: one line naming the
    tensor that differs, and the run's config.json is left as it was (a page of
    load_state_dict errors and a rewritten config.json, before)."""
    from plugformer.config import PretrainConfig, parse_model
    from plugformer.errors import ConfigError
    from plugformer.training.pretrain import pretrain

    run = tmp_path / "run"
    cfg = micro_config(corpus_file, run, max_steps=2, checkpoint_every=2)
    pretrain(parse_model(PretrainConfig, cfg))
    config_json = (run / "config.json").read_bytes()
    cfg["model"]["d_model"] = 48
    with pytest.raises(ConfigError, match=r"--resume: .*last\.ckpt holds .* of shape") as info:
        pretrain(parse_model(PretrainConfig, cfg), resume=True)
    assert "\n" not in str(info.value) and "different model" in str(info.value)
    assert (run / "config.json").read_bytes() == config_json


def test_resume_with_other_settings_is_refused_naming_the_setting(
    corpus_file: Path, tmp_path: Path
) -> None:
    """``pretrain --resume`` with another seed or learning rate than the interrupted run's
    was accepted, and config.json rewritten as if the whole run had used them. Now one line
    names the setting and both values; a longer step limit is still allowed."""
    from plugformer.config import PretrainConfig, parse_model
    from plugformer.errors import ConfigError
    from plugformer.training.pretrain import pretrain

    run = tmp_path / "run"
    cfg = micro_config(corpus_file, run, max_steps=2, checkpoint_every=2)
    pretrain(parse_model(PretrainConfig, cfg))
    config_json = (run / "config.json").read_bytes()
    for key, value, line in [
        ("seed", 7, "--resume: seed is 7, the interrupted run had 0; resume with its settings"),
        ("lr", 0.5, "--resume: optim.lr is 0.5, the interrupted run had 0.01;"),
    ]:
        changed = json.loads(json.dumps(cfg))
        if key == "seed":
            changed["seed"] = value
        else:
            changed["optim"][key] = value
        with pytest.raises(ConfigError) as info:
            pretrain(parse_model(PretrainConfig, changed), resume=True)
        assert str(info.value).startswith(line) and "\n" not in str(info.value)
        assert (run / "config.json").read_bytes() == config_json
    cfg["trainer"]["max_steps"] = 4  # a longer run: allowed
    assert pretrain(parse_model(PretrainConfig, cfg), resume=True)["steps"] == 4


INTERRUPT_AT = """
import os, signal
import lightning as L
from plugformer import hookimpl

class InterruptAt(L.Callback):
    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)

@hookimpl
def register_callbacks(stage, config):
    step = os.environ.get("INTERRUPT_AT")
    return [InterruptAt(int(step))] if step and stage == "finetune" else None
"""


def test_finetune_resume_refuses_other_settings_and_counts_the_whole_run(
    micro_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``finetune --resume`` with another seed or lr_head was accepted (the summary said the
    new seed), and its summary counted only the resumed steps' examples, tokens and FLOPs.
    Now the other settings are one line naming the setting; a larger step limit is allowed,
    and the compute equals an uninterrupted run's."""
    import types

    import plugformer
    from plugformer import plugins
    from plugformer.errors import ConfigError, Interrupted
    from tests.test_signals import write_sentiment

    plugin = types.ModuleType("pt_interrupt_at")
    exec(INTERRUPT_AT, plugin.__dict__)
    plugins.register_plugin(plugin, "interrupt-at")
    spec = write_sentiment(tmp_path / "data", max_steps=8, val_every=4)
    ref = plugformer.finetune(
        spec, str(micro_checkpoint), tmp_path / "ref", overrides=["finetune.max_steps=10"]
    )
    out = tmp_path / "run"
    monkeypatch.setenv("INTERRUPT_AT", "3")
    with pytest.raises(Interrupted):
        plugformer.finetune(spec, str(micro_checkpoint), out)
    monkeypatch.delenv("INTERRUPT_AT")
    for override, line in [
        ("seed=5", "--resume: seed is 5, the interrupted run had 3; resume with its settings"),
        ("finetune.lr_head=0.5", "--resume: finetune.lr_head is 0.5, the interrupted run had "),
        ("data.max_train=10", "--resume: data.max_train is 10, the interrupted run had unset;"),
    ]:
        with pytest.raises(ConfigError) as info:
            plugformer.finetune(spec, str(micro_checkpoint), out, True, [override])
        assert str(info.value).startswith(line) and "\n" not in str(info.value)
    summary = plugformer.finetune(spec, str(micro_checkpoint), out, True, ["finetune.max_steps=10"])
    assert summary["steps"] == ref["steps"] == 10 and summary["seed"] == 3
    for key in ("examples_seen", "tokens_seen", "train_flops"):
        assert summary["compute"][key] == ref["compute"][key], key


# --------------------------------------------------------------------------- clear failures


@pytest.mark.slow
def test_non_finite_loss_stops_with_one_line_and_keeps_checkpoint(
    corpus_file: Path, tmp_path: Path
) -> None:
    # lr = 1e30 blows the weights up after the first updates; the loss becomes inf/nan.
    cfg = micro_config(
        corpus_file, tmp_path / "run", max_steps=40, checkpoint_every=1, accelerator="cpu"
    )
    cfg["optim"] = {"lr": 1e30, "warmup_steps": 0, "grad_clip": 0.0}
    path = write_config(tmp_path / "c.toml", cfg)
    r = run_cli(["pretrain", str(path)], tmp_path / "home")
    assert r.returncode == 2, r.stderr[-3000:]
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and " became " in lines[0] and "last good checkpoint" in lines[0], (
        r.stderr[-2000:]
    )
    assert "Traceback" not in r.stderr
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values())
    assert not (tmp_path / "run" / "final").exists()


def test_unwritable_out_dir_is_one_line(corpus_file: Path, tmp_path: Path) -> None:
    # Tests run as root, so chmod cannot block writes: put out_dir under a regular file.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cfg = micro_config(corpus_file, blocker / "run", max_steps=2)
    r = run_cli(["pretrain", str(write_config(tmp_path / "c.toml", cfg))], tmp_path / "home")
    assert r.returncode == 2, r.stderr[-3000:]
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and str(blocker) in lines[0] and "Traceback" not in r.stderr, r.stderr[
        -2000:
    ]


@pytest.mark.skipif(
    os.geteuid() != 0 and not os.access("/", os.W_OK), reason="needs a read-only check"
)
def test_permission_denied_is_one_line(corpus_file: Path, tmp_path: Path, monkeypatch) -> None:
    """EACCES from the file system (root ignores chmod, so the error is injected) → one line."""
    from plugformer import fileio
    from plugformer.errors import PlugformerError

    def denied(*a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(fileio.tempfile, "mkstemp", denied)
    with pytest.raises(PlugformerError, match="permission denied"):
        fileio.atomic_write_text(tmp_path / "x.json", "{}")


def test_disk_full_is_one_line(tmp_path: Path, monkeypatch) -> None:
    """ENOSPC while writing a checkpoint → the one-line 'no space left' error, nothing left behind."""
    from plugformer import fileio
    from plugformer.errors import PlugformerError
    from plugformer.training.common import AtomicCheckpointIO

    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", full)
    path = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(PlugformerError, match="no space left on device"):
        AtomicCheckpointIO().save_checkpoint({"global_step": 1}, path)
    monkeypatch.setattr(fileio.os, "fsync", real_fsync)
    assert not any(path.parent.iterdir())


def test_a_non_finite_fine_tuning_loss_names_fine_tunings_own_settings() -> None:
    """The message used to suggest optim.lr / trainer.precision, which fine-tuning refuses,
    and a checkpoint that a first step never wrote."""
    from plugformer.training.common import FINETUNE_HINT, NonFiniteLossError, check_finite

    with pytest.raises(NonFiniteLossError) as err:
        check_finite(torch.tensor(float("nan")), 0, hint=FINETUNE_HINT)
    assert "no checkpoint was written" in str(err.value)
    assert "finetune.lr_backbone" in str(err.value) and "optim.lr" not in str(err.value)
