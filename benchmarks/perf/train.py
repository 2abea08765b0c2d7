"""Pretraining benchmarks: the training step (plugformer's Lightning path vs a plain loop vs
the ``transformers`` twin, fp32/bf16, eager/compiled, MFU) and the DataLoader's throughput."""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness as H
import numpy as np
import torch
import torch.nn.functional as F
from harness import ROWS, add_row, now, sync
from twins import BATCH, SHAPE, VOCAB, autocast, hf_twin

# --------------------------------------------------------------------------- fixtures


def token_cache(tmp: Path, n_train: int = 2_000_000, n_val: int = 50_000) -> Any:
    """A synthetic TokenCache (uint16 memmaps), as ``build_token_cache`` would leave it."""
    from plugformer.data.corpus import TokenCache

    rng = np.random.default_rng(0)
    d = tmp / "tokens"
    d.mkdir(parents=True, exist_ok=True)
    rng.integers(0, VOCAB, n_train, dtype=np.uint16).tofile(d / "train.bin")
    rng.integers(0, VOCAB, n_val, dtype=np.uint16).tofile(d / "val.bin")
    meta = {"dtype": "uint16", "train_tokens": n_train, "val_tokens": n_val, "val_bytes": 4 * n_val}
    (d / "meta.json").write_text(json.dumps(meta))
    return TokenCache(d, meta)


def pretrain_config(precision: str, compile_: bool, max_steps: int, out: Path) -> Any:
    from plugformer.config import PretrainConfig

    return PretrainConfig(
        model={**SHAPE, "vocab_size": VOCAB},
        trainer={
            "precision": precision,
            "compile": compile_,
            "max_steps": max_steps,
            "batch_size": BATCH,
            "progress": False,
            "accelerator": H.DEVICE,
            "devices": 1,
        },
        out_dir=str(out),
    )


# --------------------------------------------------------------------------- peak / MFU


def matmul_peak(dtype: torch.dtype, n: int = 1024, seconds: float = 1.0) -> float:
    a = torch.randn(n, n, device=H.DEVICE).to(dtype)
    b = torch.randn(n, n, device=H.DEVICE).to(dtype)
    for _ in range(2):
        a @ b
    best, t_end = 0.0, now() + seconds
    while now() < t_end:
        sync(H.DEVICE)
        t = now()
        for _ in range(3):
            a @ b
        sync(H.DEVICE)
        best = max(best, 3 * 2 * n**3 / (now() - t))
    return best


def flops_per_token(cfg: Any, n_params: int) -> float:
    """nanoGPT/PaLM estimate: 6N (forward+backward of the weights) + attention 12·L·T·d."""
    return 6 * n_params + 12 * cfg.n_layers * cfg.max_seq_len * cfg.d_model


# --------------------------------------------------------------------------- train


class Interleave:
    """Lightning callback: after warm-up, every ``k`` of plugformer's steps run ``k`` steps of each
    reference and time both; stop the Trainer after ``reps`` rounds.

    plugformer's time runs from the end of one round's references to its k-th
    ``on_train_batch_end``: it covers the whole loop (DataLoader, training_step, backward,
    clipping, optimizer, scheduler, logging), not only ``training_step``.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # build a Callback subclass lazily
        import lightning as L

        class _Interleave(L.Callback):
            def __init__(
                self,
                warm: int,
                k: int,
                reps: int,
                tokens: int,
                others: dict[str, Callable[[], None]],
            ):
                self.warm, self.k, self.reps, self.tokens, self.others = (
                    warm,
                    k,
                    reps,
                    tokens,
                    others,
                )
                self.times: dict[str, list[float]] = {"plugformer": [], **{n: [] for n in others}}
                self.i, self.t0, self.warm_s = 0, 0.0, 0.0
                self.t_start = now()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                sync(H.DEVICE)
                self.i += 1
                if self.i < self.warm:
                    return
                if self.i == self.warm:
                    self.warm_s = now() - self.t_start
                    with torch.enable_grad():
                        for step in self.others.values():
                            for _ in range(self.warm):
                                step()
                    sync(H.DEVICE)
                    self.t0 = now()
                    return
                if (self.i - self.warm) % self.k:
                    return
                self.times["plugformer"].append(self.k * self.tokens / (now() - self.t0))
                with torch.enable_grad():
                    for name, step in self.others.items():
                        t = now()
                        for _ in range(self.k):
                            step()
                        sync(H.DEVICE)
                        self.times[name].append(self.k * self.tokens / (now() - t))
                if len(self.times["plugformer"]) >= self.reps:
                    trainer.should_stop = True
                self.t0 = now()

        return _Interleave(*args, **kwargs)


def gpt_logits(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: model.lm_logits(model(x))


def hf_logits(model: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: model(input_ids=x, use_cache=False).logits


def reference_loss(
    logits_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """nanoGPT's loss: ``F.cross_entropy`` on the (B·T, V) logits (cast to fp32 under autocast)."""
    logits = logits_fn(x)  # (B, T, V)
    if logits.dtype != torch.float32:
        logits = logits.float()
    return F.cross_entropy(logits.flatten(0, 1), y.flatten())


