"""Inference: a task checkpoint as a :class:`Predictor`, and ``load`` for any checkpoint.

Depends on the checkpoint format and the plugins only, never on fine-tuning (which uses
:func:`eval_collate` and :class:`Predictor` from here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["Predictor", "eval_collate", "load", "longest_first"]


def eval_collate(task: Any):
    """Collate whole examples: all their features, plus the examples and a feature→example map."""

    def collate(examples: list[Any]) -> dict[str, Any]:
        feats, index = [], []
        for i, ex in enumerate(examples):
            for f in task.encode(ex, train=False):
                feats.append(f)
                index.append(i)
        batch = task.collate(feats)
        batch["examples"] = examples
        batch["example_index"] = torch.tensor(index, dtype=torch.long)
        return batch

    return collate


def longest_first(task: Any, examples: Sequence[Any]) -> list[int]:
    """Positions of ``examples`` by encoded length (token ids of all their features), longest
    first: batches of alike lengths are padded, and decoded, to little more than they need."""
    sizes = [
        sum(len(f.get("input_ids", ())) for f in task.encode(ex, train=False)) for ex in examples
    ]
    return sorted(range(len(examples)), key=lambda i: -sizes[i])


class Predictor:
    """A loaded task checkpoint: ``predict(inputs)`` and ``score(examples)``.

    ``precision`` is the inference precision the backbone and head were prepared for
    (:func:`plugformer.inference.quantize.prepare`); predicting and scoring run in its context."""

    def __init__(
        self,
        task: Any,
        backbone: nn.Module,
        head: nn.Module,
        manifest: dict[str, Any],
        precision: str = "fp32",
    ):
        self.task, self.backbone, self.head, self.manifest = (
            task,
            backbone.eval(),
            head.eval(),
            manifest,
        )
        self.precision = precision

    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        precision: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Predictor:
        """Load a task checkpoint at ``precision`` (``fp32``, ``bf16``, ``int8``); ``None``
        takes the one saved in its manifest (``[inference]`` of the spec it was trained with).
        ``options`` change saved task options for this predictor (decoding settings such as
        ``beam_size``; :func:`plugformer.checkpoint.load_task`)."""
        from plugformer.checkpoint import load_task
        from plugformer.inference.quantize import check_precision, prepare, saved_precision

        if precision is not None:
            check_precision(precision)  # refuse a bad value before loading anything
        task, backbone, head, manifest = load_task(path, options)
        precision = precision or saved_precision(manifest)
        return cls(
            task, prepare(backbone, precision), prepare(head, precision), manifest, precision
        )

    def _batches(self, examples: Sequence[Any], batch_size: int):
        """``(positions, batch)`` over ``examples`` in batches of similar encoded length
        (a batch is padded, and decoded, to its longest member), longest first."""
        collate = eval_collate(self.task)
        order = longest_first(self.task, examples)
        for i in range(0, len(order), batch_size):
            positions = order[i : i + batch_size]
            yield positions, collate([examples[j] for j in positions])

    @torch.inference_mode()
    def predict(
        self,
        inputs: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]],
        batch_size: int = 32,
    ) -> Any:
        """Predictions for raw inputs (strings or dicts, as ``task.read_input`` takes: a dict's
        keys may be the training files' column names), in the order of ``inputs``; one input (a
        string or a dict) gives its prediction alone."""
        from plugformer.errors import DataError

        if isinstance(inputs, (str, Mapping)):  # one input: a string is not a list of characters
            return self._predict([self.task.read_input(inputs)], batch_size)[0]
        if not isinstance(inputs, Sequence):
            raise DataError(
                f"predict takes a string, a dict or a list of them, not {type(inputs).__name__}"
            )
        examples = []
        for i, value in enumerate(inputs):
            try:
                examples.append(self.task.read_input(value))
            except DataError as exc:  # say which of the inputs it was
                raise DataError(f"inputs[{i}]: {exc}") from None
        return self._predict(examples, batch_size)

    def _predict(self, examples: list[Any], batch_size: int) -> list[Any]:
        from plugformer.inference.quantize import autocast

        out: list[Any] = [None] * len(examples)
        for positions, batch in self._batches(examples, batch_size):
            with autocast(self.precision):
                preds = self.task.predict(self.backbone, self.head, batch)
            for j, p in zip(positions, preds, strict=True):
                out[j] = p
        return out

    @torch.inference_mode()
    def score(
        self, examples: Sequence[Any], batch_size: int = 64, keep: bool = False
    ) -> tuple[dict[str, float], list[Any]]:
        """The task's metrics on ``examples`` (updated batch by batch), and the predictions
        (in the order of ``examples``) if ``keep``."""
        from plugformer.inference.quantize import autocast

        metrics = self.task.metrics()
        kept: list[Any] = [None] * len(examples) if keep else []
        for positions, batch in self._batches(examples, batch_size):
            with autocast(self.precision):
                preds = self.task.predict(self.backbone, self.head, batch)
            self.task.update_metrics(metrics, preds, batch["examples"])
            if keep:
                for j, p in zip(positions, preds, strict=True):
                    kept[j] = p
        return self.task.compute_metrics(metrics), kept


def load(
    path: str | Path, precision: str | None = None, options: Mapping[str, Any] | None = None
) -> Any:
    """Load any checkpoint: a task checkpoint gives a :class:`Predictor` (``.predict([...])``),
    a backbone checkpoint a :class:`plugformer.models.families.LoadedBackbone`.

    ``precision`` (``fp32``, ``bf16``, ``int8``; :mod:`plugformer.inference.quantize`) overrides the
    inference precision a task checkpoint saved; a backbone checkpoint's model is prepared
    at it when given (run bf16 models under ``plugformer.inference.quantize.autocast``).
    ``options`` change a task checkpoint's saved task options (decoding settings) for this
    load."""
    from plugformer.checkpoint import load_backbone, read_manifest

    if read_manifest(path)["kind"] == "task":
        return Predictor.from_checkpoint(path, precision, options)
    if options:
        from plugformer.errors import PlugformerError

        raise PlugformerError(f"{path}: a backbone checkpoint has no task options to change")
    loaded = load_backbone(path)
    if precision is not None:
        from plugformer.inference.quantize import prepare

        loaded.model = prepare(loaded.model, precision)
    return loaded
