"""Weight layout for fp32 inference: linear layers with their weights stored transposed.

``nn.Linear`` keeps its weight as (out, in) and computes ``x @ W.T``; for the few rows of a
decode step (batch 1 to 8, one token each) the CPU's GEMM reads that transposed operand
slowly. Stored once as a contiguous (in, out) matrix, the same product ``x @ W_t`` took 46 %
less time at batch 1 and 14 % less at batch 8 over the 21 weight matrices of the benchmark
model (4 layers, width 256, vocabulary 8192; 2-core AMD EPYC, fp32, weights cycling through
the cache as in decoding), and the same time within noise for 32 to 4,096 rows (prompts,
scoring). :func:`transpose_linears` makes the swap on a model prepared for inference
(:func:`plugformer.inference.quantize.prepare`, ``fp32``); training never sees it.

For ``int8``, :class:`Int8Linear` holds the packed qint8 weight ``torch.ao``'s dynamic
quantisation made and calls its kernel directly: ``torch.ao``'s own module goes through the
operator's Python overload resolution and a dtype cast on every call, which at a decode step's
size was 6-10 % of the step (batch 1 and 8, benchmarks/perf/README.md). Same kernel, same
packed weight, same outputs.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["InferenceLinear", "Int8Linear", "call_int8_kernels", "transpose_linears"]


class InferenceLinear(nn.Module):
    """``nn.Linear``'s function, the weight held as (in, out): ``x (..., in) → (..., out)``.

    ``weight`` is still readable, as the (out, in) view code written for ``nn.Linear``
    expects; the stored parameter is ``weight_t``. For inference only (no gradient).
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        w = linear.weight.detach()
        self.weight_t = nn.Parameter(w.t().contiguous(), requires_grad=False)  # (in, out)
        self.bias = (
            None
            if linear.bias is None
            else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        )

    @property
    def weight(self) -> torch.Tensor:
        """The (out, in) weight, as ``nn.Linear`` has it (a view, not a copy)."""
        return self.weight_t.t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.weight_t  # (..., out)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        has_bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={has_bias}"


def transpose_linears(module: nn.Module) -> nn.Module:
    """Swap every fp32 ``nn.Linear`` below ``module`` for an :class:`InferenceLinear`, in place;
    returns ``module``. Tied weights (a language-model head sharing the embedding's matrix)
    get their own transposed copy: the embedding lookup keeps the original."""
    for name, child in list(module.named_children()):
        if type(child) is nn.Linear and child.weight.dtype == torch.float32:
            setattr(module, name, InferenceLinear(child))
        else:
            transpose_linears(child)
    return module


class Int8Linear(nn.Module):
    """``torch.ao``'s dynamically quantised linear layer (qint8 weight, per channel), its
    kernel called directly: ``x (..., in)`` fp32 → ``(..., out)`` fp32. Inference only."""

    def __init__(self, quantized: nn.Module) -> None:
        super().__init__()
        self.in_features, self.out_features = quantized.in_features, quantized.out_features
        self.quantized = quantized  # keeps the packed weight (and its state_dict) alive
        self._packed = quantized._packed_params._packed_params
        # reduce_range=True, as torch.ao's module (version 4) calls it
        self._kernel = torch.ops.quantized.linear_dynamic.default

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._kernel(x, self._packed, True)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, dtype=qint8"


def call_int8_kernels(module: nn.Module) -> nn.Module:
    """Swap every qint8 dynamically quantised linear below ``module`` for an
    :class:`Int8Linear`, in place; returns ``module``."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    for name, child in list(module.named_children()):
        if (
            type(child) is DynamicQuantizedLinear
            and child._packed_params.dtype == torch.qint8
            and getattr(child, "version", 4) >= 4
        ):
            setattr(module, name, Int8Linear(child))
        else:
            call_int8_kernels(child)
    return module
