"""Autoregressive generation: ``generate`` with a :class:`SamplingConfig` (greedy, temperature,
top-k, top-p, repetition penalty, no repeated n-grams, stop on eos or stop strings). Batched prompts are left-padded.

A thin front of :func:`plugformer.inference.decoding.decode`, the one decoding loop that greedy search,
sampling, beam search and plugins' strategies share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from plugformer.inference.decoding import Greedy, Sampling, Strategy, decode, left_pad

__all__ = ["SamplingConfig", "generate", "left_pad"]


@dataclass(frozen=True)
class SamplingConfig:
    max_new_tokens: int = 64
    temperature: float = 0.0
    """0 means greedy (argmax)."""
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float = 1.0
    """> 1 discourages tokens already in the sequence (CTRL-style: divide positive logits)."""
    seed: int | None = None
    min_new_tokens: int = 0
    """``<eos>`` is forbidden before this many new tokens (0: no floor); a ``stop_check`` may
    still end a completion earlier."""
    no_repeat_ngram_size: int = 0
    """> 0: a completion never repeats one of its own n-grams of this size (the prompt's do
    not count)."""

    def __post_init__(self) -> None:
        """Refuse settings that would decode garbage or fail deep inside the sampler, in one
        line naming the setting (``--top-p 95`` meant as 0.95 is a real mistake)."""
        import math

        from plugformer.errors import ConfigError

        def bad(name: str, value: object, expected: str) -> None:
            raise ConfigError(f"sampling: {name} = {value}: expected {expected}")

        if self.max_new_tokens < 1:
            bad("max_new_tokens", self.max_new_tokens, "at least 1")
        if self.min_new_tokens < 0:
            bad("min_new_tokens", self.min_new_tokens, "0 or more")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            bad("temperature", self.temperature, "a finite number >= 0 (0: greedy)")
        if self.top_k is not None and self.top_k < 1:
            bad("top_k", self.top_k, "at least 1 (or unset)")
        if self.top_p is not None and not 0 < self.top_p <= 1:  # False for nan too
            bad("top_p", self.top_p, "0 < top_p <= 1 (or unset)")
        if not math.isfinite(self.repetition_penalty) or self.repetition_penalty <= 0:
            bad("repetition_penalty", self.repetition_penalty, "a finite number > 0 (1: off)")
        if self.no_repeat_ngram_size < 0:
            bad("no_repeat_ngram_size", self.no_repeat_ngram_size, "0 (off) or more")

    def strategy(self) -> Strategy:
        """:class:`Greedy` at temperature 0, else :class:`Sampling`."""
        if self.temperature <= 0:
            return Greedy()
        return Sampling(self.temperature, self.top_k, self.top_p)


def generate(
    model,
    prompts: Sequence[Sequence[int]],
    cfg: SamplingConfig,
    eos_id: int | None,
    pad_id: int = 0,
    stop_check=None,
    use_cache: bool = True,
) -> list[list[int]]:
    """New token ids for each prompt (eos and what follows are not included)."""
    generator = None
    if cfg.seed is not None:
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(cfg.seed)
    results = decode(
        model,
        prompts,
        cfg.strategy(),
        max_new_tokens=cfg.max_new_tokens,
        min_new_tokens=min(cfg.min_new_tokens, cfg.max_new_tokens),
        eos_id=eos_id,
        pad_id=pad_id,
        use_cache=use_cache,
        repetition_penalty=cfg.repetition_penalty,
        no_repeat_ngram_size=cfg.no_repeat_ngram_size,
        stop_check=stop_check,
        generator=generator,
    )
    return [hyps[0].tokens if hyps else [] for hyps in results]
