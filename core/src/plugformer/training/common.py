"""Pieces shared by pretraining and fine-tuning: seeding, optimiser groups, the schedule,
Trainer construction from a :class:`TrainerConfig`, and the non-finite-loss guard."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from plugformer.config import TrainerConfig
from plugformer.errors import PlugformerError

__all__ = [
    "AtomicCheckpointIO",
    "adamw",
    "build_trainer",
    "check_resumable",
    "check_resume_fits",
    "check_resume_settings",
    "clip_gradients",
    "cosine_schedule",
    "param_groups",
    "progress_bar",
    "resolve_compile",
    "resolve_precision",
    "seed_everything",
]

COMPILE_MIN_STEPS = 500
"""``compile = "auto"`` compiles runs of at least this many steps. Measured on the benchmark
shape (benchmarks/perf): compiling costs ~30 s on 2 cores and saves ~0.15 s per bf16 step,
so it pays back after ~200 steps."""


def seed_everything(seed: int) -> None:
    import lightning as L

    L.seed_everything(seed, workers=True, verbose=False)


def param_groups(
    module: torch.nn.Module, weight_decay: float, lr: float | None = None
) -> list[dict[str, Any]]:
    """AdamW groups: decay matrices of linear layers; never norms, biases or embeddings."""
    decay, no_decay, seen = [], [], set()
    for _, mod in module.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if isinstance(mod, torch.nn.Linear) and pname == "weight" and p.dim() == 2:
                decay.append(p)
            else:
                no_decay.append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if lr is not None:
        for g in groups:
            g["lr"] = lr
    return [g for g in groups if g["params"]]


def adamw(groups: list[dict[str, Any]], **kwargs: Any) -> torch.optim.AdamW:
    """AdamW with the fused kernel where it exists (CPU and CUDA), else the foreach one.

    The fused step measured 3–5 % faster per pretraining step than foreach on CPU
    (benchmarks/perf); results are the same up to float rounding.
    """
    params = [p for g in groups for p in g["params"]]
    fusable = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if fusable:
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    return torch.optim.AdamW(groups, foreach=True, **kwargs)


def resolve_precision(precision: str, accelerator: str = "auto") -> str:
    """``"auto"``: ``bf16-mixed`` where the hardware computes bf16 natively, else ``32-true``.

    On this project's CPU (AVX512-BF16) a bf16-mixed pretraining step is ~1.5× an fp32 one;
    without native bf16 it emulates and is slower than fp32.
    """
    if precision == "32":
        return "32-true"
    if precision != "auto":
        return precision
    if _on_cuda(accelerator):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bf16-mixed" if native else "32-true"


def _on_cuda(accelerator: str) -> bool:
    return accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()


def resolve_compile(compile_: bool | str, max_steps: int, accelerator: str = "auto") -> bool:
    """``"auto"``: compile runs of ``COMPILE_MIN_STEPS`` steps or more, where a compiler exists.

    TorchInductor builds C++ on CPU (it needs a C++ compiler) and Triton kernels on CUDA.
    """
    if compile_ != "auto":
        return bool(compile_)
    if max_steps < COMPILE_MIN_STEPS:
        return False
    if _on_cuda(accelerator):
        import importlib.util

        return importlib.util.find_spec("triton") is not None
    import shutil

    return any(shutil.which(c) for c in (os.environ.get("CXX", ""), "g++", "c++", "clang++") if c)


def cosine_schedule(warmup: int, total: int, min_ratio: float):
    """LR multiplier: linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total``."""

    def fn(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return fn


class NonFiniteLossError(PlugformerError):
    pass


PRETRAIN_HINT = "Try a lower optim.lr or trainer.precision = '32-true'"
"""What to try when pretraining's loss is not finite (its own config keys)."""
FINETUNE_HINT = (
    "Try a lower finetune.lr_backbone / finetune.lr_head or finetune.precision = '32-true'"
)
"""The same for fine-tuning, whose keys differ."""


