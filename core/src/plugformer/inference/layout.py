"""Weight layouts for inference: the kernels a decode step's few rows multiply fastest.

fp32, on a CPU with oneDNN (PyTorch's CPU builds): :class:`PackedLinear` holds each linear
layer's weight in oneDNN's packed layout (``torch.ops.mkldnn._reorder_linear_weight``, what
``torch.compile``'s CPU weight freezing does) and multiplies with oneDNN's inner-product
kernel. On the 2-core AMD EPYC of our benchmarks, over the benchmark model's 21 weight
matrices (4 layers, width 256, vocabulary 8192), that took half the time of ``x @ W_t`` at 8
rows, two thirds at 32 and 128, and the same at 1; greedy decoding at batch 8 ran 1.3-1.6x
faster, with the same tokens (benchmarks/perf/README.md). MKL's GEMM, behind ``nn.Linear``,
is slow on small row counts on this CPU.

fp32 elsewhere (no oneDNN, or weights on a GPU): :class:`InferenceLinear` stores the weight
transposed. ``nn.Linear`` keeps it as (out, in) and computes ``x @ W.T``; for the few rows of
a decode step the CPU's GEMM reads that transposed operand slowly. Stored once as a
contiguous (in, out) matrix, the same product ``x @ W_t`` took 46 % less time at batch 1 and
14 % less at batch 8 on the same CPU and model, and the same time within noise for 32 to
4,096 rows (prompts, scoring).

:func:`fast_linears` makes the swap on a model prepared for inference
(:func:`plugformer.inference.quantize.prepare`, ``fp32``); training never sees it.

For ``int8``, :class:`Int8Linear` holds the packed qint8 weight ``torch.ao``'s dynamic
quantisation made and calls its kernel directly: ``torch.ao``'s own module goes through the
operator's Python overload resolution and a dtype cast on every call, which at a decode step's
size was 6-10 % of the step (batch 1 and 8, benchmarks/perf/README.md). Same kernel, same
packed weight, same outputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "InferenceLinear",
    "Int8Linear",
    "PackedLinear",
    "call_int8_kernels",
    "fast_linears",
    "onednn_linear_available",
    "transpose_linears",
]


class _FrozenLinear(nn.Module):
    """What the fp32 inference layouts share: ``nn.Linear``'s sizes, its bias (copied, no
    gradient) and its repr; a subclass stores the weight its own way."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.bias = (
            None
            if linear.bias is None
            else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        )

    def extra_repr(self) -> str:
        has_bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={has_bias}"


class InferenceLinear(_FrozenLinear):
    """``nn.Linear``'s function, the weight held as (in, out): ``x (..., in) → (..., out)``.

    ``weight`` is still readable, as the (out, in) view code written for ``nn.Linear``
    expects; the stored parameter is ``weight_t``. For inference only (no gradient).
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__(linear)
        w = linear.weight.detach()
        self.weight_t = nn.Parameter(w.t().contiguous(), requires_grad=False)  # (in, out)

    @property
    def weight(self) -> torch.Tensor:
        """The (out, in) weight, as ``nn.Linear`` has it (a view, not a copy)."""
        return self.weight_t.t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.weight_t  # (..., out)
        return y if self.bias is None else y + self.bias


class PackedLinear(_FrozenLinear):
    """``nn.Linear``'s function with the weight in oneDNN's packed layout (fp32, CPU):
    ``x (..., in) → (..., out)``. For inference only (no gradient to the weight).

    ``weight`` is still readable as the (out, in) matrix, unpacked on each read (a copy);
    the packed tensor is opaque, so it is not a parameter: it is in no ``state_dict`` and
    ``.to()`` does not move it. ``copy.deepcopy`` works (it packs a copy).
    """

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__(linear)
        self._packed = torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach().float())

    @property
    def weight(self) -> torch.Tensor:
        """The (out, in) weight, unpacked (a copy)."""
        return self._packed.to_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self._packed, self.bias, "none", [], "")

    def __deepcopy__(self, memo: dict[int, object]) -> PackedLinear:
        # skip_init: no random init to overwrite, and no draw from the global generator
        linear = nn.utils.skip_init(
            nn.Linear, self.in_features, self.out_features, bias=self.bias is not None
        )
        with torch.no_grad():
            linear.weight.copy_(self.weight)
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        copied = PackedLinear(linear)
        copied.train(self.training)
        memo[id(self)] = copied
        return copied


_ONEDNN: bool | None = None


def onednn_linear_available() -> bool:
    """Whether this PyTorch build packs fp32 linear weights for oneDNN and multiplies with
    them correctly (probed once per process on a small layer against ``F.linear``)."""
    global _ONEDNN
    if _ONEDNN is None:
        _ONEDNN = False  # unless the probe below passes
        if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
            try:
                with torch.random.fork_rng(devices=[]), torch.no_grad():  # leave the seed be
                    torch.manual_seed(0)
                    probe = nn.Linear(24, 40)
                    x = torch.randn(3, 5, 24)  # (B, T, C)
                    want = probe(x)
                    got = PackedLinear(probe)(x)
                _ONEDNN = bool(torch.allclose(got, want, rtol=1e-4, atol=1e-5))
            except (RuntimeError, AttributeError):  # an op missing or unsupported here
                pass
    return _ONEDNN


def fast_linears(module: nn.Module) -> nn.Module:
    """Swap every fp32 ``nn.Linear`` below ``module`` for the fastest inference layout, in
    place: a :class:`PackedLinear` where the weight is on a CPU with oneDNN, else an
    :class:`InferenceLinear`; returns ``module``. Tied weights (a language-model head sharing
    the embedding's matrix) get their own copy: the embedding lookup keeps the original."""

    def swap(child: nn.Module) -> nn.Module | None:
        if not _is_fp32_linear(child):
            return None
        packed = child.weight.device.type == "cpu" and onednn_linear_available()
        return PackedLinear(child) if packed else InferenceLinear(child)

    return _swap_children(module, swap)


def transpose_linears(module: nn.Module) -> nn.Module:
    """Swap every fp32 ``nn.Linear`` below ``module`` for an :class:`InferenceLinear`, in place;
    returns ``module``. Tied weights (a language-model head sharing the embedding's matrix)
    get their own transposed copy: the embedding lookup keeps the original."""
    return _swap_children(module, lambda c: InferenceLinear(c) if _is_fp32_linear(c) else None)


def _is_fp32_linear(module: nn.Module) -> bool:
    return type(module) is nn.Linear and module.weight.dtype == torch.float32


def _swap_children(module: nn.Module, swap: Callable[[nn.Module], nn.Module | None]) -> nn.Module:
    """Replace, in place, every submodule below ``module`` for which ``swap`` returns a
    module (a swapped one is not searched further); returns ``module``."""
    for name, child in list(module.named_children()):
        new = swap(child)
        if new is None:
            _swap_children(child, swap)
        else:
            setattr(module, name, new)
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

    def swap(child: nn.Module) -> nn.Module | None:
        qint8 = (
            type(child) is DynamicQuantizedLinear
            and child._packed_params.dtype == torch.qint8
            and getattr(child, "version", 4) >= 4  # Int8Linear passes reduce_range as v4 does
        )
        return Int8Linear(child) if qint8 else None

    return _swap_children(module, swap)
