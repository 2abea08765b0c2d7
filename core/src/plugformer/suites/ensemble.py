"""A suite's ensembles: a fine-tuned model pooled with a baseline, the weight chosen on validation.

For each ensemble (:class:`~plugformer.suites.config.SuiteEnsemble`), spec and seed, the model
cell's and the baseline cell's logged predictions are pooled example by example with the
task's :meth:`~plugformer.tasks.Task.fuse`::

    validation:  for w in weights: score(fuse(model, baseline, w))  →  w* (ties: nearest 0.5)
    test:        fuse(model, baseline, w*)  →  metrics, per-example statistics, predictions

Nothing is trained again: both cells predicted the validation split beside the test split
(the plan asks them to). The result is a record like a model cell's (``kind = "model"``, the
ensemble's name as its column, the model cell's compute), so reports, paired intervals and
plots treat it as one more system; ``ensemble`` says what was pooled and the weight chosen.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from plugformer.suites.config import SuiteConfig, SuiteEnsemble

__all__ = ["choose_weight", "ensemble_records", "fuse_all"]


def fuse_all(task: Any, a: Sequence[Any], b: Sequence[Any], weight: float) -> list[Any]:
    """``task.fuse`` of each pair of predictions (the same examples, in the same order; lists
    of different lengths raise ValueError)."""
    return [task.fuse(x, y, weight) for x, y in zip(a, b, strict=True)]


def choose_weight(
    task: Any,
    a: Sequence[Any],
    b: Sequence[Any],
    examples: Sequence[Any],
    weights: Sequence[float],
) -> tuple[float, float]:
    """The weight on ``a`` whose pooled predictions score best on ``examples`` (the task's
    main metric, its direction), ties going to the weight nearest 0.5; and that score."""
    from plugformer.tasks import score_predictions

    sign = 1.0 if task.higher_is_better else -1.0
    best: tuple[float, float, float] | None = None  # (signed score, -|w - 0.5|, w)
    for w in weights:
        score = score_predictions(task, fuse_all(task, a, b, w), examples)[task.main_metric]
        candidate = (sign * score, -abs(w - 0.5), w)
        if best is None or candidate > best:
            best = candidate
    assert best is not None  # weights is never empty (SuiteEnsemble)
    return best[2], sign * best[0]


def _paired_predictions(
    run_dir: Path, a: dict[str, Any], b: dict[str, Any], field: str, examples: Sequence[Any]
) -> tuple[list[Any], list[Any]]:
    """Two cells' logged predictions of ``examples`` (``field`` names the file), checked to be
    of the same examples in the same order."""
    from plugformer.errors import PlugformerError
    from plugformer.inference.samples import read_samples

    sa, sb = (read_samples(run_dir / r[field]) for r in (a, b))
    fields = [ex.model_dump(mode="json") if hasattr(ex, "model_dump") else ex for ex in examples]
    for record, samples in ((a, sa), (b, sb)):
        if [s.get("example") for s in samples] != fields:
            raise PlugformerError(
                f"{run_dir / record[field]}: its predictions are not of the {len(fields)} "
                f"examples the spec reads now ({len(samples)} logged); delete "
                f"{run_dir / 'cells' / (record['key'] + '.json')} to compute that cell again"
            )
    return [s["prediction"] for s in sa], [s["prediction"] for s in sb]


def _fused_record(
    ens: SuiteEnsemble, model: dict[str, Any], base: dict[str, Any], run_dir: Path
) -> dict[str, Any]:
    """The ensemble's record for one model cell (see the module docstring)."""
    from plugformer.config import TaskSpec
    from plugformer.inference.samples import sample_records, write_samples
    from plugformer.suites.cellcache import HASH_FIELD, PREDICTION_HASHES
    from plugformer.tasks import score_predictions
    from plugformer.training.finetune import build_task, load_examples

    t0 = time.perf_counter()
    spec = TaskSpec.model_validate(model["spec_config"])
    task = build_task(spec.task, spec.options, None)
    task.prepare(load_examples(task, spec, "train"))  # what scoring needs (a label set, ...)
    val, test = load_examples(task, spec, "validation"), load_examples(task, spec, "test")
    val_a, val_b = _paired_predictions(run_dir, model, base, "validation_predictions_file", val)
    weight, val_score = choose_weight(task, val_a, val_b, val, ens.weights)
    test_a, test_b = _paired_predictions(run_dir, model, base, "predictions_file", test)
    fused = fuse_all(task, test_a, test_b, weight)
    record = copy.deepcopy(model)
    key = f"{model['key']}-{ens.name}"
    record.update(
        {
            "key": key,
            "column": ens.name,
            "metrics": score_predictions(task, fused, test, spec.finetune.eval_batch_size),
            "validation_metrics": {task.main_metric: val_score},
            "ensemble": {
                "model": ens.model,
                "model_cell": model["key"],
                "baseline": ens.baseline,
                "baseline_cell": base["key"],
                "weight": weight,
                "weights_tried": list(ens.weights),
                "tuned_on": "validation",
                "definition": (
                    f"{ens.model}'s fine-tuned model pooled with the {ens.baseline} baseline "
                    f"(Task.fuse), weight {weight:g} on the model, chosen on validation "
                    f"{task.main_metric}"
                ),
            },
        }
    )
    stats = task.example_statistics(fused, test)
    record["example_statistics"] = stats.as_dict() if stats is not None else None
    # its own folder: computed afresh on every run, it has no cell file of its own
    rel = Path("predictions") / "ensembles" / f"{key}.jsonl"
    write_samples(run_dir / rel, sample_records(test, fused))
    record["predictions_file"] = rel.as_posix()
    # the model cell's, not this one's: its file, its hash, its training history (a second
    # validation curve would be the model's again)
    for field in ("validation_predictions_file", HASH_FIELD, PREDICTION_HASHES, "finetune"):
        record.pop(field, None)
    record["wall_seconds"] = round(time.perf_counter() - t0, 2)  # the pooling's own time
    return record