def check_finite(
    loss: torch.Tensor, step: int, what: str = "loss", hint: str = PRETRAIN_HINT
) -> None:
    """Stop with one line when ``loss`` (or a gradient norm) is inf or nan; ``hint`` names
    the settings of the run's own config to try."""
    if not torch.isfinite(loss):
        kept = "the last good checkpoint is kept" if step > 0 else "no checkpoint was written"
        raise NonFiniteLossError(
            f"{what} became {loss.item()} at step {step}; stopping ({kept}). {hint}"
        )


def clip_gradients(module: Any, parameters: Any, clip_val: Any) -> None:
    """Clip the global gradient norm and refuse a non-finite one, from one norm computation.

    What every ``LightningModule.configure_gradient_clipping`` of plugformer does, in place of
    Lightning's: its mixed-precision plugin refuses to clip for a fused optimizer (it assumes
    a GradScaler unscales inside the step), although bf16 has no scaler — fine-tuning on a CPU
    with native bf16 stopped at the first step. A finite loss can still give inf/nan
    gradients, and one such step would poison the weights the next checkpoint saves (fp16's
    GradScaler skips those steps itself, so it is not checked). Under DDP the gradients are
    already all-reduced here, so every process stops at the same step.
    """
    limit = float(clip_val) if clip_val else float("inf")
    grads = [p for p in parameters if p.grad is not None]
    if not grads:
        return
    norm = torch.nn.utils.clip_grad_norm_(grads, limit, foreach=True)
    if not str(module.trainer.precision).startswith("16"):
        hint = getattr(module, "nonfinite_hint", PRETRAIN_HINT)
        check_finite(norm, module.global_step, "gradient norm", hint)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``.ckpt`` files written to a temporary sibling, fsynced, then renamed.

    Lightning's own writer stages the file in the *system* temp directory and moves it into
    place: across file systems that is a copy, so a kill mid-copy leaves a truncated
    ``last.ckpt`` (and a stray file in /tmp). Staging beside the target makes the rename
    atomic; ENOSPC/EACCES become one-line errors (:mod:`plugformer.fileio`).
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        from plugformer.fileio import atomic_open

        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        with atomic_open(path, "wb") as f:
            torch.save(checkpoint, f)


def progress_bar() -> Any:
    """Lightning's Rich progress bar, titled without an epoch limit: plugformer's runs end on
    steps or minutes, so the Trainer's ``max_epochs`` is -1 and Lightning's own title would
    read ``Epoch 0/-2``.

    It draws on stderr: stdout carries the commands' results (``finetune``'s and ``pretrain``'s
    summary JSON), which ``> summary.json`` or a pipe must get clean."""
    from lightning.pytorch.callbacks import RichProgressBar  # rich is a core dependency

    class _StepBoundedRichProgressBar(RichProgressBar):
        def _get_train_description(self, current_epoch: int) -> str:
            if self.trainer.max_epochs is not None and self.trainer.max_epochs >= 0:
                return super()._get_train_description(current_epoch)
            title = f"Epoch {current_epoch}"
            return f"{title:{len(self.validation_description)}}"  # as wide as "Validation"

        @property
        def total_train_batches(self) -> int | float:
            # Lightning's total is the steps still to run, but a resumed run's bar counts on
            # from the batches its epoch had done before the interruption (60/29 when a run
            # stopped at step 30 resumes to 60): the total counts those batches too.
            trainer = self.trainer
            total = super().total_train_batches
            if trainer.max_epochs == -1 and trainer.max_steps is not None and trainer.max_steps > 0:
                done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
                total = min(trainer.num_training_batches, done + total)
            return total

        def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
            items = super().get_metrics(trainer, pl_module)
            items.pop("v_num", None)  # the CSV logger's version ("resume1"): not a metric
            return items

    return _StepBoundedRichProgressBar(console_kwargs={"stderr": True})


