"""Shape and schedule sweep for the quickstart's task-aware backbone, at a fixed CPU budget.

Each variant is the quickstart's own recipe (``quickstart.toml`` trunk on the text, then
``quickstart-anneal.toml`` with the tasks' training examples mixed in), with a few settings
changed and the same minutes. It is scored on validation data only:

* held-out news bits/byte (the quickstart's headline LM figure), and
* bits/byte of the tasks' *validation* examples written as pretraining documents
  (``Task.pretrain_documents``: ``source <sep> target`` for bible-en-es, ``article <sep>
  headline`` for news-headlines): a fine-tuning-free proxy of how much of each task the
  backbone has learnt.

Usage (the corpus is the quickstart's; build it once with ``plugformer quickstart`` or let
this script build it). Each process trains with one thread by default, so two processes
side by side on two cores see the same machine, and a busy machine slows both alike: ::

    .venv/bin/python benchmarks/sweep_pretrain.py --only base,trunk40 --out runs/sweep &
    .venv/bin/python benchmarks/sweep_pretrain.py --only wide192,deep6x96 --out runs/sweep

It prints a table and writes ``OUT/sweep.jsonl`` (one line per variant, with the settings,
steps, tokens/s, final learning rate and every score) and ``OUT/sweep.md``. Read the
differences, not the absolute values: a variant's steps depend on the machine's load, which
the table reports beside each score.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "trunk40": {"trunk_share": 0.4},
    "wide192": {"model.d_model": 192, "model.n_heads": 3, "optim.lr": 4e-3},
    "deep6x96": {"model.n_layers": 6, "model.d_model": 96, "model.n_heads": 2},
    "4x96": {"model.d_model": 96, "model.n_heads": 2},
    "4x64": {"model.d_model": 64, "model.n_heads": 2},
    "deep8x80": {"model.n_layers": 8, "model.d_model": 80, "model.n_heads": 2},
    "deep6x96-lr1e-2": {
        "model.n_layers": 6,
        "model.d_model": 96,
        "model.n_heads": 2,
        "optim.lr": 1e-2,
    },
    "lr3e-3": {"optim.lr": 3e-3},
    "ctx64": {"model.max_seq_len": 64, "trainer.batch_size": 32},
    "ctx256": {"model.max_seq_len": 256, "trainer.batch_size": 8},
    "ctx192": {"model.max_seq_len": 192, "trainer.batch_size": 11},
    "vocab4096": {"tokenizer.vocab_size": 4096},
    "vocab2048": {"tokenizer.vocab_size": 2048},
}
"""Settings changed from the quickstart's configs (``trunk_share`` is the trunk's share of
the minutes; everything else is a dotted config key set on both phases)."""

TASK_DOCS = ("bible-en-es", "news-headlines")
"""Tasks whose validation documents are scored (the generative tasks of issue 16)."""


def _set(cfg: Any, key: str, value: Any) -> None:
    section, field = key.split(".")
    setattr(getattr(cfg, section), field, value)


def _task_docs_bpb(model: Any, tokenizer: Any, spec_name: str, limit: int = 400) -> float:
    """Bits/byte of a task's validation examples as pretraining documents."""
    from plugformer.config import TaskSpec, load_config
    from plugformer.specs import resolve
    from plugformer.suites.ngram import model_bits_per_byte, token_stream
    from plugformer.training.finetune import build_task, load_examples

    spec = load_config(resolve(spec_name, "task"), TaskSpec)
    task = build_task(spec.task, spec.options, tokenizer)
    docs = list(task.pretrain_documents(load_examples(task, spec, "validation")[:limit]))
    tokens, n_bytes = token_stream(tokenizer, docs)
    return model_bits_per_byte(model, tokens, n_bytes)


def run_variant(name: str, changes: dict[str, Any], corpus: Path, out: Path, minutes: float):
    """Trunk then task-aware anneal with ``changes``; returns the variant's scores."""
    from plugformer.checkpoint import load_backbone
    from plugformer.suites.quickstart import TRUNK_SHARE, _pretrain_config, heldout_news
    from plugformer.training.pretrain import pretrain

    share = changes.get("trunk_share", TRUNK_SHARE)
    settings = {k: v for k, v in changes.items() if k != "trunk_share"}
    trunk_cfg = _pretrain_config("quickstart", out / name / "trunk", corpus, minutes * share)
    anneal_cfg = _pretrain_config(
        "quickstart-anneal", out / name / "tasks", corpus, minutes * (1 - share)
    )
    for key, value in settings.items():
        _set(trunk_cfg, key, value)
        if not key.startswith("model."):  # the anneal inherits the trunk's shape (init_from)
            _set(anneal_cfg, key, value)
    t0 = time.perf_counter()
    trunk = pretrain(trunk_cfg)
    anneal_cfg.init_from = trunk["checkpoint"]
    final = pretrain(anneal_cfg)
    wall = time.perf_counter() - t0
    loaded = load_backbone(final["checkpoint"])
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    row: dict[str, Any] = {
        "variant": name,
        "changes": changes,
        "minutes": minutes,
        "steps": trunk["steps"] + final["steps"],
        "tokens_per_second": round(final["tokens_per_second"]),
        "final_lr": final.get("final_lr"),
        "min_lr": final.get("min_lr"),
        "wall_seconds": round(wall, 1),
        "news_bpb": round(heldout_news(tokenizer, model, corpus)["model_bpb"], 4),
    }
    for spec in TASK_DOCS:
        row[f"{spec}_val_docs_bpb"] = round(_task_docs_bpb(model, tokenizer, spec), 4)
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ["variant", "steps", "tokens_per_second", "news_bpb"]
    cols += [f"{s}_val_docs_bpb" for s in TASK_DOCS]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=6.0, help="pretraining minutes per variant"
    )
    parser.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants")
    parser.add_argument("--out", type=Path, default=Path("runs/sweep"))
    parser.add_argument("--corpus", type=Path, help="quickstart corpus JSONL (default: built)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per variant (1: variants run side by side see the same machine)",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)

    from plugformer.fileio import atomic_write_text
    from plugformer.suites.quickstart import build_corpus

    args.out.mkdir(parents=True, exist_ok=True)
    corpus = args.corpus or args.out / "corpus.jsonl"
    if not corpus.exists():
        build_corpus(corpus)
    for name in args.only.split(","):
        row = run_variant(name, VARIANTS[name], corpus, args.out, args.minutes)
        row["threads"] = args.threads
        print(json.dumps(row), flush=True)
        with open(args.out / "sweep.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    # Every variant measured into OUT so far (side-by-side processes share the file).
    lines = (args.out / "sweep.jsonl").read_text(encoding="utf-8").splitlines()
    table = _table([json.loads(line) for line in lines if line.strip()])
    atomic_write_text(args.out / "sweep.md", table + "\n")
    print(table)


if __name__ == "__main__":
    main()
