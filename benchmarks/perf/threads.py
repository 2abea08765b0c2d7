"""Thread settings on a quiet and on a contended CPU: intra-op threads × OMP_WAIT_POLICY.

    python benchmarks/perf/threads.py [--rounds 2] [--seconds 6]

Each setting runs in a fresh subprocess (OpenMP reads ``OMP_WAIT_POLICY`` once, at start-up)
and measures two workloads of the benchmark shape: plugformer's bf16 pretraining step
(fused loss, fused AdamW; eager, so no compile time) in tokens/s, and batch-1 greedy KV-cache
decoding in new tokens/s. "Contended" runs them beside two busy Python processes (one per
core of a 2-core machine), the situation of a laptop doing something else. Settings
alternate within each round; the table shows medians over rounds. One JSON line is appended
to ``results/<date>.jsonl`` like ``run.py``'s.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from harness import append_result  # noqa: E402

WORKER = r"""
import sys, time, json, torch
sys.path.insert(0, sys.argv[1])
from twins import model_config, BATCH, VOCAB
from plugformer.inference.generation import SamplingConfig, generate
from plugformer.training.losses import linear_cross_entropy
from plugformer.models.gpt import GPT
from plugformer.training.common import adamw, param_groups
threads, seconds = int(sys.argv[2]), float(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
cfg = model_config()
m = GPT(cfg)
opt = adamw(param_groups(m, 0.1), lr=1e-3)
x = torch.randint(0, VOCAB, (BATCH, cfg.max_seq_len + 1))
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(m(x[:, :-1]), m.lm_head.weight, x[:, 1:])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0, foreach=True)
    opt.step()
    opt.zero_grad(set_to_none=True)
def rate(fn, units):
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn(); n += 1
    return n * units / (time.perf_counter() - t0)
out = {"train tok/s": rate(step, BATCH * cfg.max_seq_len)}
g = GPT(model_config(max_seq_len=256)).eval()
prompt = [torch.randint(1, VOCAB, (16,)).tolist()]
out["decode b1 tok/s"] = rate(lambda: generate(g, prompt, SamplingConfig(max_new_tokens=100), None), 100)
print(json.dumps(out))
"""


def run_setting(threads: int, policy: str | None, contended: bool, seconds: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    burners = []
    if contended:
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        out = subprocess.run(
            [sys.executable, "-c", WORKER, str(HERE), str(threads), str(seconds)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        for p in burners:
            p.kill()
            p.wait()
    return json.loads(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=6.0, help="per workload per setting")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    settings = list(itertools.product((False, True), (2, 1), (None, "PASSIVE")))
    values: dict[tuple, dict[str, list[float]]] = {s: {} for s in settings}
    for r in range(args.rounds):
        for s in settings:
            contended, threads, policy = s
            res = run_setting(threads, policy, contended, args.seconds)
            for k, v in res.items():
                values[s].setdefault(k, []).append(v)
            print(f"round {r + 1}: {s} {res}", file=sys.stderr, flush=True)
    rows = []
    print(
        f"{'machine':10} {'threads':>7} {'OMP_WAIT_POLICY':16} {'train tok/s':>12} {'decode b1 tok/s':>16}"
    )
    for s in settings:
        contended, threads, policy = s
        med = {k: statistics.median(v) for k, v in values[s].items()}
        rows.append(
            {
                "contended": contended,
                "threads": threads,
                "omp_wait_policy": policy or "(unset)",
                **med,
                "values": values[s],
            }
        )
        print(
            f"{'contended' if contended else 'quiet':10} {threads:>7} {policy or '(unset)':16} "
            f"{med['train tok/s']:>12,.0f} {med['decode b1 tok/s']:>16,.0f}"
        )
    if not args.no_save:
        out = append_result("threads", args, cpus=os.cpu_count(), rows=rows)
        print(f"appended to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
