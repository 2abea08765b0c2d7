"""Fine-tuning and evaluation: one generic LightningModule runs any task on any backbone.

``finetune(spec, backbone)`` resolves the task through the plugins, reads the data, trains
backbone + head with Lightning's Trainer (early stopping and best-model selection on the
task's main validation metric) and writes a task checkpoint. ``evaluate(spec, checkpoint)``
scores the test split and writes JSON. ``Predictor`` (``plugformer.load(ckpt)``) predicts; it
lives in :mod:`plugformer.inference.predictor` and is re-exported here; the data side (splits,
features, their length-grouped resumable order, loaders) in :mod:`plugformer.training.finetune_data`.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from plugformer.config import TaskSpec
from plugformer.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    PlugformerError,
    PluginError,
)
from plugformer.inference.predictor import Predictor, eval_collate
from plugformer.models.families import freeze_layers
from plugformer.training.common import (
    FINETUNE_HINT,
    adamw,
    check_finite,
    clip_gradients,
    param_groups,
)
from plugformer.training.finetune_data import hold_out, load_examples, loaders
from plugformer.training.schedule import BudgetSchedule

__all__ = [
    "FinetuneModule",
    "Predictor",
    "build_task",
    "eval_collate",
    "evaluate",
    "finetune",
    "hold_out",
    "load_examples",
]


# --------------------------------------------------------------------------- module


class FinetuneModule(L.LightningModule):
    """Backbone + task head; the task supplies forward, loss, decoding and metrics."""

    nonfinite_hint = FINETUNE_HINT
    """What a non-finite gradient norm's message suggests (:func:`clip_gradients`)."""

    def __init__(
        self, task: Any, backbone: nn.Module, head: nn.Module, spec: TaskSpec, total_steps: int = 1
    ):
        super().__init__()
        self.task, self.spec, self.total_steps = task, spec, total_steps
        self.backbone, self.head = backbone, head
        self.val_metrics = nn.ModuleDict(task.metrics())
        self.test_metrics = nn.ModuleDict(task.metrics())
        self.val_history: list[dict[str, float]] = []
        self.predictions: list[Any] = []
        self.keep_predictions = False
        self.examples_seen = 0
        self.tokens_seen = 0

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        ids = batch["input_ids"]  # (B, T)
        mask = batch.get("attention_mask")
        self.examples_seen += int(ids.size(0))
        self.tokens_seen += int(mask.sum()) if mask is not None else int(ids.numel())
        loss = self.task.train_loss(self.backbone, self.head, batch)
        check_finite(loss.detach(), self.global_step, hint=FINETUNE_HINT)
        self.log("train_loss", loss, prog_bar=True, batch_size=int(batch["input_ids"].size(0)))
        return loss

    # The counters of the whole run, not of its last process: saved in Lightning's
    # checkpoint, so a resumed run's summary counts what the interrupted one read.
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["plugformer_seen"] = {
            "examples": self.examples_seen,
            "tokens": self.tokens_seen,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        seen = checkpoint.get("plugformer_seen")
        if seen:  # absent in a checkpoint from before the counters were saved
            self.examples_seen, self.tokens_seen = int(seen["examples"]), int(seen["tokens"])

    def _eval_step(self, batch: dict[str, Any], metrics: nn.ModuleDict) -> None:
        preds = self.task.predict(self.backbone, self.head, batch)
        self.task.update_metrics(dict(metrics.items()), preds, batch["examples"])
        if self.keep_predictions:
            self.predictions.extend(preds)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.val_metrics)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, self.test_metrics)

    def _log_metrics(self, metrics: nn.ModuleDict, prefix: str) -> dict[str, float]:
        values = self.task.compute_metrics(dict(metrics.items()))
        for m in metrics.values():
            m.reset()
        for k, v in values.items():
            self.log(f"{prefix}_{k}", float(v), prog_bar=k == self.task.main_metric)
        return values

    def on_validation_epoch_end(self) -> None:
        values = self._log_metrics(self.val_metrics, "val")
        self.val_history.append({"step": self.global_step, **values})

    def on_test_epoch_end(self) -> None:
        self.test_results = self._log_metrics(self.test_metrics, "test")

    def configure_gradient_clipping(
        self, optimizer: Any, gradient_clip_val: Any = None, gradient_clip_algorithm: Any = None
    ) -> None:
        """Clip the global gradient norm and refuse a non-finite one (:func:`clip_gradients`)."""
        clip_gradients(self, self.parameters(), gradient_clip_val)

    def configure_optimizers(self) -> Any:
        ft = self.spec.finetune
        groups = param_groups(self.head, ft.weight_decay, ft.lr_head)
        if ft.lr_backbone > 0 and not ft.freeze_backbone:
            groups += param_groups(self.backbone, ft.weight_decay, ft.lr_backbone)
        # The learning rate is set before every step by plugformer.training.schedule.BudgetSchedule.
        return adamw(groups, betas=(0.9, 0.98))


