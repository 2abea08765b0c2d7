"""Time to quality: minutes of pretraining until held-out news bits/byte reaches trigram Kneser–Ney.

    python benchmarks/perf/time_to_quality.py [--minutes 25] [--check-every 60] [--set KEY=VALUE ...]

The quickstart's setting (its corpus from training splits only, its tokenizer and
``tasks/pretrain/quickstart.toml``), with plugformer's default fast path (bf16-mixed and
torch.compile where ``auto`` picks them, fused loss and optimiser). The target is the bits
per byte of a trigram Kneser–Ney model of the same training tokens on the news validation
split (what ``plugformer quickstart`` reports). The cosine schedule spans ``--minutes``
(the step count is calibrated as the quickstart does); every ``--check-every`` seconds of
training the model is scored on the whole held-out split, off the clock, and the run stops
at the first check at or below the target. It prints the curve and the crossing, and
appends a JSON line to ``results/<date>.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from harness import append_result  # noqa: E402


def heldout_stream(tokenizer: Any) -> tuple[Any, int]:
    from plugformer.data.cache import load_split
    from plugformer.suites.ngram import token_stream

    rows = load_split("news-2017-en", "validation")
    texts = [
        "\n".join(p for p in (r.get("title"), r.get("subtitle"), r.get("text")) if p) for r in rows
    ]
    return token_stream(tokenizer, [t for t in texts if t.strip()])


def quality_clock(target: float, val: Any, val_bytes: int, every_s: float, tokens_per_step: int):
    import lightning as L

    from plugformer.suites.ngram import model_bits_per_byte

    class QualityClock(L.Callback):
        """Scores held-out bpb every ``every_s`` seconds of training (its own time excluded)."""

        def __init__(self) -> None:
            self.train_s = 0.0
            self.last_check = 0.0
            self.curve: list[dict[str, float]] = []
            self.reached: dict[str, float] | None = None
            self._t = 0.0

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self._t = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.train_s += time.perf_counter() - self._t
            last_step = trainer.global_step >= trainer.max_steps
            if self.train_s - self.last_check < every_s and not last_step:
                return
            self.last_check = self.train_s
            bpb = model_bits_per_byte(pl_module.model, val, val_bytes)
            pl_module.model.train()
            point = {
                "minutes": round(self.train_s / 60, 2),
                "step": trainer.global_step,
                "tokens": trainer.global_step * tokens_per_step,
                "bpb": round(bpb, 4),
            }
            self.curve.append(point)
            print(f"[time-to-quality] {point} target {target:.4f}", file=sys.stderr, flush=True)
            if bpb <= target and self.reached is None:
                self.reached = point
                trainer.should_stop = True

    return QualityClock()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=25.0, help="length of the LR schedule")
    p.add_argument(
        "--check-every", type=float, default=60.0, help="seconds of training between checks"
    )
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("PLUGFORMER_PROGRESS", "0")

    from plugformer import plugins
    from plugformer.config import PretrainConfig, load_config
    from plugformer.hookspecs import hookimpl
    from plugformer.suites.ngram import KneserNey, token_stream
    from plugformer.suites.quickstart import build_corpus, calibrate_steps
    from plugformer.training.common import resolve_compile, resolve_precision
    from plugformer.training.pretrain import prepare_tokenizer, pretrain

    tmp = Path(tempfile.mkdtemp(prefix="plugformer-ttq-"))
    corpus = tmp / "corpus.jsonl"
    build_corpus(corpus)
    from plugformer.specs import resolve

    cfg = load_config(resolve("quickstart", "pretrain"), PretrainConfig, args.set)
    cfg.data.corpus = [str(corpus)]
    cfg.out_dir = str(tmp / "pretrain")
    tokenizer = prepare_tokenizer(cfg)
    val, val_bytes = heldout_stream(tokenizer)
    train_texts = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    train, _ = token_stream(tokenizer, train_texts)
    target = KneserNey(train, tokenizer.vocab_size).bits_per_byte(val, val_bytes)
    print(
        f"[time-to-quality] target: trigram Kneser–Ney {target:.4f} bits/byte "
        f"({len(train):,} training tokens, {len(val):,} held-out)",
        file=sys.stderr,
    )
    cfg.trainer.max_steps = calibrate_steps(cfg, tokenizer.vocab_size, args.minutes)
    cfg.trainer.max_minutes = None
    tokens_per_step = cfg.trainer.batch_size * cfg.model.max_seq_len
    clock = quality_clock(target, val, val_bytes, args.check_every, tokens_per_step)

    class _Plugin:
        @hookimpl
        def register_callbacks(self, stage, config):
            return [clock] if stage == "pretrain" else None

    plugins.register_plugin(_Plugin(), "time-to-quality")
    t0 = time.perf_counter()
    summary = pretrain(cfg)
    wall = time.perf_counter() - t0
    settings = {
        "precision": resolve_precision(cfg.trainer.precision),
        "compile": resolve_compile(cfg.trainer.compile, cfg.trainer.max_steps),
        "model": cfg.model.model_dump(include={"n_layers", "d_model", "n_heads", "max_seq_len"}),
        "batch_size": cfg.trainer.batch_size,
        "lr": cfg.optim.lr,
        "schedule_steps": cfg.trainer.max_steps,
        "threads": __import__("torch").get_num_threads(),
    }
    print(f"target (trigram Kneser–Ney): {target:.4f} bits/byte")
    print(f"{'minutes':>8} {'step':>6} {'tokens':>11} {'bits/byte':>9}")
    for pt in clock.curve:
        print(f"{pt['minutes']:>8.2f} {pt['step']:>6} {pt['tokens']:>11,} {pt['bpb']:>9.4f}")
    if clock.reached:
        print(
            f"reached after {clock.reached['minutes']:.1f} minutes of training "
            f"({clock.reached['tokens']:,} tokens); wall {wall / 60:.1f} min with checks"
        )
    else:
        print(
            f"not reached in {clock.train_s / 60:.1f} minutes of training; best "
            f"{min(pt['bpb'] for pt in clock.curve):.4f}"
        )
    if not args.no_save:
        append_result(
            "time-to-quality",
            args,
            target_kn_trigram_bpb=target,
            settings=settings,
            curve=clock.curve,
            reached=clock.reached,
            tokens_per_second=summary.get("tokens_per_second"),
            wall_seconds=round(wall, 1),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
