"""Held-out bits per byte: the sliding-window model score and the Kneser–Ney reference."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from plugformer.config import ModelConfig
from plugformer.models.gpt import GPT
from plugformer.suites.ngram import KneserNey, model_bits_per_byte


def _model(T: int = 16) -> GPT:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=50, n_layers=1, d_model=16, n_heads=2, max_seq_len=T)
    return GPT(cfg).eval()


def test_sliding_window_scores_each_token_once_with_half_a_context_at_least():
    model, T = _model(), 16
    tokens = np.random.default_rng(0).integers(0, 50, 16 * 5 + 1)
    # Brute force: window starts 0, 8, 16, ...; the first scores all T, later ones the last T/2.
    total, scored = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(tokens) - T, T // 2):
            block = torch.from_numpy(tokens[s : s + T + 1])[None]
            nll = F.cross_entropy(
                model.lm_logits(model(block[:, :-1]))[0], block[0, 1:], reduction="none"
            )
            first = 0 if s == 0 else T // 2
            total += float(nll[first:].sum())
            scored += T - first
    n_bytes = 4 * len(tokens)
    expected = total / math.log(2) / (n_bytes * scored / len(tokens))
    got = model_bits_per_byte(model, tokens, n_bytes, batch_size=3)
    assert math.isclose(got, expected, rel_tol=1e-6)
    assert scored == len(tokens) - 1  # every token after the first is scored exactly once here


def test_kneser_ney_beats_unigram_on_a_repetitive_stream_and_normalises():
    rng = np.random.default_rng(0)
    phrase = rng.integers(0, 40, 12)
    train = np.concatenate([phrase] * 50 + [rng.integers(0, 40, 200)])
    test = np.concatenate([phrase] * 5)
    kn = KneserNey(train, 40)
    counts = np.bincount(train, minlength=40) + 1.0
    unigram = float(-np.log2(counts / counts.sum())[test].sum() / len(test))
    assert kn.bits_per_byte(test, len(test)) < 0.5 * unigram
    # A distribution over the vocabulary in every context: probabilities sum to one.
    ctx = np.array([phrase[0], phrase[1]])
    probs = [math.exp(kn.log_probs(np.concatenate([ctx, [w]]))[-1]) for w in range(40)]
    assert math.isclose(sum(probs), 1.0, rel_tol=1e-6)
