"""Heads shared by task bases: pooled classification and per-token classification."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

__all__ = ["PooledHead", "TokenHead", "pool", "resolve_pooling"]

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


class TokenHead(nn.Module):
    """Per-token dropout → linear: hidden (B, T, C) → logits (B, T, K) (tagging, span ends)."""

    def __init__(self, d_model: int, num_outputs: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(d_model, num_outputs)

    def forward(self, hidden: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))  # (B, T, K)