def reference_step(
    model: torch.nn.Module,
    logits_fn: Callable[[torch.Tensor], torch.Tensor],
    seq_len: int,
    precision: str,
    compile_: bool,
    grad_clip: float,
    seed: int,
    fused: bool = True,
) -> Callable[[], None]:
    """A nanoGPT-style step of a reference: :func:`reference_loss` on ``logits_fn(x)``
    (compiled with the forward when ``compile_``), AdamW (plugformer's groups; the fused
    kernel, as plugformer uses, unless ``fused=False``: then foreach), clip, step,
    ``zero_grad(set_to_none=True)``. Batches are drawn ahead, off the clock (plugformer's
    DataLoader is timed, but it delivers >1000× what training consumes)."""
    from plugformer.training.common import param_groups

    groups = param_groups(model, 0.1)
    kind = {"fused": True} if fused else {"foreach": True}
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), **kind)
    gen = torch.Generator().manual_seed(seed)
    blocks = [
        torch.randint(0, VOCAB, (BATCH, seq_len + 1), generator=gen).to(H.DEVICE) for _ in range(8)
    ]
    fn = torch.compile(reference_loss, fullgraph=False) if compile_ else reference_loss
    params = [p for p in model.parameters() if p.requires_grad]
    i = 0

    def step() -> None:
        nonlocal i
        block = blocks[i % len(blocks)]
        i += 1
        with autocast(precision, H.DEVICE):
            loss = fn(logits_fn, block[:, :-1], block[:, 1:])
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def minimal_step(model: torch.nn.Module, seq_len: int, seed: int) -> Callable[[], None]:
    """An independent, straightforward nanoGPT loop (what the issue compared against): plain
    ``torch.optim.AdamW`` defaults (weight decay on every parameter), ``F.cross_entropy`` on
    the logits, clip 1.0, ``zero_grad(set_to_none=True)``; nothing of plugformer but the ``GPT``."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(seed)
    blocks = [torch.randint(0, VOCAB, (BATCH, seq_len + 1), generator=gen) for _ in range(8)]
    i = 0

    def step() -> None:
        nonlocal i
        b = blocks[i % len(blocks)].to(H.DEVICE)
        i += 1
        logits = model.lm_logits(model(b[:, :-1]))
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), b[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def bench_reference(args: argparse.Namespace, tmp: Path) -> None:
    """The harness's plain reference step against an independent minimal loop, outside
    Lightning, interleaved (fp32 eager): the reference is only fair if it is not the slower."""
    from twins import model_config

    from plugformer.models.gpt import GPT
    from plugformer.training.common import seed_everything

    seed_everything(0)
    cfg = model_config()
    tokens = BATCH * SHAPE["max_seq_len"]
    models = {
        n: GPT(cfg).to(H.DEVICE) for n in ("harness plain", "harness plain foreach", "minimal")
    }
    steps = {
        "harness plain": reference_step(
            models["harness plain"],
            gpt_logits(models["harness plain"]),
            cfg.max_seq_len,
            "32-true",
            False,
            1.0,
            seed=1,
        ),
        "harness plain foreach": reference_step(
            models["harness plain foreach"],
            gpt_logits(models["harness plain foreach"]),
            cfg.max_seq_len,
            "32-true",
            False,
            1.0,
            seed=1,
            fused=False,
        ),
        "minimal": minimal_step(models["minimal"], cfg.max_seq_len, seed=1),
    }
    k, reps = (2, 3) if args.quick else (3, 5)
    for step in steps.values():
        step()
        step()
    times: dict[str, list[float]] = {n: [] for n in steps}
    for _ in range(reps):
        for name, step in steps.items():
            sync(H.DEVICE)
            t = now()
            for _ in range(k):
                step()
            sync(H.DEVICE)
            times[name].append(k * tokens / (now() - t))
    for name, vals in times.items():
        add_row(
            "reference",
            f"{name} fp32",
            "tok/s",
            vals,
            ref={"minimal": "minimal"} if name != "minimal" else {},
            variant=name,
            setting="fp32",
        )


def bench_train(args: argparse.Namespace, tmp: Path) -> None:
    from plugformer.models.gpt import GPT
    from plugformer.training.common import build_trainer, seed_everything
    from plugformer.training.objectives import CausalLM
    from plugformer.training.pretrain import PretrainData, PretrainModule

    cache = token_cache(tmp)
    warm, k, reps = (2, 2, 3) if args.quick else (3, 4, 5)
    tokens = BATCH * SHAPE["max_seq_len"]
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    ROWS.append(
        {
            "group": "peak",
            "name": "matmul 1024³ fp32",
            "unit": "GFLOP/s",
            "median": peaks["fp32"] / 1e9,
        }
    )
    ROWS.append(
        {
            "group": "peak",
            "name": "matmul 1024³ bf16",
            "unit": "GFLOP/s",
            "median": peaks["bf16"] / 1e9,
        }
    )
    compiles = [False, True] if args.compile else [False]
    for compile_ in compiles:
        for precision in ("32-true", "bf16-mixed"):
            label = f"{'bf16' if precision == 'bf16-mixed' else 'fp32'}{' compiled' if compile_ else ''}"
            seed_everything(0)
            config = pretrain_config(precision, compile_, warm + k * reps + 5, tmp / f"run-{label}")
            module = PretrainModule(config, CausalLM(), 0, 4.0)
            data = PretrainData(cache, config)
            cfg = config.model
            # The plain loop attends with PyTorch's SDPA, as nanoGPT does; `attention = "auto"`
            # (the explicit product where it pays) is plugformer's own choice.
            plain = GPT(cfg.model_copy(update={"attention": "sdpa"})).to(H.DEVICE)
            hf = hf_twin(plain).to(H.DEVICE)
            n_params = plain.num_params(non_embedding=False)
            step_args = (cfg.max_seq_len, precision, compile_, config.optim.grad_clip)
            cb = Interleave(
                warm,
                k,
                reps,
                tokens,
                {
                    "plain": reference_step(plain, gpt_logits(plain), *step_args, seed=1),
                    "hf": reference_step(hf, hf_logits(hf), *step_args, seed=2),
                },
            )
            trainer = build_trainer(
                config.trainer,
                tmp / f"run-{label}",
                [cb],
                limit_val_batches=0,
                grad_clip=config.optim.grad_clip,
            )
            trainer.fit(module, datamodule=data)
            peak = peaks["bf16" if precision == "bf16-mixed" else "fp32"]
            fpt = flops_per_token(cfg, n_params)
            hf_params = sum(p.numel() for p in hf.parameters())
            for name in ("plugformer", "plain", "hf"):
                vals = cb.times[name]
                mfu = (
                    statistics.median(vals)
                    * (fpt if name != "hf" else flops_per_token(cfg, hf_params))
                    / peak
                )
                add_row(
                    "train",
                    f"{name} {label}",
                    "tok/s",
                    vals,
                    ref={"plain": "plain", "hf": "hf"}
                    if name == "plugformer"
                    else {"plain": "plain"}
                    if name == "hf"
                    else {},
                    variant=name,
                    setting=label,
                    mfu=mfu,
                    warmup_s=cb.warm_s if name == "plugformer" else None,
                    n_params=n_params if name != "hf" else hf_params,
                )
            del module, plain, hf, trainer
    default_row(peaks, fpt)


def default_row(peaks: dict[str, float], fpt: float) -> None:
    """plugformer's default settings (``precision``/``compile`` = auto on a long run) against
    the plain loop's eager fp32, with MFU against the bf16 matmul peak."""
    from plugformer.training.common import resolve_compile, resolve_precision

    precision = resolve_precision("auto", H.DEVICE)
    compile_ = resolve_compile("auto", 10_000, H.DEVICE)
    label = f"{'bf16' if precision == 'bf16-mixed' else 'fp32'}{' compiled' if compile_ else ''}"
    rows = {r["name"]: r for r in ROWS if r["group"] == "train"}
    ours, base = rows.get(f"plugformer {label}"), rows.get("plain fp32")
    if ours is None or base is None:
        ROWS.append(
            {
                "group": "train",
                "name": "defaults skipped",
                "note": f"defaults are {label}: run without --no-compile to measure them",
            }
        )
        return
    ROWS.append(
        {
            "group": "train",
            "name": f"plugformer defaults ({label})",
            "unit": "tok/s",
            **{k: ours[k] for k in ("median", "min", "max", "n", "values")},
            "ref_value": {"plain fp32 eager": base["median"]},
            "mfu_bf16_peak": ours["median"] * fpt / peaks["bf16"],
            "note": f"MFU {100 * ours['median'] * fpt / peaks['bf16']:.1f}% of the bf16 peak",
        }
    )


# --------------------------------------------------------------------------- data


def bench_data(args: argparse.Namespace, tmp: Path) -> None:
    from plugformer.training.pretrain import PretrainData

    cache = token_cache(tmp / "data")
    config = pretrain_config("32-true", False, 10, tmp / "data-run")
    loader = PretrainData(cache, config).train_dataloader()
    n_batches = 50 if args.quick else 200
    vals = []
    for _ in range(3):
        it = iter(loader)
        next(it)
        t = now()
        for _ in range(n_batches):
            next(it)
        vals.append(n_batches * BATCH * SHAPE["max_seq_len"] / (now() - t))
    train = [r for r in ROWS if r["group"] == "train" and r["name"] == "plugformer fp32"]
    consume = train[0]["median"] if train else None
    add_row(
        "data",
        "DataLoader (num_workers=0)",
        "tok/s",
        vals,
        ref_value={"training fp32": consume} if consume else {},
        variant="plugformer",
        setting="loader",
    )
