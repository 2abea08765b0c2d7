"""Decoder-only against encoder–decoder on bible-en-es at equal training minutes (issue 18).

1. Pretrain the ``decoder`` config (native GPT, causal LM) and the ``encdec`` config
   (encoder–decoder, denoising), each for ``--minutes`` of wall-clock budget, side by side in
   two processes of one torch thread each, so both see the same machine (on a busy one too),
   on news text with 30% Bible pairs mixed in.
2. Run the ``families`` suite: bible-en-es fine-tuned for the spec's minutes from each, scored
   on the spec's test verses (500) with sacrebleu's BLEU and chrF, beside the baselines.
3. Measure greedy decoding speed of both pretrained backbones on the same 96 test prompts
   (``source <sep>``), 40 new tokens each without an end-of-sequence stop, batches of 1 and 32,
   fp32, best of three.

Usage::

    .venv/bin/python benchmarks/families_compare.py --minutes 3 --out runs/families-compare

Prints a table and writes ``OUT/families.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def pretrain_family(name: str, out: Path, minutes: float) -> dict[str, Any]:
    """``minutes`` of the named pretraining config into ``out/name``."""
    from plugformer.config import PretrainConfig, load_config
    from plugformer.specs import resolve
    from plugformer.training.pretrain import pretrain

    cfg = load_config(resolve(name, "pretrain"), PretrainConfig)
    cfg.out_dir = str(out / name)
    cfg.trainer.max_minutes = minutes
    return pretrain(cfg)


def decode_speed(ref: str, n_prompts: int = 96, new_tokens: int = 40) -> dict[str, float]:
    """Greedy decoding tokens/s of a backbone at batch 1 and 32 (best of three)."""
    from plugformer.checkpoint import load_backbone
    from plugformer.config import TaskSpec, load_config
    from plugformer.inference.decoding import Greedy, decode
    from plugformer.specs import resolve
    from plugformer.training.finetune import build_task, load_examples

    loaded = load_backbone(ref)  # the family named in its manifest
    model = loaded.model.eval()
    spec = load_config(resolve("bible-en-es", "task"), TaskSpec)
    task = build_task(spec.task, spec.options, loaded.tokenizer)
    task.check_backbone(model)
    features = [task.encode(ex, train=False)[0] for ex in load_examples(task, spec, "test")]
    prompts = [f["input_ids"][: f["prompt_length"]] for f in features[:n_prompts]]
    decode(model, prompts[:4], Greedy(), max_new_tokens=4, eos_id=None)  # warm-up
    speeds = {}
    for batch in (1, 32):
        todo = prompts[:16] if batch == 1 else prompts
        best = 0.0
        for _ in range(3):
            t0, n = time.perf_counter(), 0
            for i in range(0, len(todo), batch):
                out = decode(
                    model, todo[i : i + batch], Greedy(), max_new_tokens=new_tokens, eos_id=None
                )
                n += sum(len(h[0].tokens) for h in out if h)
            best = max(best, n / (time.perf_counter() - t0))
        speeds[f"tokens_per_second_b{batch}"] = round(best, 1)
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="pretraining minutes each")
    parser.add_argument("--out", type=Path, default=Path("runs/families-compare"))
    parser.add_argument("--pretrain-only", help=argparse.SUPPRESS)  # one side of step 1
    args = parser.parse_args()

    from plugformer.fileio import atomic_write_json
    from plugformer.suites.bench import run_suite

    out = args.out
    if args.pretrain_only:
        import torch

        torch.set_num_threads(1)
        summary = pretrain_family(args.pretrain_only, out, args.minutes)
        atomic_write_json(out / f"{args.pretrain_only}.summary.json", summary)
        return
    families = ("decoder", "encdec")
    side_by_side = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--minutes",
                str(args.minutes),
                "--out",
                str(out),
                "--pretrain-only",
                name,
            ]
        )
        for name in families
    ]
    if any(proc.wait() for proc in side_by_side):
        sys.exit("pretraining failed (see above)")
    summaries = {n: json.loads((out / f"{n}.summary.json").read_text()) for n in families}
    refs = {name: s["checkpoint"] for name, s in summaries.items()}
    run_dir = run_suite("families", out / "suite", backbones=refs)
    results = json.loads((run_dir / "results.json").read_text())
    rows = []
    for name, summary in summaries.items():
        row: dict[str, Any] = {
            "family": name,
            "params": summary.get("n_params"),
            "pretrain_steps": summary.get("steps"),
            "pretrain_train_seconds": summary.get("train_seconds"),
            "pretrain_val_bpb": round(summary.get("val_bpb", float("nan")), 4),
        }
        row.update(decode_speed(refs[name]))
        rows.append(row)
    report = {"minutes": args.minutes, "families": rows, "suite_dir": str(run_dir)}
    report["suite_results"] = results
    atomic_write_json(out / "families.json", report)
    print(json.dumps(rows, indent=1))
    print((run_dir / "report.md").read_text())


if __name__ == "__main__":
    main()
