"""Re-analyse a finished suite run from its logged predictions: per-example statistics for
every cell, then the report again (intervals over seeds and test examples, paired differences).

Runs written before cells carried ``example_statistics`` get them from their
``predictions/<key>.jsonl`` files, through each task's own ``example_statistics``; nothing is
re-trained or re-decoded. Each cell's statistics must give back the metric it recorded, or
the script stops.

    python benchmarks/rescore.py runs/quickstart/suite            # a suite's run directory
    python benchmarks/rescore.py runs/quickstart/suite --out /tmp/rescored
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a suite run directory (results.json, cells/)")
    parser.add_argument("--out", type=Path, help="write here instead of rewriting RUN")
    args = parser.parse_args(argv)

    from plugformer.inference.samples import read_samples
    from plugformer.resampling import score
    from plugformer.suites.cellcache import write_cell
    from plugformer.suites.config import SuiteConfig
    from plugformer.suites.report import write_reports
    from plugformer.training.finetune import build_task

    run: Path = args.run
    results = json.loads((run / "results.json").read_text())
    suite = SuiteConfig.model_validate(results["suite"])
    out: Path = args.out or run
    if out != run:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copytree(run / "predictions", out / "predictions", dirs_exist_ok=True)
    records = []
    for record in results["cells"]:
        spec = record["spec_config"]
        task = build_task(record["task"], spec.get("options") or {}, None)
        samples = read_samples(run / record["predictions_file"])
        examples = [task.parse_example(s["example"], record["predictions_file"]) for s in samples]
        stats = task.example_statistics([s["prediction"] for s in samples], examples)
        record = {k: v for k, v in record.items() if k != "sha256"}
        record["example_statistics"] = stats.as_dict() if stats is not None else None
        if stats is not None:
            totals = [sum(col) for col in zip(*stats.rows, strict=True)]
            mine = score(stats.kind, totals, len(stats.rows), stats.scale)
            recorded = float(record["metrics"][record["main_metric"]])
            if abs(mine - recorded) > 1e-3 * max(1.0, abs(recorded)):
                print(
                    f"{record['key']} ({record['spec']}, {record['column']}): statistics give "
                    f"{mine}, the cell recorded {recorded}",
                    file=sys.stderr,
                )
                return 1
        if "ensemble" not in record:  # an ensemble's record has no cell file: bench pools anew
            write_cell(out / "cells" / f"{record['key']}.json", record)
        records.append(record)
    for path in write_reports(records, out, suite):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
