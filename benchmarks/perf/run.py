"""plugformer vs plain PyTorch vs Hugging Face, interleaved in one run.

    python benchmarks/perf/run.py [--quick] [--only train,generate,eval,data,startup] [--compile]

Every figure that is compared is measured in the same process, alternating the variants
(A, B, C, A, B, C, ...) so that load from other processes hits them alike; the table shows
the median and the min–max of the repetitions and the ratio of medians. One JSON line per
run is appended to ``benchmarks/perf/results/<date>.jsonl`` (hardware, versions, rows).

Rows (see README.md): ``train`` tokens/s of plugformer's Lightning pretraining path
(``PretrainModule`` + ``lightning.Trainer`` from ``training.build_trainer`` over a synthetic
token memmap) vs a plain PyTorch loop on the same ``GPT`` vs ``transformers``'
``LlamaForCausalLM`` of the same shape; ``generate`` new tokens/s of
``generation.generate`` vs ``transformers`` ``generate`` vs recomputation without a cache;
``eval`` examples/s of ``Predictor.score`` for installed task plugins; ``data`` tokens/s the
pretraining DataLoader delivers; ``startup`` seconds of ``plugformer --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROWS, add_row, append_result, hardware, now, summarize, sync, table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# The benchmark shape (the "small" preset): 4 layers, width 256, 4 heads, context 128.
SHAPE = {"n_layers": 4, "d_model": 256, "n_heads": 4, "max_seq_len": 128}
VOCAB = 8192
BATCH = 32


def model_config(**over: Any) -> Any:
    from plugformer.config import ModelConfig

    return ModelConfig(**{**SHAPE, "vocab_size": VOCAB, **over})


def mlp_hidden(cfg: Any) -> int:
    return int(64 * math.ceil(cfg.mlp_ratio * cfg.d_model * 2 / 3 / 64))


def hf_llama(cfg: Any) -> Any:
    """transformers' Llama with our shape: RMSNorm + SwiGLU + RoPE, no biases, tied embeddings."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hc = LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=mlp_hidden(cfg),
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        max_position_embeddings=cfg.max_seq_len,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
    )
    hc._attn_implementation = "sdpa"
    m = LlamaForCausalLM(hc)
    m.generation_config.pad_token_id = 0
    m.generation_config.eos_token_id = None
    m.generation_config.bos_token_id = None
    return m


def autocast(precision: str, device: str) -> contextlib.AbstractContextManager:
    if precision == "bf16-mixed":
        return torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


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
            "accelerator": DEVICE,
            "devices": 1,
        },
        out_dir=str(out),
    )


# --------------------------------------------------------------------------- peak / MFU


def matmul_peak(dtype: torch.dtype, n: int = 1024, seconds: float = 1.0) -> float:
    a = torch.randn(n, n, device=DEVICE).to(dtype)
    b = torch.randn(n, n, device=DEVICE).to(dtype)
    for _ in range(2):
        a @ b
    best, t_end = 0.0, now() + seconds
    while now() < t_end:
        sync(DEVICE)
        t = now()
        for _ in range(3):
            a @ b
        sync(DEVICE)
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
                sync(DEVICE)
                self.i += 1
                if self.i < self.warm:
                    return
                if self.i == self.warm:
                    self.warm_s = now() - self.t_start
                    with torch.enable_grad():
                        for step in self.others.values():
                            for _ in range(self.warm):
                                step()
                    sync(DEVICE)
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
                        sync(DEVICE)
                        self.times[name].append(self.k * self.tokens / (now() - t))
                if len(self.times["plugformer"]) >= self.reps:
                    trainer.should_stop = True
                self.t0 = now()

        return _Interleave(*args, **kwargs)