def build_trainer(
    cfg: TrainerConfig,
    out_dir: Path,
    callbacks: list[Any],
    *,
    max_steps: int | None = None,
    val_check_interval: int | None = None,
    limit_val_batches: int | None = None,
    logger_name: str = "logs",
    grad_clip: float = 0.0,
    logger_version: str = "",
) -> Any:
    """A ``lightning.Trainer`` configured from ``cfg`` (CSV logger, progress bar, strategy)."""
    import logging

    # Lightning's start-up banners (accelerators found, tips) drown plugformer's own progress.
    if os.environ.get("PLUGFORMER_DEBUG") != "1":
        for name in ("lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.WARNING)
    import lightning as L
    from lightning.fabric.utilities.exceptions import MisconfigurationException
    from lightning.pytorch.callbacks import Checkpoint, ProgressBar
    from lightning.pytorch.loggers import CSVLogger

    from plugformer.errors import ConfigError

    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    precision = resolve_precision(cfg.precision, cfg.accelerator)
    # Progress bars on a dumb terminal (CI logs) only add noise.
    progress = cfg.progress and os.environ.get("PLUGFORMER_PROGRESS", "1") != "0"
    if progress and not any(isinstance(cb, ProgressBar) for cb in callbacks):
        callbacks = [*callbacks, progress_bar()]
    kwargs: dict[str, Any] = dict(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=cfg.strategy,
        precision=precision,
        max_steps=max_steps or cfg.max_steps,
        accumulate_grad_batches=cfg.accumulate_grad_batches,
        gradient_clip_val=grad_clip or None,
        val_check_interval=val_check_interval,
        check_val_every_n_epoch=None if val_check_interval else 1,
        limit_val_batches=limit_val_batches,
        num_sanity_val_steps=0,
        logger=CSVLogger(str(out_dir), name=logger_name, version=logger_version),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        # Only runs that ask for Lightning checkpoints (pretraining's last.ckpt, the checkpoint
        # of a signal: plugformer.signals) write them; Lightning adds no default one.
        enable_checkpointing=any(isinstance(cb, Checkpoint) for cb in callbacks),
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=min(cfg.log_every, max_steps or cfg.max_steps),
        deterministic=cfg.deterministic,
        use_distributed_sampler=False,
    )
    # Lightning 2.6 builds torch's deprecated ``LeafSpec`` while flattening batches; on torch
    # 2.13 that prints a FutureWarning in every process that trains, which users cannot act on.
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )
    # Training into an existing output directory replaces its run, logs included (a run in
    # progress is refused or resumed before this: resume_state); Lightning's warning about it
    # names its own source file and a folder the user did not choose.
    warnings.filterwarnings(
        "ignore", message=r"Experiment logs directory .* exists and is not empty"
    )
    try:
        return L.Trainer(**kwargs)
    except (ValueError, MisconfigurationException) as exc:
        # e.g. strategy="fsdp" with accelerator="cpu", an unknown strategy, too many devices
        first = " ".join(str(exc).split())
        raise ConfigError(
            f"trainer (strategy={cfg.strategy!r}, accelerator={cfg.accelerator!r}, devices={cfg.devices!r}): {first}"
        ) from None


def resume_state(last: Path, resume: bool, run: str, out_option: str) -> dict[str, Any] | None:
    """What ``--resume`` (``resume``) may do with ``last`` (``out/checkpoints/last.ckpt``):
    with it, the checked checkpoint's :func:`check_resumable` summary; without it, ``None``
    for a fresh directory. Refused in one line: ``--resume`` with nothing to resume, and a
    fresh start over an existing run (Lightning would resume it silently: an
    OnExceptionCheckpoint turns ``ckpt_path=None`` into ``"last"``, under this run's
    settings). ``run`` names what the directory holds, ``out_option`` where it was chosen."""
    from plugformer.errors import ConfigError

    if resume:
        if not last.is_file():
            raise ConfigError(f"--resume: no {last} to resume from (no run was interrupted there)")
        return check_resumable(last)
    if last.is_file():
        out = last.parent.parent
        raise ConfigError(
            f"{out}: holds {run} ({last}); continue it with --resume, or delete it "
            f"(or choose another {out_option}) to start afresh"
        )
    return None


