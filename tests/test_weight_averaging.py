"""``finetune.ema_decay``: the averaged weights are the ones validated, selected and saved, and
an interrupted run resumes to the same averaged weights."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import plugformer
from plugformer import plugins
from plugformer.errors import Interrupted
from tests.test_crash_safety import INTERRUPT_AT
from tests.test_signals import write_sentiment


def _change(a: Path, b: Path) -> float:
    """Largest absolute difference between two checkpoints' backbone weights."""
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    return max(float((wa[k].float() - wb[k].float()).abs().max()) for k in wa)


def test_the_saved_and_validated_weights_are_the_average(
    micro_checkpoint: Path, tmp_path: Path
) -> None:
    """With a decay of almost one the average stays at its first value, the weights after the
    first step (torch's ``AveragedModel`` starts from them). Adam's first step moves no weight
    by more than the learning rate (3e-4 here), sixteen steps move some much further.
    Validation only at the last step, so that both runs keep step 16."""
    spec = write_sentiment(tmp_path / "data", max_steps=16, val_every=16)  # both keep step 16
    plain = plugformer.finetune(spec, str(micro_checkpoint), tmp_path / "plain")
    ema = plugformer.finetune(
        spec, str(micro_checkpoint), tmp_path / "ema", overrides=["finetune.ema_decay=0.999999"]
    )
    assert plain["steps"] == ema["steps"] == 16
    moved = _change(micro_checkpoint, Path(plain["checkpoint"]))
    assert moved > 1e-3
    assert _change(micro_checkpoint, Path(ema["checkpoint"])) <= 3e-4 * 1.01


def test_model_selection_keeps_the_averaged_weights_it_validated(tmp_path: Path) -> None:
    """Lightning swaps the average back out before ``on_validation_end``, where model selection
    copies the weights; EMAWeights waits until then, so the kept weights are the averaged ones
    that were scored, not the live ones."""
    import lightning as L
    from torch import nn

    from plugformer.training.averaging import EMAWeights
    from plugformer.training.finetune import _KeepBest

    class Toy(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 1)
            self.val_history: list[dict[str, float]] = []  # what _KeepBest reads and extends

        def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
            return (self.lin(batch) - 1.0).pow(2).mean()

        def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
            self.log("val_score", -(self.lin(batch) - 1.0).pow(2).mean())

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class LiveWeights(L.Callback):
        def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, *a) -> None:
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}

    torch.manual_seed(0)
    data = torch.utils.data.DataLoader(torch.randn(32, 4), batch_size=4)
    keep, live, model = _KeepBest("score", True), LiveWeights(), Toy()
    trainer = L.Trainer(
        max_steps=8,
        val_check_interval=8,
        callbacks=[keep, live, EMAWeights(0.5)],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, data, data)
    assert keep.step == 8 and keep.state is not None
    for name, value in model.state_dict().items():  # on_train_end copied the average in
        assert torch.equal(keep.state[name], value), name
    assert not torch.equal(keep.state["lin.weight"], live.state["lin.weight"])


def test_resume_reaches_the_same_averaged_weights(
    micro_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interrupted at step 3 and resumed: the same validation scores and saved weights as one
    uninterrupted run (the average is in Lightning's checkpoint, beside the live weights)."""
    plugin = types.ModuleType("pt_interrupt_at_ema")
    exec(INTERRUPT_AT, plugin.__dict__)
    plugins.register_plugin(plugin, "interrupt-at-ema")
    spec = write_sentiment(tmp_path / "data", max_steps=8, val_every=2)
    ema = ["finetune.ema_decay=0.7"]
    ref = plugformer.finetune(spec, str(micro_checkpoint), tmp_path / "ref", overrides=ema)
    out = tmp_path / "run"
    monkeypatch.setenv("INTERRUPT_AT", "3")
    with pytest.raises(Interrupted):
        plugformer.finetune(spec, str(micro_checkpoint), out, overrides=ema)
    monkeypatch.delenv("INTERRUPT_AT")
    got = plugformer.finetune(spec, str(micro_checkpoint), out, True, ema)
    assert got["steps"] == ref["steps"] == 8 and got["best_step"] == ref["best_step"]
    assert got["val_history"] == ref["val_history"]
    assert _change(Path(ref["checkpoint"]), Path(got["checkpoint"])) < 1e-6
    # and the average is not the last step's weights: without it the run ends elsewhere
    plain = plugformer.finetune(spec, str(micro_checkpoint), tmp_path / "plain")
    assert _change(Path(ref["checkpoint"]), Path(plain["checkpoint"])) > 1e-4
    assert torch.is_grad_enabled()
