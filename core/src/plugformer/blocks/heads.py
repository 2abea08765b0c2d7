"""Heads shared by task bases: pooled classification and per-token classification, and the
start of a pooled head from a causal LM's own predictions of label words."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

__all__ = ["PooledHead", "TokenHead", "init_from_lm_head", "pool", "resolve_pooling"]

Pooling = Literal["auto", "last", "mean"]


def resolve_pooling(pooling: str, backbone: Any) -> str:
    """``auto`` → ``last`` on a causal backbone (the final token has seen all), else ``mean``."""
    if pooling == "auto":
        return "last" if getattr(backbone, "causal", True) else "mean"
    return pooling


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """hidden (B, T, C), right-padded mask (B, T) → (B, C): the ``last`` real token or the ``mean``."""
    if how == "last":
        last = mask.sum(dim=1) - 1  # (B,)
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]  # (B, C)
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)  # (B, C)


class PooledHead(nn.Module):
    """Pooled hidden states → dropout → linear: hidden (B, T, C) → logits (B, K)."""

    def __init__(self, d_model: int, num_labels: int, pooling: str, dropout: float) -> None:
        super().__init__()
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, num_labels)

    def forward(self, hidden: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        pooled = pool(hidden, batch["attention_mask"], self.pooling)  # (B, C)
        return self.classifier(self.dropout(pooled))  # (B, K)


@torch.no_grad()
def init_from_lm_head(head: PooledHead, backbone: Any, token_ids: list[int]) -> None:
    """Start ``head``'s classifier as the backbone's LM head restricted to ``token_ids``.

    Row k of the linear layer becomes the LM head's row of ``token_ids[k]`` (and its bias),
    so at step 0 the logits are exactly the backbone's next-token logits of those tokens at
    the pooled position. The rows are read through ``backbone.lm_logits`` (any affine head,
    tied or not): the logits of the zero vector are the bias, those of the unit vectors the
    weights. A head that is not affine is refused rather than approximated.
    """
    d = head.classifier.in_features
    param = next(backbone.parameters())
    probe = torch.cat([torch.zeros(1, d), torch.eye(d)]).to(param.device, param.dtype)
    out = backbone.lm_logits(probe.unsqueeze(0)).float()[0][:, token_ids]  # (1 + d, K)
    bias, weight = out[0], (out[1:] - out[0]).T  # (K,), (K, d)
    check = torch.randn(3, d, generator=torch.Generator().manual_seed(0))
    want = backbone.lm_logits(check.to(param.device, param.dtype).unsqueeze(0)).float()[0]
    got = check.to(weight.device) @ weight.T + bias  # (3, K)
    if not torch.allclose(got, want[:, token_ids], rtol=1e-3, atol=1e-3):
        raise ValueError("the backbone's lm_logits is not an affine map of the hidden state")
    head.classifier.weight.copy_(weight.to(head.classifier.weight.dtype))
    head.classifier.bias.copy_(bias.to(head.classifier.bias.dtype))


class TokenHead(nn.Module):
    """Per-token dropout → linear: hidden (B, T, C) → logits (B, T, K) (tagging, span ends)."""

    def __init__(self, d_model: int, num_outputs: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, num_outputs)

    def forward(self, hidden: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))  # (B, T, K)
