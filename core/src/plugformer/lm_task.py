"""``CausalLMTask``: the base of tasks fine-tuned as language modelling on a causal backbone.

Translation (``source <sep> target``) and generation (``prompt → completion``, plain text)
both train the backbone's own LM head on labelled tokens (``-100`` elsewhere): their
features are ``input_ids``, ``labels`` and ``prompt_length``; batching, the empty head, the
forward pass and the loss are the same and live here. A subclass supplies the example and
option models, ``encode`` (setting the labels), ``predict`` (decoding) and the metrics.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from plugformer.tasks import Task
from plugformer.training.losses import linear_cross_entropy
from plugformer.training.objectives import IGNORE

__all__ = ["IGNORE", "CausalLMTask"]


class CausalLMTask(Task):
    """A task whose head is the backbone's LM head; ``check_backbone`` sets ``self.max_len``."""

    requires_causal = True

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Right-pad to the longest feature: ``input_ids``, ``attention_mask``, ``labels`` (B, T)."""
        T = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), T), self.tokenizer.pad_id, dtype=torch.long)
        labels = torch.full((len(features), T), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(features), T), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        prompt_length = torch.tensor([f["prompt_length"] for f in features])  # (B,)
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "labels": labels,
            "prompt_length": prompt_length,
        }

    # ------------------------------------------------------------------ model
    def check_backbone(self, backbone: Any) -> None:
        """Refuse a bidirectional backbone; learn its context length (``max_length`` caps it)."""
        super().check_backbone(backbone)
        self.max_len = self.max_length(backbone)

    def build_head(self, backbone: Any) -> nn.Module:
        """No parameters of its own: the backbone's LM head is the task's head."""
        self.check_backbone(backbone)
        return nn.Module()

    def forward(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """Vocabulary logits (B, T, V).

        No attention mask is passed: in a right-padded batch a causal backbone never lets a
        real token see the padding after it, and the unmasked call takes the fused kernel.
        """
        hidden = backbone(batch["input_ids"])  # (B, T, C)
        return backbone.lm_logits(hidden)  # (B, T, V)

    def label_log_probs(
        self, backbone: Any, head: nn.Module, batch: dict[str, Any]
    ) -> torch.Tensor:
        """``log P(label)`` (N,) of the N labelled tokens, in the order of
        ``batch["labels"] != IGNORE`` (row by row): logits only at those positions, never
        the (B, T, V) tensor of :meth:`forward` (scoring a reference's likelihood)."""
        hidden = backbone(batch["input_ids"])  # (B, T, C)
        positions = batch["labels"] != IGNORE  # (B, T)
        logits = backbone.lm_logits(hidden[positions]).float()  # (N, V)
        return -F.cross_entropy(logits, batch["labels"][positions], reduction="none")  # (N,)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        """Mean cross-entropy over the labelled tokens of the batch."""
        return F.cross_entropy(
            outputs.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE
        )

    def train_loss(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """The same loss, fused: logits only for the labelled positions (the targets, not the
        prompts), a chunk at a time, never the whole (B, T, V) tensor — as pretraining does."""
        lm_head = getattr(backbone, "lm_head", None)
        if not isinstance(lm_head, nn.Linear) or lm_head.bias is not None:
            return super().train_loss(backbone, head, batch)  # a head we cannot fuse
        hidden = backbone(batch["input_ids"])  # (B, T, C)
        return linear_cross_entropy(hidden, lm_head.weight, batch["labels"], ignore_index=IGNORE)
