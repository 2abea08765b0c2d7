"""Copying from the prompt: a pointer-generator head for generation on a decoder-only backbone.

A small model fine-tuned for minutes writes fluent but generic text: it cannot yet reproduce
the names and phrases of its prompt through its vocabulary alone. A pointer-generator (See
et al., 2017) lets it copy them. At each target position ``t`` the head mixes the language
model's next-token distribution with a distribution over the prompt's tokens::

    P(w) = (1 - g_t) * softmax(lm_logits_t)(w)  +  g_t * sum_{j : x_j = w} a_tj
    a_tj = softmax_j( lm_logits_t[x_j]  +  h_t · W k_j )      over prompt tokens x_j
    g_t  = sigmoid(v · h_t + b)

* The key of prompt token ``x_j`` is ``k_j = h_{j-1}``, the hidden state that predicted it:
  a state about to produce ``x_j`` in the prompt is matched with a state about to produce
  the next target token, so after copying a word the pointer can move on to the word that
  followed it.
* The first score term is the LM's own logit for ``x_j``; the bilinear term ``W`` starts at
  zero, so an untrained head is the LM's distribution restricted to the prompt's tokens.
* ``b`` starts at ``-1``: about a quarter of the mass is copied until training says otherwise.

The prompt is ``x_0 … x_{P-2} <sep>`` (``P`` = prompt length); ``x_0`` has no key and
``<sep>`` is never copied, so the copyable tokens are ``x_1 … x_{P-2}``.

:class:`CopyHead` holds the parameters and the mixture; :class:`PointerGenerator` wraps a
backbone and its head as a model the core's decoding loop
(:func:`plugformer.inference.decoding.decode`) runs unchanged: greedy, sampling and beam
search all see the mixture's log-probabilities.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from plugformer.inference.decoding import CausalIncremental
from plugformer.lm_task import IGNORE

__all__ = ["CopyHead", "CopyIncremental", "PointerGenerator", "copyable"]


def copyable(mask: torch.Tensor, prompt_length: torch.Tensor) -> torch.Tensor:
    """Which key positions ``j`` (0..T-2) hold a copyable prompt token ``x_{j+1}``: (B, T-1) bool.

    :param mask: (B, T) 1 on real tokens, 0 on padding.
    :param prompt_length: (B,) end of each row's prompt (its ``<sep>`` is at ``end - 1``): the
        prompt length in a right-padded batch, the row width in a left-padded one.
    """
    T = mask.size(1)
    position = torch.arange(1, T, device=mask.device)[None]  # (1, T-1): index of x_j
    inside = position < (prompt_length[:, None] - 1)  # before <sep>
    return inside & mask[:, :-1].bool() & mask[:, 1:].bool()  # (B, T-1)


class CopyHead(nn.Module):
    """The pointer-generator's parameters (``W``, ``v``, ``b``) and its mixture."""

    def __init__(self, d_model: int, gate_bias: float = -1.0) -> None:
        super().__init__()
        self.bilinear = nn.Linear(d_model, d_model, bias=False)  # W, applied to the query
        nn.init.zeros_(self.bilinear.weight)
        self.gate = nn.Linear(d_model, 1)  # v, b
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, gate_bias)

    def context_scores(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """``h_t · W k_j``: queries (B, Tq, C), keys (B, S, C) → (B, Tq, S)."""
        return self.bilinear(queries) @ keys.transpose(1, 2)

    def _parts(
        self,
        queries: torch.Tensor,
        lm_logits: torch.Tensor,
        context: torch.Tensor,
        source: torch.Tensor,
        valid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(log a (N, S), log g (N, 1), log(1 - g) (N, 1)); a row without a copyable token
        has ``log g = -inf`` (it copies nothing)."""
        scores = lm_logits.gather(1, source).float() + context.float()  # (N, S)
        has_source = valid.any(1, keepdim=True)  # (N, 1)
        # rows without a source get finite dummy scores: a softmax of all -inf has NaN gradients
        scores = scores.masked_fill(~valid & has_source, float("-inf"))
        log_attention = scores.log_softmax(-1).masked_fill(~valid, float("-inf"))  # (N, S)
        gate = self.gate(queries).float()  # (N, 1) logit of g
        log_gate = F.logsigmoid(gate).masked_fill(~has_source, float("-inf"))
        log_keep = F.logsigmoid(-gate).masked_fill(~has_source, 0.0)
        return log_attention, log_gate, log_keep

    def log_probs(
        self,
        queries: torch.Tensor,
        lm_logits: torch.Tensor,
        context: torch.Tensor,
        source: torch.Tensor,
        valid: torch.Tensor,
    ) -> torch.Tensor:
        """Log-probabilities (N, V) of the mixture at N positions (decoding, likelihoods).

        :param queries: (N, C) hidden states ``h_t``.
        :param lm_logits: (N, V) the LM's logits there.
        :param context: (N, S) the bilinear scores against the S keys.
        :param source: (N, S) the token each key would copy.
        :param valid: (N, S) which of them are copyable; a row with none copies nothing.
        """
        log_attention, log_gate, log_keep = self._parts(queries, lm_logits, context, source, valid)
        out = F.log_softmax(lm_logits.float(), dim=-1) + log_keep  # (N, V): the generator's part
        # Only the prompt's tokens get copy mass, so the mixture is computed at those S columns
        # alone, not over all V (a decoding step spent a fifth of its time in an (N, V)
        # logaddexp). A token at several positions gets its summed mass at each, and writes the
        # same value back from each.
        copied = torch.zeros_like(out).scatter_add_(1, source, log_attention.exp())  # (N, V)
        mass = copied.gather(1, source)  # (N, S)
        mixed = torch.logaddexp(out.gather(1, source), mass.log() + log_gate)  # (N, S)
        return out.scatter(1, source, mixed)

    def target_log_probs(
        self,
        queries: torch.Tensor,
        lm_logits: torch.Tensor,
        context: torch.Tensor,
        source: torch.Tensor,
        valid: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        """``log P(target)`` (N,) at N positions, without building the (N, V) mixture: the
        training loss. Arguments as :meth:`log_probs`, plus ``targets`` (N,)."""
        log_attention, log_gate, log_keep = self._parts(queries, lm_logits, context, source, valid)
        # -cross_entropy is log_softmax at the target: one fused kernel forward and backward,
        # where gather - logsumexp writes and reads (N, V) buffers three more times
        vocab = -F.cross_entropy(lm_logits.float(), targets, reduction="none")[:, None]  # (N, 1)
        match = source == targets[:, None]  # (N, S): occurrences of the target in the prompt
        found = (match & valid).any(1, keepdim=True)  # (N, 1)
        # as in _parts: rows where the target is not in the prompt get finite dummies
        picked = log_attention.masked_fill(~match, float("-inf")).masked_fill(~found, 0.0)
        copy = picked.logsumexp(-1, keepdim=True).masked_fill(~found, float("-inf"))  # (N, 1)
        return torch.logaddexp(vocab + log_keep, copy + log_gate)[:, 0]

    def sequence_log_probs(
        self,
        backbone: Any,
        hidden: torch.Tensor,
        input_ids: torch.Tensor,
        mask: torch.Tensor,
        prompt_length: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mixture log-probabilities of a right-padded batch: (B, T, V); with ``labels``
        (B, T; -100 where unlabelled), the log-probability (N,) of each of the N labels.

        :param hidden: (B, T, C) the backbone's hidden states of ``input_ids`` (B, T).
        """
        context = self.context_scores(hidden, hidden[:, :-1])  # (B, T, T-1)
        source = input_ids[:, 1:]  # (B, T-1): the token key j copies
        valid = copyable(mask, prompt_length)  # (B, T-1)
        if labels is None:
            B, T, C = hidden.shape
            rows = torch.arange(B, device=hidden.device).repeat_interleave(T)  # (B*T,)
            queries = hidden.reshape(B * T, C)
            out = self.log_probs(
                queries,
                backbone.lm_logits(queries),
                context.reshape(B * T, -1),
                source[rows],
                valid[rows],
            )
            return out.view(B, T, -1)  # (B, T, V)
        positions = labels != IGNORE  # (B, T)
        rows = positions.nonzero()[:, 0]  # (N,) batch row of each labelled position
        queries = hidden[positions]  # (N, C)
        return self.target_log_probs(
            queries,
            backbone.lm_logits(queries),
            context[positions],
            source[rows],
            valid[rows],
            labels[positions],
        )


class CopyIncremental(CausalIncremental):
    """Incremental decoding of the mixture: the prompt's keys are read once, at ``start``."""

    def __init__(self, model: Any, head: CopyHead, prompts: Sequence[Sequence[int]], **kw: Any):
        super().__init__(model, prompts, **kw)
        self.head = head

    def start(self) -> torch.Tensor:
        hidden = self._hidden(self.seq, self.positions)  # (B, T, C)
        self.keys = hidden[:, :-1]  # (B, T-1, C)
        self.source = self.seq[:, 1:]  # (B, T-1)
        # left-padded: the prompt ends at the last column, so every real x_j but <sep> counts
        length = torch.full_like(self.seq[:, 0], self.seq.size(1))  # (B,)
        self.valid = copyable(self.mask, length)  # (B, T-1)
        return self._next_logits(hidden[:, -1])

    def _next_logits(self, last: torch.Tensor) -> torch.Tensor:
        """Log-probabilities (N, V) of the mixture from the last hidden states (N, C)."""
        context = self.head.context_scores(last[:, None], self.keys)[:, 0]  # (N, T-1)
        lm = self.model.lm_logits(last)  # (N, V)
        return self.head.log_probs(last, lm, context, self.source, self.valid)

    def reorder(self, index: torch.Tensor) -> None:
        super().reorder(index)
        self.keys, self.source, self.valid = self.keys[index], self.source[index], self.valid[index]


class PointerGenerator(nn.Module):
    """A backbone and its :class:`CopyHead` as one model for the decoding loop (no training)."""

    def __init__(self, backbone: Any, head: CopyHead) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        yield from self.backbone.parameters(recurse)

    def incremental(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        pad_id: int,
        max_new_tokens: int,
        use_cache: bool = True,
    ) -> CopyIncremental:
        return CopyIncremental(
            self.backbone,
            self.head,
            prompts,
            pad_id=pad_id,
            max_new_tokens=max_new_tokens,
            use_cache=use_cache,
        )
