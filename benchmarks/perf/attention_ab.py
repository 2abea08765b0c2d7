"""A/B of the attention kernels for bf16 training on a CPU, interleaved in one process.

Two copies of the same model (same init, same batches) train side by side, in alternating
blocks of steps: one with ``ModelConfig.attention = "auto"`` (the explicit product, where it
pays), one with SDPA under the kernel named by ``--against`` (``flash``: PyTorch's default on
CPU; ``math``: the kernel pretraining used before). Prints ms per step and the ratio.

    python benchmarks/perf/attention_ab.py --shape quickstart --against math
    python benchmarks/perf/attention_ab.py --shape benchmark --against flash --compile
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from plugformer.config import ModelConfig
from plugformer.models.gpt import GPT
from plugformer.training.losses import linear_cross_entropy

SHAPES = {  # (model, batch): the quickstart's backbone and benchmarks/perf's
    "quickstart": ({"n_layers": 4, "d_model": 64, "n_heads": 2}, 16),
    "benchmark": ({"n_layers": 4, "d_model": 256, "n_heads": 4}, 32),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="quickstart")
    ap.add_argument("--against", choices=["flash", "math"], default="math")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    shape, batch = SHAPES[args.shape]
    kernel = SDPBackend.MATH if args.against == "math" else SDPBackend.FLASH_ATTENTION
    arms = {}
    for name, attention in (("sdpa", "sdpa"), ("auto", "auto")):
        torch.manual_seed(0)
        model = GPT(ModelConfig(**shape, max_seq_len=128, vocab_size=8192, attention=attention))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)

        def loss_of(x, y, m=model):
            return linear_cross_entropy(m(x), m.lm_head.weight, y)

        fn = torch.compile(loss_of) if args.compile else loss_of
        ctx = (lambda: sdpa_kernel(kernel)) if name == "sdpa" else contextlib.nullcontext
        arms[name] = (model, opt, fn, ctx)
    data = torch.randint(0, 8192, (args.steps * 2, batch, 129))

    def step(name: str, block: torch.Tensor) -> None:
        model, opt, fn, ctx = arms[name]
        with ctx(), torch.autocast("cpu", dtype=torch.bfloat16):
            loss = fn(block[:, :-1], block[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for name in arms:  # warm-up (and compilation)
        for i in range(3):
            step(name, data[i])
    times: dict[str, list[float]] = {name: [] for name in arms}
    for r in range(args.rounds):
        for name in ("sdpa", "auto") if r % 2 == 0 else ("auto", "sdpa"):
            t0 = time.perf_counter()
            for i in range(args.steps):
                step(name, data[(r * args.steps + i) % len(data)])
            times[name].append((time.perf_counter() - t0) / args.steps * 1000)
    label = f"{args.shape}{' compiled' if args.compile else ''}"
    for name, values in times.items():
        arm = f"sdpa ({args.against})" if name == "sdpa" else "auto (explicit)"
        print(f"{label:22} {arm:16} median {statistics.median(values):7.1f} ms/step")
    ratio = statistics.median(times["sdpa"]) / statistics.median(times["auto"])
    print(f"{label:22} auto is {ratio:.2f}x the {args.against} kernel's speed")


if __name__ == "__main__":
    main()
