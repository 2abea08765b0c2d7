"""Fused linear + cross-entropy: the LM loss without materialising the (N, V) logits.

``F.cross_entropy(lm_logits(hidden), target)`` writes N×V logits, a float32 copy of them
under bf16 autocast, their log-softmax, and in backward a gradient of the same size: at
batch 32 × context 128 and a vocabulary of 8192 that is 134 MB per pass, and profiling
showed the log-softmax forward and backward taking ~22 % of a bf16 pretraining step on CPU.

:func:`linear_cross_entropy` walks the rows in chunks small enough to stay in cache. For
each chunk it computes the logits, their log-sum-exp and, when gradients are wanted, the
gradient ``softmax - onehot`` straight away, folding it into the gradients of the hidden
states and of the weight (the technique of Liger-Kernel's fused linear cross-entropy and
Apple's Cut Cross-Entropy). Backward then only scales the stored gradients. Rows whose
target is ``ignore_index`` never reach the head, so a masked-LM batch (~15 % of positions
labelled) does ~15 % of the LM-head work.

Numerics: the matmuls run in the autocast dtype when autocast is on (as ``lm_logits`` would),
the log-sum-exp and the softmax always in float32, the weight gradient is accumulated in
float32. Tests hold it to ``F.cross_entropy`` in loss and gradients.
"""

from __future__ import annotations

import torch

__all__ = ["linear_cross_entropy"]

_LOG2E = 1.4426950408889634
_CHUNK_ELEMENTS = 1 << 21
"""Logit elements per chunk (8 MB in float32): rows per chunk = this // vocabulary size."""


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, target, compute_dtype, need_grad, chunk_rows):
        # hidden (N, C), weight (V, C), target (N,) with every row labelled.
        h = hidden.to(compute_dtype)
        w = weight.to(compute_dtype)
        N, V = h.size(0), w.size(0)
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        grad_h = torch.empty_like(h) if need_grad else None
        grad_w = torch.zeros(w.shape, dtype=torch.float32, device=w.device) if need_grad else None
        # Buffers reused by every chunk: a fresh multi-MB tensor per chunk costs page faults.
        rows = max(1, min(chunk_rows, N))
        low = torch.empty(rows, V, dtype=compute_dtype, device=h.device)
        f32 = low if compute_dtype == torch.float32 else torch.empty(rows, V, device=h.device)
        gw_chunk = torch.empty_like(w) if need_grad and compute_dtype != torch.float32 else None
        rows_idx = torch.arange(rows, device=h.device)
        for s in range(0, N, rows):
            hc, tc = h[s : s + rows], target[s : s + rows]
            n = hc.size(0)
            logits = torch.mm(hc, w.t(), out=low[:n])  # (n, V)
            x = f32[:n]
            if x is not logits:
                x.copy_(logits)  # float32 from here on
            # log-sum-exp by hand, in place: logsumexp() allocates two (n, V) temporaries.
            picked = x.gather(1, tc[:, None]).squeeze(1)  # (n,) logits of the targets
            peak = x.amax(dim=1, keepdim=True)  # (n, 1)
            # exp(x - peak) as exp2((x - peak) * log2 e): on CPU, torch's exp2 kernel is ~3x
            # faster than its exp, and exp was the costliest pass of the loss.
            x.sub_(peak).mul_(_LOG2E).exp2_()
            norm = x.sum(dim=1, keepdim=True)  # (n, 1)
            total += (peak.squeeze(1) + norm.squeeze(1).log() - picked).sum()
            if need_grad:
                x.div_(norm)  # softmax
                x[rows_idx[:n], tc] -= 1.0  # d(sum of losses)/d(logits)
                # Two passes, not torch.mul(..., out=low): an output of another dtype takes
                # torch's unvectorised path, ~30x slower here.
                g = x if x is low[:n] else low[:n].copy_(x)
                torch.mm(g, w, out=grad_h[s : s + n])  # (n, C)
                if gw_chunk is None:
                    grad_w.addmm_(g.t(), hc)  # (V, C)
                else:
                    grad_w += torch.mm(g.t(), hc, out=gw_chunk)
        if need_grad:
            ctx.save_for_backward(grad_h, grad_w)
            ctx.dtypes = (hidden.dtype, weight.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        h_dtype, w_dtype = ctx.dtypes
        return (
            (grad_h * grad_out).to(h_dtype),
            (grad_w * grad_out).to(w_dtype),
            None,
            None,
            None,
            None,
        )


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    target: torch.Tensor,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """``F.cross_entropy(hidden @ weight.T, target, ignore_index=..., reduction=...)``, fused.

    ``hidden`` is (..., C), ``weight`` (V, C) (an LM head or tied embedding), ``target`` (...)
    of class ids or ``ignore_index``. ``reduction`` is ``"mean"`` (over labelled positions)
    or ``"sum"``. ``chunk_rows`` overrides the rows processed at once (default: ~2M logits).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")
    C = hidden.size(-1)
    if weight.dim() != 2 or weight.size(1) != C:
        raise ValueError(f"weight must be (V, {C}), got {tuple(weight.shape)}")
    hidden = hidden.reshape(-1, C)  # (N, C)
    target = target.reshape(-1)  # (N,)
    if hidden.size(0) != target.size(0):
        raise ValueError(f"{hidden.size(0)} hidden rows but {target.size(0)} targets")
    valid = target != ignore_index
    n_valid = valid.sum()
    if not bool(valid.all()):  # keep only labelled rows (the masked-LM case)
        hidden, target = hidden[valid], target[valid]
    device = hidden.device.type
    dtype = (
        torch.get_autocast_dtype(device)
        if torch.is_autocast_enabled(device) and hidden.dtype == torch.float32
        else hidden.dtype
    )
    need_grad = torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad)
    rows = chunk_rows or max(1, _CHUNK_ELEMENTS // weight.size(0))
    with torch.autocast(device, enabled=False):
        total = _LinearCrossEntropy.apply(hidden, weight, target, dtype, need_grad, rows)
    if reduction == "sum":
        return total
    return total / n_valid.clamp(min=1)