def plain_step_fn(
    model: torch.nn.Module, cfg: Any, precision: str, compile_: bool, grad_clip: float
) -> Callable[[], None]:
    """A nanoGPT-style loop on the same GPT: AdamW (foreach, same groups), clip, step."""
    from plugformer.training import param_groups

    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.95), foreach=True)
    gen = torch.Generator().manual_seed(1)

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = model.lm_logits(model(x))
        return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())

    fn = torch.compile(loss_fn) if compile_ else loss_fn

    def step() -> None:
        block = torch.randint(0, VOCAB, (BATCH, cfg.max_seq_len + 1), generator=gen).to(DEVICE)
        with autocast(precision, DEVICE):
            loss = fn(block[:, :-1], block[:, 1:])
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def hf_step_fn(
    model: torch.nn.Module, cfg: Any, precision: str, compile_: bool, grad_clip: float
) -> Callable[[], None]:
    from plugformer.training import param_groups

    opt = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.95), foreach=True)
    gen = torch.Generator().manual_seed(2)
    fwd = torch.compile(model) if compile_ else model

    def step() -> None:
        block = torch.randint(0, VOCAB, (BATCH, cfg.max_seq_len + 1), generator=gen).to(DEVICE)
        with autocast(precision, DEVICE):
            logits = fwd(input_ids=block[:, :-1], use_cache=False).logits
            loss = F.cross_entropy(logits.flatten(0, 1).float(), block[:, 1:].flatten())
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def bench_train(args: argparse.Namespace, tmp: Path) -> None:
    from plugformer.model import GPT
    from plugformer.objectives import CausalLM
    from plugformer.pretrain import PretrainData, PretrainModule
    from plugformer.training import build_trainer, seed_everything

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
            plain = GPT(cfg).to(DEVICE)
            hf = hf_llama(cfg).to(DEVICE)
            n_params = plain.num_params(non_embedding=False)
            cb = Interleave(
                warm,
                k,
                reps,
                tokens,
                {
                    "plain": plain_step_fn(plain, cfg, precision, compile_, config.optim.grad_clip),
                    "hf": hf_step_fn(hf, cfg, precision, compile_, config.optim.grad_clip),
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
    from plugformer.training import resolve_compile, resolve_precision

    precision = resolve_precision("auto", DEVICE)
    compile_ = resolve_compile("auto", 10_000, DEVICE)
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


# --------------------------------------------------------------------------- generate


def bench_generate(args: argparse.Namespace, tmp: Path) -> None:
    from plugformer.generation import SamplingConfig, generate
    from plugformer.model import GPT

    new = 200
    prompt_len = 16
    # 200 new tokens do not fit the 128-token training context: same layers/width/heads, 256 positions.
    cfg = model_config(max_seq_len=256)
    torch.manual_seed(0)
    ours = GPT(cfg).to(DEVICE).eval()
    hf = hf_llama(cfg).to(DEVICE).eval()
    reps = 2 if args.quick else 3
    scfg = SamplingConfig(max_new_tokens=new)
    for batch in (1, 8):
        prompts = torch.randint(
            1, VOCAB, (batch, prompt_len), generator=torch.Generator().manual_seed(batch)
        ).tolist()
        hf_ids = torch.tensor(prompts, device=DEVICE)

        def run_ours() -> int:
            out = generate(ours, prompts, scfg, eos_id=None)
            return sum(len(o) for o in out)

        def run_hf() -> int:
            with torch.inference_mode():
                out = hf.generate(
                    hf_ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, use_cache=True
                )
            return int((out.shape[1] - prompt_len) * batch)

        def run_recompute() -> int:
            out = generate(ours, prompts, scfg, eos_id=None, use_cache=False)
            return sum(len(o) for o in out)

        variants = {"plugformer": run_ours, "hf": run_hf, "recompute": run_recompute}
        run_ours(), run_hf()  # warm-up (recompute is slow enough to need none)
        times: dict[str, list[float]] = {n: [] for n in variants}
        for _ in range(reps):
            for name, fn in variants.items():
                sync(DEVICE)
                t = now()
                n = fn()
                sync(DEVICE)
                times[name].append(n / (now() - t))
        for name, vals in times.items():
            add_row(
                "generate",
                f"{name} b{batch}",
                "new tok/s",
                vals,
                ref={"hf": "hf", "recompute": "recompute"} if name == "plugformer" else {},
                variant=name,
                setting=f"b{batch}",
            )


# --------------------------------------------------------------------------- eval


def eval_fixture(name: str, n: int) -> tuple[Any, list[Any]] | str:
    """(task, examples): ``n`` real test examples of the task's smoke spec (tasks/<task>/smoke.toml)
    from the dataset cache, with a BPE trained on them; or why the task is skipped."""
    from plugformer.data.cache import load_split
    from plugformer.finetune import build_task
    from plugformer.suites import load_spec
    from plugformer.testing import tokenizer_for

    spec_path = ROOT / "tasks" / name / "smoke.toml"
    if not spec_path.is_file():
        return f"no {spec_path.relative_to(ROOT)}"
    spec = load_spec(spec_path, {}, 0)
    try:
        rows = load_split(spec.data.dataset, "test")[:n]
    except Exception as exc:  # not cached and no network: say so, measure the others
        return f"dataset {spec.data.dataset!r} unavailable ({type(exc).__name__})"
    task = build_task(name, spec.options, tokenizer_for(rows, vocab_size=2000))
    examples = [task.parse_example(r) for r in rows]
    task.prepare(examples)
    return task, examples


def bench_eval(args: argparse.Namespace, tmp: Path) -> None:
    """examples/s of ``Predictor.score`` (encode, collate, forward, decode, metrics) on real test
    examples, against the bare forward pass on pre-collated batches. For generative tasks
    score decodes (many forwards per example), so its ratio is decoding's cost, not overhead."""
    from plugformer import plugins
    from plugformer.finetune import Predictor, eval_collate
    from plugformer.model import GPT

    names = plugins.tasks().names()
    if not names:
        ROWS.append({"group": "eval", "name": "skipped", "note": "no task plugins installed"})
        return
    n, bs = (64, 32) if args.quick else (128, 32)
    for name in names:
        fixture = eval_fixture(name, n)
        if isinstance(fixture, str):
            ROWS.append({"group": "eval", "name": f"{name} skipped", "note": fixture})
            continue
        task, examples = fixture
        torch.manual_seed(0)
        backbone = GPT(model_config(vocab_size=task.tokenizer.vocab_size)).to(DEVICE)
        head = task.build_head(backbone).to(DEVICE)
        pred = Predictor(task, backbone, head, {})
        collate = eval_collate(task)
        batches = [collate(examples[i : i + bs]) for i in range(0, len(examples), bs)]

        @torch.inference_mode()
        def plain() -> None:  # the same forward on pre-collated tensors: no encode/decode/metrics
            for b in batches:
                task.forward(backbone, head, b)
            sync(DEVICE)

        def ours() -> None:
            pred.score(examples, batch_size=bs)
            sync(DEVICE)

        times: dict[str, list[float]] = {"plugformer": [], "forward only": []}
        ours(), plain()
        for _ in range(2 if args.quick else 4):
            for label, fn in (("plugformer", ours), ("forward only", plain)):
                t = now()
                fn()
                times[label].append(len(examples) / (now() - t))
        for label, vals in times.items():
            add_row(
                "eval",
                f"{name} {label}",
                "ex/s",
                vals,
                ref={"forward only": "forward only"} if label == "plugformer" else {},
                variant=label,
                setting=name,
                note=f"{len(examples)} test examples of {task.name}"
                if label == "plugformer"
                else "",
            )


# --------------------------------------------------------------------------- data


def bench_data(args: argparse.Namespace, tmp: Path) -> None:
    from plugformer.pretrain import PretrainData

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


# --------------------------------------------------------------------------- startup


def bench_startup(args: argparse.Namespace, tmp: Path) -> None:
    exe = Path(sys.executable).with_name("plugformer")
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "plugformer.cli"]
    cmds = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "plugformer --help": [*cli, "--help"],
        "plugformer plugins": [*cli, "plugins"],
        "import torch": [sys.executable, "-c", "import torch"],
    }
    n = 3 if args.quick else 7
    times: dict[str, list[float]] = {c: [] for c in cmds}
    env = {**os.environ, "PLUGFORMER_PROGRESS": "0"}
    for _ in range(n):
        for name, cmd in cmds.items():
            t = now()
            subprocess.run(
                cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False
            )
            times[name].append(now() - t)
    for name, vals in times.items():
        ROWS.append(
            {
                "group": "startup",
                "name": name,
                "unit": "s",
                "best": min(vals),
                **summarize(vals),
                "values": vals,
            }
        )