class _KeepBest(L.Callback):
    """Keeps the weights of the best validation (main metric) in memory: model selection."""

    def __init__(self, metric: str, higher_is_better: bool):
        self.metric, self.sign = f"val_{metric}", 1.0 if higher_is_better else -1.0
        self.best: float | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.step = 0

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            return
        value = float(value)
        if self.best is None or self.sign * value > self.sign * self.best:
            self.best, self.step = value, trainer.global_step
            self.state = copy.deepcopy(
                {k: v.detach().cpu() for k, v in pl_module.state_dict().items()}
            )

    # Saved in the Lightning checkpoint of an interrupted run, so --resume selects the same
    # best weights as an uninterrupted run; the validation history goes with them.
    def state_dict(self) -> dict[str, Any]:
        history = getattr(self, "_module", None)
        return {
            "best": self.best,
            "step": self.step,
            "state": self.state,
            "history": list(history.val_history) if history is not None else [],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.step, self.state = state["best"], state["step"], state["state"]
        self._history = state.get("history", [])

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._module = pl_module
        pl_module.val_history[:0] = getattr(self, "_history", [])


class _RngState(L.Callback):
    """The global torch RNG (dropout) in the checkpoint: a resumed run draws what the
    uninterrupted one would have."""

    def state_dict(self) -> dict[str, Any]:
        return {"torch": torch.get_rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])


# --------------------------------------------------------------------------- API


def training_compute(
    backbone: nn.Module, head: nn.Module, module: FinetuneModule, schedule: Any, steps: int
) -> dict[str, Any]:
    """What a fine-tuning run spent: parameters, seconds, examples, tokens and FLOPs.

    FLOPs follow the usual ``6 · N · D`` estimate (Kaplan et al., 2020: forward 2N, backward
    4N per token) with N the parameters that touch each token — every parameter but the
    embedding tables, which are looked up, not multiplied — and D the non-padding tokens the
    training steps read. Validation passes are not counted.
    """
    params = list({id(p): p for p in (*backbone.parameters(), *head.parameters())}.values())
    embedding = {
        id(p)
        for m in (*backbone.modules(), *head.modules())
        if isinstance(m, nn.Embedding)
        for p in m.parameters()
    }
    tied = getattr(getattr(backbone, "lm_head", None), "weight", None)
    dense = sum(p.numel() for p in params if id(p) not in embedding or p is tied)
    return {
        "params_total": sum(p.numel() for p in params),
        "params_trained": sum(p.numel() for p in params if p.requires_grad),
        "train_seconds": round(schedule.seconds(), 2),
        "steps": steps,
        "examples_seen": module.examples_seen,
        "tokens_seen": module.tokens_seen,
        "train_flops": 6 * dense * module.tokens_seen,
    }


def build_task(name: str, options: dict[str, Any], tokenizer: Any) -> Any:
    from plugformer.plugin_registries import get_task_class

    return get_task_class(name)(options, tokenizer)


def _freeze(backbone: nn.Module, spec: TaskSpec) -> None:
    ft = spec.finetune
    if ft.freeze_backbone:
        backbone.requires_grad_(False)
        return
    if ft.freeze_layers:
        freeze_layers(backbone, ft.freeze_layers)


def _trainer(
    spec: TaskSpec,
    out: Path,
    callbacks: list[Any],
    max_steps: int,
    val_every: int | None,
    stage: str,
    logger_version: str = "",
) -> L.Trainer:
    from plugformer.config import TrainerConfig
    from plugformer.hook_calls import extra_callbacks
    from plugformer.training.common import build_trainer

    ft = spec.finetune
    tc = TrainerConfig(max_steps=max_steps, batch_size=ft.batch_size, **ft.hardware())
    return build_trainer(
        tc,
        out,
        [*callbacks, *extra_callbacks(stage, spec)],
        max_steps=max_steps,
        val_check_interval=val_every,
        grad_clip=ft.grad_clip,
        logger_name=f"{stage}_logs",
        logger_version=logger_version,
    )