def check_resumable(path: Path) -> dict[str, Any]:
    """Open ``last.ckpt`` as Lightning will (``weights_only=True``: tensors and plain data, no
    code); a corrupt, truncated or code-carrying file is one CheckpointError line. Returns what
    a resume needs before Lightning reads the file again: ``global_step`` and the ``shapes``
    of the saved tensors (for :func:`check_resume_fits`), not the tensors themselves."""
    from plugformer.errors import CheckpointError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (
        Exception
    ) as exc:  # UnpicklingError (refused globals), RuntimeError (truncated zip), EOFError
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = next((ln for ln in lines if "GLOBAL" in ln), lines[0] if lines else "")[:200]
        raise CheckpointError(
            f"--resume: {path} cannot be loaded safely ({type(exc).__name__}: {reason}); "
            "it is corrupt or not a checkpoint this run wrote — delete it to start afresh"
        ) from None
    if not isinstance(state, dict) or "state_dict" not in state or "global_step" not in state:
        raise CheckpointError(f"--resume: {path} is not a Lightning training checkpoint")
    shapes = {k: tuple(v.shape) for k, v in state["state_dict"].items()}
    return {"global_step": int(state["global_step"]), "shapes": shapes}


def check_resume_fits(
    path: Path, shapes: Mapping[str, tuple[int, ...]], module: torch.nn.Module
) -> None:
    """Refuse, in one line, to resume ``module`` from a checkpoint of another shape (``shapes``
    from :func:`check_resumable`): a run resumed with other model settings (or another
    backbone) than the interrupted one had. Lightning would fail later, inside ``fit``, with a
    page of ``load_state_dict`` errors."""
    from plugformer.errors import ConfigError

    ours = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(set(ours) - set(shapes))
    unexpected = sorted(set(shapes) - set(ours))
    if missing or unexpected:
        key, what = (missing[0], "has no") if missing else (unexpected[0], "has an unexpected")
        problem = f"{what} {key!r} ({len(missing)} missing, {len(unexpected)} unexpected tensors)"
    else:
        key = next((k for k in ours if shapes[k] != ours[k]), None)
        if key is None:
            return
        problem = f"holds {key!r} of shape {shapes[key]}, this run's model has {ours[key]}"
    raise ConfigError(
        f"--resume: {path} {problem}: it was written by a different model; resume with the "
        "interrupted run's settings and backbone"
    )


RESUME_MAY_CHANGE = frozenset(
    {
        "trainer.max_steps",
        "trainer.max_minutes",
        "finetune.max_steps",
        "finetune.max_minutes",
        "trainer.progress",
        "finetune.progress",
        "trainer.log_every",
        "data.num_workers",
        "out_dir",
    }
)
"""The settings ``--resume`` may change (dotted, as ``--set`` names them): the step limit and
the minutes budget (a run may be given longer), what is shown (progress bar, logging
interval), where the output goes and how many data-loader workers read. Threads are no
setting (the environment's). Every other setting must be the interrupted run's."""


def _dotted(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested dict as ``{"a.b": leaf}``; lists and empty dicts are leaves."""
    if not isinstance(value, dict) or not value:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, sub in value.items():
        flat.update(_dotted(sub, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _shown(value: Any) -> str:
    import json

    return "unset" if value is None else json.dumps(value)


def check_resume_settings(saved: Path, settings: Mapping[str, Any]) -> None:
    """Refuse, in one line naming the first differing dotted setting with both values, to
    resume the run whose settings ``saved`` (a JSON file the interrupted run wrote) holds under
    other ``settings`` (this run's, as ``model_dump(mode="json")`` gives them): the summary
    would record the new ones as if the whole run had used them. :data:`RESUME_MAY_CHANGE`
    are exempt, and so is a setting that ``saved`` lacks (one added since it was written); a
    run directory from before settings were saved (no ``saved``) is not checked."""
    import json

    from plugformer.errors import ConfigError

    try:
        before = _dotted(json.loads(saved.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"--resume: {saved} (the interrupted run's settings) cannot be read "
            f"({type(exc).__name__}); delete it to resume without checking them"
        ) from None
    now = _dotted(json.loads(json.dumps(settings, default=str)))  # tuples as lists, as saved
    for key, value in now.items():
        if key in RESUME_MAY_CHANGE or key not in before or before[key] == value:
            continue
        raise ConfigError(
            f"--resume: {key} is {_shown(value)}, the interrupted run had {_shown(before[key])}; "
            "resume with its settings"
        )
