"""Inference precision: a loaded model in fp32, bf16 or int8 for decoding and scoring.

``int8`` swaps every ``nn.Linear`` for ``torch.ao``'s dynamically quantised linear (qint8
weights, per output channel; activations quantised per batch, accumulation in int32), which
reads a quarter of the fp32 weight bytes per decode step, the bound of batch-1 CPU decoding.
``fp32`` keeps the weights but stores each linear layer's in the layout a decode step's few
rows multiply fastest: oneDNN's packed one on a CPU, else transposed
(:mod:`plugformer.inference.layout`).
``bf16`` casts the parameters to bfloat16 and runs under bf16 autocast (fast only where the
CPU has native bf16). Both are for inference only: :func:`prepare` returns a model for
``torch.inference_mode``, and training never calls it.

The setting is ``[inference] precision`` of a task spec (:class:`plugformer.config.InferenceConfig`),
saved with the spec in a task checkpoint's manifest and honoured by ``plugformer.load``,
whose ``precision=`` overrides it.

Measured agreement with fp32. The tests' micro backbone (2 layers, width 32; logit std 2.3):
max abs logit difference 0.017 (int8) and 0.021 (bf16), top-1 agreement 100 %; the tests
require ≤ 0.1 and ≥ 95 %. A trained 4×128 backbone (vocabulary 8192) on 8,192 held-out news
tokens: int8 max abs 2.6 (mean 0.13), top-1 agreement 91.3 %, bits/byte 1.9564 vs 1.9548;
bf16 max abs 0.25 (mean 0.012), top-1 98.4 %, bits/byte equal (benchmarks/perf/README.md).
"""

from __future__ import annotations

import contextlib
from typing import Any, get_args

from plugformer.config import InferenceConfig
from plugformer.errors import ConfigError

__all__ = ["PRECISIONS", "autocast", "check_precision", "prepare", "saved_precision"]

PRECISIONS: tuple[str, ...] = get_args(InferenceConfig.model_fields["precision"].annotation)
"""The inference precisions: ``fp32``, ``bf16``, ``int8``."""


def check_precision(value: Any) -> str:
    """``value`` if it names an inference precision, else one ConfigError line."""
    if value not in PRECISIONS:
        raise ConfigError(f"inference precision {value!r}: expected one of {', '.join(PRECISIONS)}")
    return str(value)


def saved_precision(manifest: dict[str, Any]) -> str:
    """The precision a task checkpoint's manifest asks for (``fp32`` for older checkpoints)."""
    spec = manifest.get("spec") or {}
    return check_precision((spec.get("inference") or {}).get("precision", "fp32"))


def prepare(module: Any, precision: str) -> Any:
    """``module`` (eval mode) ready to run inference at ``precision``: for ``fp32``, its
    ``nn.Linear`` layers hold their weights packed for oneDNN on a CPU, else transposed, in
    place (the same function, faster for decoding's few rows:
    :mod:`plugformer.inference.layout`); parameters cast to bfloat16
    in place for ``bf16``; a copy whose ``nn.Linear`` layers are dynamically quantised (qint8,
    per channel) and call their kernel directly (:class:`~plugformer.inference.layout.Int8Linear`)
    for ``int8``. At every precision, submodules with a ``fuse_for_inference`` method fuse
    their layers first (the native SwiGLU MLP: gate and up in one product). A module that is
    itself one ``nn.Linear`` (a bare classification head) is left as it is under ``fp32`` and
    ``int8``."""
    import torch
    from torch import nn

    precision = check_precision(precision)
    module.eval()
    if precision == "int8":
        import copy

        module = copy.deepcopy(module)  # quantised below in place: the caller's stays as it is
    _fuse_for_inference(module)
    if precision == "fp32":
        from plugformer.inference.layout import fast_linears

        fast_linears(module)
    elif precision == "bf16":
        for sub in module.modules():
            for p in sub.parameters(recurse=False):
                p.data = p.data.to(torch.bfloat16)  # tied weights are one Parameter: cast once
    elif precision == "int8":
        import warnings

        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        with warnings.catch_warnings():  # torch.ao's deprecation notices (torchao succeeds it)
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            module = quantize_dynamic(
                module, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
            )
        from plugformer.inference.layout import call_int8_kernels

        call_int8_kernels(module)
    module.inference_precision = precision  # marks the module: not for training
    return module


def _fuse_for_inference(module: Any) -> None:
    """Let every submodule that can fuse its layers for inference do so (the native MLP's
    ``fuse_for_inference``: SwiGLU's two input projections become one)."""
    for sub in list(module.modules()):
        fuse = getattr(sub, "fuse_for_inference", None)
        if callable(fuse):
            fuse()


def autocast(precision: str) -> contextlib.AbstractContextManager[Any]:
    """The context inference at ``precision`` runs in: bf16 autocast for ``bf16`` (so a head's
    fp32 inputs meet bf16 weights), nothing otherwise."""
    if precision != "bf16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)
