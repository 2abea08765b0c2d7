"""plugformer vs plain PyTorch vs Hugging Face, interleaved in one run.

    python benchmarks/perf/run.py [--quick] [--only train,generate,eval,data,startup] [--no-compile]

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
pretraining DataLoader delivers; ``startup`` seconds of ``plugformer --help``. The training
and data benchmarks live in ``train.py``, the shape and the ``transformers`` twin in ``twins.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as H
from finetune import bench_finetune
from harness import (
    ROWS,
    add_row,
    append_result,
    hardware,
    now,
    summarize,
    sync,
    table,
    task_fixture,
)
from train import bench_data, bench_reference, bench_train
from twins import VOCAB, hf_twin, model_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# --------------------------------------------------------------------------- generate


def bench_generate(args: argparse.Namespace, tmp: Path) -> None:
    import copy
    import warnings

    from plugformer.inference.generation import SamplingConfig, generate
    from plugformer.inference.quantize import autocast, prepare
    from plugformer.models.gpt import GPT

    new = 200
    prompt_len = 16
    # 200 new tokens do not fit the 128-token training context: same layers/width/heads, 256 positions.
    cfg = model_config(max_seq_len=256)
    torch.manual_seed(0)
    ours = GPT(cfg).to(H.DEVICE).eval()
    hf = hf_twin(ours).to(H.DEVICE).eval()
    # The inference precisions of plugformer.inference.quantize, applied as `plugformer.load(...,
    # precision=)` does (fp32: linear weights packed for oneDNN, SwiGLU's gate and up fused; int8:
    # the same fusion, then torch.ao's kernels called directly). transformers gets the stock
    # recipes: torch.ao's dynamic quantisation (the same qint8 per-channel weights and kernel,
    # through torch.ao's own modules) and the bf16 cast.
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's deprecation notices
        warnings.simplefilter("ignore")
        hf_int8 = quantize_dynamic(
            copy.deepcopy(hf), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )
    # The strongest fp32 reference: the twin with plugformer's own fp32 layer layout
    # (oneDNN-packed weights, plugformer.inference.layout.fast_linears), as a user of
    # transformers could set up; what plugformer gains beyond it is its decoding loop.
    from plugformer.inference.layout import fast_linears

    hf_packed = fast_linears(copy.deepcopy(hf))
    models = {
        "fp32": (prepare(copy.deepcopy(ours), "fp32"), hf),
        "int8": (prepare(copy.deepcopy(ours), "int8"), hf_int8),
        "bf16": (prepare(copy.deepcopy(ours), "bf16"), copy.deepcopy(hf).to(torch.bfloat16)),
    }
    precisions = [p for p in args.gen_precisions.split(",") if p]
    reps = 2 if args.quick else 3
    scfg = SamplingConfig(max_new_tokens=new)
    for batch in (1, 8):
        prompts = torch.randint(
            1, VOCAB, (batch, prompt_len), generator=torch.Generator().manual_seed(batch)
        ).tolist()
        hf_ids = torch.tensor(prompts, device=H.DEVICE)

        def run_ours(model: Any, precision: str, use_cache: bool = True) -> int:
            with torch.inference_mode(), autocast(precision):
                out = generate(model, prompts, scfg, eos_id=None, use_cache=use_cache)
            return sum(len(o) for o in out)

        def run_hf(model: Any) -> int:
            with torch.inference_mode():
                out = model.generate(
                    hf_ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, use_cache=True
                )
            return int((out.shape[1] - prompt_len) * batch)

        variants: dict[str, Any] = {}
        for prec in precisions:
            mine, theirs = models[prec]
            suffix = "" if prec == "fp32" else f" {prec}"
            variants[f"plugformer{suffix}"] = lambda m=mine, p=prec: run_ours(m, p)
            variants[f"hf{suffix}"] = lambda m=theirs: run_hf(m)
            if prec == "fp32":
                variants["hf packed"] = lambda m=hf_packed: run_hf(m)
        variants["recompute"] = lambda: run_ours(models["fp32"][0], "fp32", use_cache=False)
        for name, fn in variants.items():
            if name != "recompute":
                fn()  # warm-up (recompute is slow enough to need none)
        times: dict[str, list[float]] = {n: [] for n in variants}
        for _ in range(reps):
            for name, fn in variants.items():
                sync(H.DEVICE)
                t = now()
                n = fn()
                sync(H.DEVICE)
                times[name].append(n / (now() - t))
        for name, vals in times.items():
            ref: dict[str, str] = {}
            if name.startswith("plugformer"):
                # hf at every precision measured (the best one is the fair reference), and
                # plugformer's own fp32 for the low-precision rows.
                ref = {
                    ("hf" if p == "fp32" else f"hf {p}"): ("hf" if p == "fp32" else f"hf {p}")
                    for p in precisions
                }
                if "hf packed" in times:
                    ref["hf packed"] = "hf packed"
                if name != "plugformer":
                    ref["plugformer fp32"] = "plugformer"
                else:
                    ref["recompute"] = "recompute"
            add_row(
                "generate",
                f"{name} b{batch}",
                "new tok/s",
                vals,
                ref=ref,
                variant=name,
                setting=f"b{batch}",
            )


# --------------------------------------------------------------------------- eval


def bench_eval(args: argparse.Namespace, tmp: Path) -> None:
    """examples/s of ``Predictor.score`` (encode, collate, forward, decode, metrics) on real test
    examples, against the bare forward pass on pre-collated batches. For generative tasks
    score decodes (many forwards per example), so its ratio is decoding's cost, not overhead."""
    from plugformer import plugins
    from plugformer.models.gpt import GPT
    from plugformer.training.finetune import Predictor, eval_collate

    names = plugins.tasks().names()
    if not names:
        ROWS.append({"group": "eval", "name": "skipped", "note": "no task plugins installed"})
        return
    n, bs = (64, 32) if args.quick else (128, 32)
    for name in names:
        fixture = task_fixture(name, n, "test")
        if isinstance(fixture, str):
            ROWS.append({"group": "eval", "name": f"{name} skipped", "note": fixture})
            continue
        task, _, examples = fixture
        torch.manual_seed(0)
        backbone = GPT(model_config(vocab_size=task.tokenizer.vocab_size)).to(H.DEVICE)
        head = task.build_head(backbone).to(H.DEVICE)
        pred = Predictor(task, backbone, head, {})
        collate = eval_collate(task)
        batches = [collate(examples[i : i + bs]) for i in range(0, len(examples), bs)]

        @torch.inference_mode()
        def plain() -> None:  # the same forward on pre-collated tensors: no encode/decode/metrics
            for b in batches:
                task.forward(backbone, head, b)
            sync(H.DEVICE)

        def ours() -> None:
            pred.score(examples, batch_size=bs)
            sync(H.DEVICE)

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


# --------------------------------------------------------------------------- startup


def bench_startup(args: argparse.Namespace, tmp: Path) -> None:
    exe = Path(sys.executable).with_name("plugformer")
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "plugformer"]
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
    "reference": bench_reference,
    "train": bench_train,
    "generate": bench_generate,
    "finetune": bench_finetune,
    "eval": bench_eval,
    "data": bench_data,
    "startup": bench_startup,
}


def main(argv: list[str] | None = None) -> int:
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
    p.add_argument(
        "--finetune-tasks",
        default="sentiment,qa",
        help="tasks of the finetune group (their <task>-smoke specs' cached training data)",
    )
    p.add_argument(
        "--gen-precisions",
        default="fp32,int8,bf16",
        help="inference precisions of the generate group (plugformer.inference.quantize), comma-separated",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)"
    )
    p.add_argument("--note", default="", help="free text stored with the JSON line (what changed)")
    p.add_argument("--no-save", action="store_true", help="do not append to results/")
    args = p.parse_args(argv)
    H.DEVICE = args.device
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
    hw = hardware(H.DEVICE)
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