def ensemble_records(
    suite: SuiteConfig,
    records: Sequence[dict[str, Any]],
    run_dir: Path,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One record per ensemble × model cell that has a baseline cell to pool with, in the
    order of the model cells. A cell without validation predictions (no validation data) is
    reported and skipped. Pooled prediction files no record names (an earlier run's) are
    removed."""
    out: list[dict[str, Any]] = []
    for ens in suite.ensembles:
        for model in records:
            if model["kind"] != "model" or model["column"] != ens.model:
                continue
            if ens.tasks is not None and not {model["spec"], model["task"]} & set(ens.tasks):
                continue
            base = next(
                (
                    r
                    for r in records
                    if r["kind"] == "baseline"
                    and r["column"] == ens.baseline
                    and r["spec"] == model["spec"]
                ),
                None,
            )
            if base is None:  # the ensemble does not pool on this spec
                continue
            if not (
                model.get("validation_predictions_file") and base.get("validation_predictions_file")
            ):
                log(
                    f"ensemble {ens.name}: {model['spec']} · seed {model['seed']} has no "
                    "validation predictions to choose a weight on; skipped"
                )
                continue
            out.append(_fused_record(ens, model, base, run_dir))
            fused = out[-1]
            log(
                f"ensemble {ens.name}: {model['spec']} · seed {model['seed']}: weight "
                f"{fused['ensemble']['weight']:g} on {ens.model} (validation "
                f"{fused['main_metric']} {fused['validation_metrics'][fused['main_metric']]:.4g}), "
                f"test {fused['metrics'][fused['main_metric']]:.4g}"
            )
    kept = {r["predictions_file"] for r in out}
    for stale in (run_dir / "predictions" / "ensembles").glob("*.jsonl"):
        if f"predictions/ensembles/{stale.name}" not in kept:
            stale.unlink(missing_ok=True)
    return out
