"""Score the baselines of task specs on their validation and test splits, without a suite.

Each baseline is tuned on the validation split (as ``plugformer bench`` does) and scored with
the task's own metrics on validation (optimistic: it chose its settings there) and on test::

    python benchmarks/baselines.py movie-reviews
    python benchmarks/baselines.py news-cloze --max-eval 1000 --max-test 1000
    python benchmarks/baselines.py bible-en-es --max-test 1000 --only ibm1-words

A spec is a registered name (``plugformer tasks``) or a TOML file.

Baselines that need no tokenizer run as they are; ``--tokenizer FILE`` lends one (a
``tokenizer.json``) to those that do. One JSON line per baseline goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="task spec names or files (TOML)")
    parser.add_argument("--max-eval", type=int, help="override data.max_eval (validation)")
    parser.add_argument("--max-test", type=int, help="override data.max_test")
    parser.add_argument("--max-train", type=int, help="override data.max_train")
    parser.add_argument("--only", action="append", help="baseline names to run (default: all)")
    parser.add_argument("--tokenizer", type=Path, help="a tokenizer.json for tasks that need one")
    args = parser.parse_args()

    from plugformer.specs import resolve
    from plugformer.suites.config import load_spec
    from plugformer.tasks import run_baseline, score_predictions
    from plugformer.training.finetune import build_task, load_examples

    tokenizer = None
    if args.tokenizer:
        from plugformer.tokenizer import Tokenizer

        tokenizer = Tokenizer.load(args.tokenizer)
    data = {
        k: v
        for k, v in {
            "max_eval": args.max_eval,
            "max_test": args.max_test,
            "max_train": args.max_train,
        }.items()
        if v is not None
    }
    for ref in args.specs:
        spec = load_spec(resolve(ref, "task"), {"data": data} if data else {}, 0)
        task = build_task(spec.task, spec.options, tokenizer)
        splits = {s: load_examples(task, spec, s) for s in ("train", "validation", "test")}
        task.prepare(splits["train"])
        for name in task.baselines():
            if args.only and name not in args.only:
                continue
            t0 = time.perf_counter()
            row = {"spec": spec.label, "baseline": name, "sizes": {}}
            for split in ("validation", "test"):
                baseline = task.baselines()[name]
                predictions, described = run_baseline(
                    baseline, splits["train"], splits[split], splits["validation"]
                )
                row[split] = score_predictions(task, predictions, splits[split])
            row |= described
            row["sizes"] = {s: len(v) for s, v in splits.items()}
            row["seconds"] = round(time.perf_counter() - t0, 1)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