BENCHES = {
    "train": bench_train,
    "generate": bench_generate,
    "eval": bench_eval,
    "data": bench_data,
    "startup": bench_startup,
}
DEVICE = "cpu"


def main(argv: list[str] | None = None) -> int:
    global DEVICE
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="fewer repetitions (a smoke run, ~5 min on 2 cores)"
    )
    p.add_argument(
        "--only", default=",".join(BENCHES), help=f"comma-separated subset of {','.join(BENCHES)}"
    )
    p.add_argument(
        "--no-compile",
        dest="compile",
        action="store_false",
        help="skip the torch.compile variants (they take ~30 s each to warm up)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)"
    )
    p.add_argument("--note", default="", help="free text stored with the JSON line (what changed)")
    p.add_argument("--no-save", action="store_true", help="do not append to results/")
    args = p.parse_args(argv)
    DEVICE = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ.setdefault("PLUGFORMER_PROGRESS", "0")
    import logging
    import warnings

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(BENCHES)
    if unknown:
        p.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {list(BENCHES)}")
    hw = hardware(DEVICE)
    t_start = now()
    tmp = Path(tempfile.mkdtemp(prefix="plugformer-perf-"))
    try:
        for name in BENCHES:  # a fixed order: data compares against train
            if name in only:
                t = now()
                BENCHES[name](args, tmp)
                print(f"[{name}: {now() - t:.0f}s]", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(table())
    hw["loadavg_end"] = os.getloadavg()
    if not args.no_save:
        out = append_result("run", args, hardware=hw, seconds=round(now() - t_start, 1), rows=ROWS)
        print(f"appended to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