def _as_spec(spec: TaskSpec | str | os.PathLike[str], overrides: Sequence[str] = ()) -> TaskSpec:
    """A :class:`TaskSpec` as given, or read from a spec file or name (with ``--set`` overrides)."""
    if isinstance(spec, TaskSpec):
        if overrides:
            raise TypeError("overrides apply to a spec file or name; change a TaskSpec directly")
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(
            f"spec must be a TaskSpec, a spec file or a spec name, not {type(spec).__name__}"
        )
    from plugformer.specs import load_task_spec

    return load_task_spec(spec, overrides=overrides)


def finetune(
    spec: TaskSpec | str | os.PathLike[str],
    backbone: str | None = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """Fine-tune ``spec`` on a backbone reference; writes a task checkpoint; returns a summary.

    ``spec`` is a :class:`TaskSpec`, or what ``plugformer finetune SPEC`` takes: a spec file
    or a registered spec name (``plugformer tasks``), with ``overrides`` as ``--set`` takes
    them (``["finetune.max_steps=50"]``).

    The output directory is held for the run (:mod:`plugformer.outdir`). SIGINT/SIGTERM stop
    at a step boundary with ``out/checkpoints/last.ckpt`` (``resume=True`` continues it to the
    result an uninterrupted run gives) and the best weights so far as a task checkpoint in
    ``out/best``.
    """
    from plugformer.outdir import claim

    spec = _as_spec(spec, overrides)
    ref = backbone or spec.backbone
    if not ref:
        raise PlugformerError("no backbone: pass --backbone CKPT or set `backbone` in the spec")
    out = Path(out_dir or spec.out_dir or f"runs/{spec.label}")
    with claim(out, "finetune", disposable=(SETTINGS_FILE,)):
        if not resume and (out / "final").is_dir():  # a finished run: say it is replaced
            print(
                f"plugformer: {out} holds a finished run; this one replaces it "
                "(give --out another directory to keep it)",
                file=sys.stderr,
            )
        return _finetune(spec, ref, out, resume)


SPLITS = ("test", "validation", "train")
"""The splits :func:`evaluate` scores (the CLI offers the first two)."""

SETTINGS_FILE = "spec.json"
"""In a fine-tuning run's output directory: the spec it runs (with the backbone it was given),
written when it starts; ``--resume`` checks its own against it (:func:`check_resume_settings`)."""


def _first_batch_error(task: str, exc: Exception) -> PluginError:
    """What a foreign error before the first optimiser step becomes: the task's encode,
    collate, head or loss failed on its first real batch, a plugin author's mistake more often
    than not, so the message names the task and who provides it (``--debug``: the traceback)."""
    from plugformer.plugin_registries import tasks

    owner = tasks().owners.get(task, "?")
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return PluginError(
        f"task {task!r} ({owner}) failed on its first training batch: "
        f"{type(exc).__name__}: {detail}".rstrip(": ")
    )


def _finetune(spec: TaskSpec, ref: str, out: Path, resume: bool) -> dict[str, Any]:
    from plugformer.checkpoint import save_task
    from plugformer.errors import Interrupted
    from plugformer.fileio import atomic_write_json
    from plugformer.models.backbones import resolve_backbone
    from plugformer.models.families import extend_context
    from plugformer.signals import checkpoint_on_signal, fit
    from plugformer.training.common import (
        check_resume_fits,
        check_resume_settings,
        resume_state,
        seed_everything,
    )

    t0 = time.time()
    last = out / "checkpoints" / "last.ckpt"
    resumed = resume_state(last, resume, "an interrupted run", "--out")
    # The run's settings (and backbone), so a resume can refuse other ones before any work.
    settings = spec.model_copy(update={"backbone": ref}).model_dump(mode="json")
    if resumed is not None:
        check_resume_settings(out / SETTINGS_FILE, settings)
    atomic_write_json(out / SETTINGS_FILE, settings)
    start_step = resumed["global_step"] if resumed else 0
    seed_everything(spec.seed)
    loaded = resolve_backbone(ref, seed=spec.seed)
    if spec.finetune.max_seq_len:
        try:  # the family says why it cannot; the setting is named here, where it is read
            extend_context(loaded.model, spec.finetune.max_seq_len)
        except PlugformerError as exc:
            raise ConfigError(
                f"finetune.max_seq_len = {spec.finetune.max_seq_len}: {exc}"
            ) from None
    task = build_task(spec.task, spec.options, loaded.tokenizer)
    task.check_backbone(loaded.model)
    train = load_examples(task, spec, "train")
    val = load_examples(task, spec, "validation")
    if not train:
        raise DataError(f"task {spec.task!r}: no training examples")
    if not val and spec.data.holdout:
        train, val = hold_out(train, spec.data.holdout, spec.seed)
    elif not val:
        print(
            "plugformer: no validation data: the last step's weights are kept, without model "
            "selection or early stopping; give data.validation, or data.holdout = 0.1 to hold "
            "out training examples",
            file=sys.stderr,
        )
    task.prepare(train)
    seed_everything(spec.seed)  # the head's init must not depend on how much data was read
    head = task.build_head(loaded.model)
    _freeze(loaded.model, spec)
    trainable = [p for p in (*loaded.model.parameters(), *head.parameters()) if p.requires_grad]
    if not trainable:
        raise PlugformerError(
            f"task {spec.task!r}: nothing to train — its head has no parameters and the backbone is frozen "
            "(unset finetune.freeze_backbone)"
        )
    loaded.model.train()  # loaded checkpoints arrive in eval mode; dropout must be live
    train_dl, val_dl, steps, per_epoch = loaders(task, spec, train, val, start_step)
    ft = spec.finetune
    module = FinetuneModule(task, loaded.model, head, spec, total_steps=steps)
    if resumed is not None:  # another backbone or head shape: one line, not a plugin's fault
        check_resume_fits(last, resumed["shapes"], module)
    keep = _KeepBest(task.main_metric, task.higher_is_better)
    budget = ft.max_minutes * 60 if ft.max_minutes else None
    # warmup_ratio is a share of the run: with a budget, of its minutes too (the step limit
    # is then only a cap, and warm-up over a share of it might never end).
    schedule = BudgetSchedule(
        int(ft.warmup_ratio * steps), steps, budget, 0.0, warmup_fraction=ft.warmup_ratio
    )
    on_signal = checkpoint_on_signal(last)
    callbacks: list[Any] = [keep, schedule, _RngState(), on_signal]
    if ft.checkpoint_every:  # periodic last.ckpt: resumable after a kill without warning
        from lightning.pytorch.callbacks import ModelCheckpoint

        callbacks.append(
            ModelCheckpoint(
                dirpath=last.parent,
                save_last=True,
                save_top_k=0,
                every_n_train_steps=ft.checkpoint_every,
                enable_version_counter=False,  # overwrite last.ckpt, never a last-v1.ckpt
            )
        )
    if ft.ema_decay is not None:  # after keep: it swaps back after keep has copied
        from plugformer.training.averaging import EMAWeights

        callbacks.append(EMAWeights(ft.ema_decay))
    if ft.early_stopping_patience and val_dl is not None:
        from lightning.pytorch.callbacks import EarlyStopping

        callbacks.append(
            EarlyStopping(
                f"val_{task.main_metric}",
                patience=ft.early_stopping_patience,
                mode="max" if task.higher_is_better else "min",
            )
        )
    val_every = min(ft.val_every or per_epoch, steps)
    # A resumed run logs into finetune_logs/resumeN/, keeping the interrupted run's CSV.
    version = f"resume{len(list((out / 'finetune_logs').glob('resume*'))) + 1}" if resume else ""
    trainer = _trainer(
        spec, out, callbacks, steps, val_every if val_dl is not None else None, "finetune", version
    )
    try:
        fit(
            trainer,
            on_signal,
            module,
            train_dataloaders=train_dl,
            val_dataloaders=val_dl,
            ckpt_path=str(last) if resume else None,
            weights_only=True,
        )
    except Interrupted:
        if keep.state is not None and trainer.is_global_zero:  # the best weights so far, usable
            module.load_state_dict(keep.state)
            summary = {"backbone": ref, "val_metrics": {"best_step": keep.step}}
            save_task(out / "best", loaded, head, task, spec, summary)
        raise
    except Exception as exc:
        if trainer.global_step or isinstance(exc, PlugformerError):
            raise
        raise _first_batch_error(spec.task, exc) from exc
    validated = {h["step"] for h in module.val_history}
    if val_dl is not None and trainer.global_step and trainer.global_step not in validated:
        # A budget (or early epoch end) stopped between validations: judge the last weights too.
        trainer.validate(module, dataloaders=val_dl, verbose=False)
    if keep.state is not None:  # best-checkpoint selection on the main validation metric
        module.load_state_dict(keep.state)
    val_metrics = {
        k: v
        for k, v in (module.val_history[-1] if module.val_history else {}).items()
        if k != "step"
    }
    if keep.best is not None:
        val_metrics = next((h for h in module.val_history if h["step"] == keep.step), val_metrics)
        val_metrics = {k: v for k, v in val_metrics.items() if k != "step"}
    summary = {
        "task": spec.task,
        "backbone": ref,
        "seed": spec.seed,
        "steps": trainer.global_step,
        "best_step": keep.step if keep.best is not None else trainer.global_step,
        "val_metrics": val_metrics,
        "val_history": module.val_history,
        "train_examples": len(train),
        "wall_seconds": round(time.time() - t0, 2),
        "compute": training_compute(loaded.model, head, module, schedule, trainer.global_step),
    }
    if trainer.is_global_zero:
        save_task(out / "final", loaded, head, task, spec, summary)
        summary["checkpoint"] = str(out / "final")
        last.unlink(missing_ok=True)  # the run is complete: nothing is left to resume
        # An interrupted run's best weights so far (OUT/best) are superseded by final, which was
        # selected over the whole run; left, they would read as a second, older result.
        shutil.rmtree(out / "best", ignore_errors=True)
        with contextlib.suppress(
            OSError
        ):  # and its folder goes too, unless something else is in it
            last.parent.rmdir()
    return summary


def evaluate(
    spec: TaskSpec | str | os.PathLike[str],
    checkpoint: str | Path,
    split: str = "test",
    out_json: str | Path | None = None,
    keep_predictions: bool = False,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Score a task checkpoint on a split of the spec's data; tells plugins via ``on_result``.
    ``spec``: a :class:`TaskSpec`, a spec file or a registered spec name; ``split``: ``test``,
    ``validation`` or ``train``.

    The task's options are the checkpoint's; ``options`` change some of them for this
    evaluation (decoding settings: ``beam_size``, ``no_repeat_ngram_size``, ...)."""
    from plugformer.checkpoint import library_versions
    from plugformer.fileio import atomic_write_json
    from plugformer.hook_calls import call_on_result
    from plugformer.metric_info import normalise_metric_info

    t0 = time.time()
    if split not in SPLITS:
        raise ConfigError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    spec = _as_spec(spec)
    # The spec's [inference] precision when it sets one, else the checkpoint's saved one.
    explicit = "inference" in spec.model_fields_set
    pred = Predictor.from_checkpoint(
        checkpoint, spec.inference.precision if explicit else None, options
    )
    if pred.task.name != spec.task:
        raise CheckpointError(
            f"{checkpoint}: a {pred.task.name!r} checkpoint cannot evaluate task {spec.task!r}"
        )
    examples = load_examples(pred.task, spec, split)
    if not examples:
        raise DataError(f"task {spec.task!r}: no {split} examples")
    metrics, predictions = pred.score(
        examples, batch_size=spec.finetune.eval_batch_size, keep=keep_predictions
    )
    result = {
        "task": spec.task,
        "spec": spec.label,
        "checkpoint": str(checkpoint),
        "split": split,
        "backbone": pred.manifest.get("backbone_ref"),
        "seed": spec.seed,
        "metrics": metrics,
        "main_metric": pred.task.main_metric,
        "higher_is_better": pred.task.higher_is_better,
        "metric_info": normalise_metric_info(pred.task.metric_info()),
        "n_examples": len(examples),
        "precision": pred.precision,
        "options_changed": dict(options or {}),
        "data": {"dataset": spec.data.dataset, "file": getattr(spec.data, split)},
        "versions": library_versions(),
        "wall_seconds": round(time.time() - t0, 2),
    }
    if keep_predictions:
        from plugformer.inference.samples import sample_records

        result["predictions"] = predictions
        result["samples"] = sample_records(examples, predictions)
        stats = pred.task.example_statistics(predictions, examples)  # for resampled intervals
        result["example_statistics"] = stats.as_dict() if stats is not None else None
    if out_json:
        atomic_write_json(out_json, result)
    call_on_result(result)
    return result
