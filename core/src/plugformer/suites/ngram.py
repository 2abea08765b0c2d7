"""Held-out bits per byte: of a backbone, and of count-based baselines over the same tokens.

``KneserNey`` is an interpolated Kneser–Ney trigram model (Chen & Goodman 1998, one
discount per order) over token ids, vectorised with numpy: n-grams are packed into int64
keys, counted with ``np.unique`` and looked up with ``np.searchsorted``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["KneserNey", "model_bits_per_byte", "token_stream"]


def token_stream(tokenizer: Any, texts: Sequence[str]) -> tuple[np.ndarray, int]:
    """Token ids of ``texts``, each followed by ``<eos>``; and their UTF-8 byte count (+1 per eos)."""
    ids: list[int] = []
    n_bytes = 0
    for start in range(0, len(texts), 256):
        chunk = list(texts[start : start + 256])
        for text, enc in zip(chunk, tokenizer.encode_batch(chunk), strict=True):
            ids.extend(enc)
            ids.append(tokenizer.eos_id)
            n_bytes += len(text.encode("utf-8")) + 1
    return np.asarray(ids, dtype=np.int64), n_bytes


def _count(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniq, counts = np.unique(keys, return_counts=True)
    return uniq, counts.astype(np.float64)


def _lookup(table: np.ndarray, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """values[table == key] for each key, 0 where absent."""
    if len(table) == 0:
        return np.zeros(len(keys))
    idx = np.searchsorted(table, keys).clip(max=len(table) - 1)
    return np.where(table[idx] == keys, values[idx], 0.0)


class KneserNey:
    """Interpolated Kneser–Ney trigram LM over token ids (discount ``d`` at every order)."""

    def __init__(self, tokens: np.ndarray, vocab_size: int, d: float = 0.75):
        V = self.V = int(vocab_size)
        self.d = d
        t = np.asarray(tokens, dtype=np.int64)
        tri = (t[:-2] * V + t[1:-1]) * V + t[2:]
        # trigram counts, and per-history (u, v) totals and number of distinct continuations
        self.tri_keys, self.tri_c = _count(tri)
        hist = self.tri_keys // V
        self.h_keys, inv = np.unique(hist, return_inverse=True)
        self.h_total = np.bincount(inv, weights=self.tri_c)
        self.h_types = np.bincount(inv).astype(np.float64)
        # bigram continuation counts N1+(. v w): distinct u preceding (v, w)
        vw = self.tri_keys % (V * V)
        self.bi_keys, self.bi_n = _count(vw)
        v_of = self.bi_keys // V
        self.v_keys, inv2 = np.unique(v_of, return_inverse=True)
        self.v_total = np.bincount(inv2, weights=self.bi_n)  # N1+(. v .)
        self.v_types = np.bincount(inv2).astype(np.float64)  # N1+(v .) among continuations
        # unigram continuation counts N1+(. w), add-one smoothed to cover every id
        w_of = self.bi_keys % V
        cont = np.bincount(w_of, minlength=V).astype(np.float64)
        self.p1 = (cont + 1.0) / (cont.sum() + V)

    def log_probs(self, tokens: np.ndarray) -> np.ndarray:
        """Natural-log probability of tokens[2:] given the two before each."""
        V, d = self.V, self.d
        t = np.asarray(tokens, dtype=np.int64)
        u, v, w = t[:-2], t[1:-1], t[2:]
        # order 2: P2(w | v)
        n_vw = _lookup(self.bi_keys, self.bi_n, v * V + w)
        v_total = _lookup(self.v_keys, self.v_total, v)
        v_types = _lookup(self.v_keys, self.v_types, v)
        safe = np.maximum(v_total, 1.0)
        p2 = np.where(
            v_total > 0,
            np.maximum(n_vw - d, 0) / safe + d * v_types / safe * self.p1[w],
            self.p1[w],
        )
        # order 3: P3(w | u, v)
        c_uvw = _lookup(self.tri_keys, self.tri_c, (u * V + v) * V + w)
        h = u * V + v
        h_total = _lookup(self.h_keys, self.h_total, h)
        h_types = _lookup(self.h_keys, self.h_types, h)
        safe = np.maximum(h_total, 1.0)
        p3 = np.where(h_total > 0, np.maximum(c_uvw - d, 0) / safe + d * h_types / safe * p2, p2)
        return np.log(p3)

    def bits_per_byte(self, tokens: np.ndarray, n_bytes: int) -> float:
        # the first two tokens are scored by lower orders: prepend two eos-like contexts
        padded = np.concatenate([np.full(2, tokens[-1] if len(tokens) else 0), tokens])
        return float(-self.log_probs(padded).sum() / math.log(2) / n_bytes)


def model_bits_per_byte(
    model: Any, tokens: np.ndarray, n_bytes: int, batch_size: int = 16
) -> float:
    """Held-out bits/byte of a causal backbone over a token stream.

    Sliding windows of the model's context with a stride of half of it: every token after the
    first window is scored with at least T/2 tokens of left context (the usual way to measure
    a fixed-context LM on a long stream), and every token is scored exactly once.
    """
    import torch
    import torch.nn.functional as F

    T = model.max_seq_len
    stride = max(1, T // 2)
    starts = list(range(0, max(1, len(tokens) - T), stride))
    total, scored = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for b in range(0, len(starts), batch_size):
            group = starts[b : b + batch_size]
            block = torch.from_numpy(np.stack([tokens[s : s + T + 1] for s in group]))  # (B, T+1)
            hidden = model(block[:, :-1])  # (B, T, C)
            # Only the tokens not scored by an earlier window reach the LM head: the first
            # window scores all T, later ones their last `stride`.
            for row, s in enumerate(group):
                first = 0 if s == 0 else T - stride
                logits = model.lm_logits(hidden[row, first:]).float()  # (T - first, V)
                total += float(F.cross_entropy(logits, block[row, first + 1 :], reduction="sum"))
                scored += T - first
    # Scale to the bytes of the scored tokens (the stream's tail beyond the last window is skipped).
    return total / math.log(2) / (n_bytes * scored / max(1, len(tokens)))
