"""Fine-tuning benchmark: optimiser steps/s of plugformer's fine-tuning path against a plain
PyTorch loop with the same backbone, head, loss and batches, interleaved in one Trainer run.

plugformer: ``FinetuneModule`` + the Trainer ``plugformer.finetune`` builds (``_loaders`` over
real training examples of the task's smoke spec, ``_trainer``: logging, grad clipping, fused
AdamW with its parameter groups, the learning-rate schedule callback); the time runs between ``on_train_batch_end`` calls, so the
DataLoader (encode-once features, ``task.collate``) is inside it. plain: the same
``task.train_loss`` on pre-collated batches, backward, clip 1.0, fused AdamW, ``zero_grad``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import harness as H
import torch
from harness import ROWS, add_row, sync, task_fixture
from train import Interleave
from twins import model_config


def plain_step(
    task: Any, backbone: Any, head: Any, batches: list[Any], clip: float, bf16: bool = False
):
    from plugformer.training.common import param_groups

    groups = param_groups(head, 0.01, 1e-3) + param_groups(backbone, 0.01, 3e-4)
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.98), fused=True)
    params = [p for g in groups for p in g["params"]]
    i = 0

    def step() -> None:
        nonlocal i
        batch = batches[i % len(batches)]
        i += 1
        # bf16: autocast around the forward pass, as Lightning's bf16-mixed does
        with torch.autocast(H.DEVICE, dtype=torch.bfloat16, enabled=bf16):
            loss = task.train_loss(backbone, head, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def bench_finetune(args: argparse.Namespace, tmp: Path) -> None:
    from plugformer import plugins
    from plugformer.training.common import resolve_precision

    wanted = [t for t in args.finetune_tasks.split(",") if t]
    warm, k, reps = (2, 2, 3) if args.quick else (3, 4, 5)
    for name in wanted:
        if name not in plugins.tasks().names():
            ROWS.append({"group": "finetune", "name": f"{name} skipped", "note": "not installed"})
            continue
        fixture = task_fixture(name, 512, "train")
        if isinstance(fixture, str):
            ROWS.append({"group": "finetune", "name": f"{name} skipped", "note": fixture})
            continue
        task, spec0, examples = fixture
        steps = warm + k * reps + 5
        # Equal settings: fp32 on both sides, and bf16-mixed on both where the hardware has
        # native bf16 (what precision = "auto" picks there).
        precisions = ["32-true"]
        if resolve_precision("auto", H.DEVICE) == "bf16-mixed":
            precisions.append("bf16-mixed")
        for precision in precisions:
            spec = spec0.model_copy(
                update={
                    "finetune": spec0.finetune.model_copy(
                        update={
                            "max_steps": steps,
                            "progress": False,
                            "accelerator": H.DEVICE,
                            "precision": precision,
                        }
                    )
                }
            )
            _bench_one(name, task, spec, examples, steps, (warm, k, reps), tmp, precision)


def _bench_one(
    name: str,
    task: Any,
    spec: Any,
    examples: list[Any],
    steps: int,
    interleave: tuple[int, int, int],
    tmp: Path,
    precision: str,
) -> None:
    """One task at one precision: plugformer's Trainer and the plain loop, interleaved."""
    from plugformer.models.gpt import GPT
    from plugformer.training.common import seed_everything
    from plugformer.training.finetune import FinetuneModule, _RngState, _trainer
    from plugformer.training.finetune_data import loaders
    from plugformer.training.schedule import BudgetSchedule

    warm, k, reps = interleave
    bf16 = precision == "bf16-mixed"
    label = "bf16" if bf16 else "fp32"
    bs = spec.finetune.batch_size
    seed_everything(0)
    cfg = model_config(vocab_size=task.tokenizer.vocab_size)
    models = {}
    for who in ("plugformer", "plain"):
        # the plain loop attends with PyTorch's SDPA; plugformer with its `attention = "auto"`
        attention = "auto" if who == "plugformer" else "sdpa"
        backbone = GPT(cfg.model_copy(update={"attention": attention})).to(H.DEVICE)
        models[who] = (backbone, task.build_head(backbone).to(H.DEVICE))
    train_dl, _, _, _ = loaders(task, spec, examples, [])
    # The plain loop's i-th step gets the batch plugformer's i-th step gets: the loader's
    # epoch in its (seeded, length-grouped) order. Batches differ in length, so a few
    # batches cycled would time different work (it had been the first 8).
    batches = [
        {k2: v.to(H.DEVICE) if torch.is_tensor(v) else v for k2, v in b.items()} for b in train_dl
    ]
    cb = Interleave(
        warm,
        k,
        reps,
        1,  # "tokens" per step: the rows are steps/s
        {"plain": plain_step(task, *models["plain"], batches, spec.finetune.grad_clip, bf16)},
    )
    module = FinetuneModule(task, *models["plugformer"], spec, total_steps=steps)
    # The callbacks plugformer.finetune trains with (no validation data here: no _KeepBest).
    schedule = BudgetSchedule(int(spec.finetune.warmup_ratio * steps), steps, None, 0.0)
    callbacks = [schedule, _RngState(), cb]
    trainer = _trainer(spec, tmp / f"ft-{name}-{label}", callbacks, steps, None, "finetune")
    trainer.fit(module, train_dataloaders=train_dl)
    sync(H.DEVICE)
    for who in ("plugformer", "plain"):
        add_row(
            "finetune",
            f"{name} {who} {label}",
            "steps/s",
            cb.times[who],
            ref={"plain": "plain"} if who == "plugformer" else {},
            variant=who,
            setting=f"{name} {label}",
            note=f"batch {bs}, {precision}, the same {len(examples)} training examples' batches"
            if who == "plugformer"
            else "",
        )
