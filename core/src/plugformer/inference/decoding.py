"""Decoding strategies behind one per-step interface, and the one loop that runs them all.

As in fairseq (``Search.step``), a strategy only chooses candidates for one step; the loop
(:func:`decode`) owns the model, the cache, the bookkeeping of hypotheses and stopping.
Every generative task (translation, generation, a plugin's) decodes through it:

* :class:`Greedy` — the most likely token.
* :class:`Sampling` — temperature, top-k, top-p (nucleus) sampling.
* :class:`Beam` — beam search with a GNMT length penalty and n-best output.
* anything registered through the ``register_decoding_strategies`` hook
  (:func:`get_strategy` builds one by name).

The model side is an :class:`Incremental` decoder: ``start()`` reads the prompts and returns
the logits of the first new token, ``step(tokens)`` feeds one token per row, ``reorder(index)``
keeps and reorders rows (beams that survive; prompts that are finished are dropped). A
backbone family that can generate either meets the causal decoding surface
(``forward(ids, mask, cache, positions)``, ``lm_logits``, ``new_cache``: the native GPT and
``hf`` decoders) or provides ``backbone.incremental(prompts, ...)`` itself (the
encoder–decoder family).

The search follows fairseq: at each step a strategy proposes candidates per prompt, ranked
best first; an end-of-sequence among the first ``K`` (beam width) completes a hypothesis, and
the first ``K`` other candidates become the next beams. A prompt is finished when ``K``
hypotheses are complete or its token budget is spent (live beams then complete as they
stand). With ``K = 1`` beam search is greedy decoding, whatever the length penalty.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

__all__ = [
    "Beam",
    "CausalIncremental",
    "Greedy",
    "Hypothesis",
    "Incremental",
    "Sampling",
    "Strategy",
    "block_repeated_ngrams",
    "decode",
    "get_strategy",
    "gnmt_length_penalty",
    "left_pad",
    "mask_disallowed",
    "monotonic_copy",
    "start_incremental",
]


# --------------------------------------------------------------------------- strategies


class Strategy:
    """One step of a search. Subclasses set ``beam_size`` and implement :meth:`step`."""

    beam_size: int = 1

    def step(
        self,
        step: int,
        lprobs: torch.Tensor,
        scores: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Candidates for the next token of each prompt, best first.

        :param step: 0 for the first new token.
        :param lprobs: (n, K, V) log-probabilities of the next token of each live beam.
        :param scores: (n, K) summed log-probabilities of the beams so far (``-inf``: no beam).
        :returns: (scores, tokens, beams), each (n, C) with ``C >= K``: the summed score of
            each candidate, its token and the beam (0..K-1) it extends.
        """
        raise NotImplementedError

    def final_score(self, score: float, length: int) -> float:
        """The score a complete hypothesis of ``length`` new tokens is ranked by."""
        return score


@dataclass
class Greedy(Strategy):
    """The most likely next token (beam width 1)."""

    def step(self, step, lprobs, scores, generator=None):
        best, token = lprobs[:, 0].max(-1)  # (n,) each
        return (scores[:, :1] + best[:, None]), token[:, None], torch.zeros_like(token)[:, None]


@dataclass
class Sampling(Strategy):
    """A token drawn from the (tempered, truncated) distribution; width 1."""

    temperature: float = 1.0
    """Divides the log-probabilities; must be > 0 (0 would be :class:`Greedy`)."""
    top_k: int | None = None
    """Keep only the ``top_k`` most likely tokens."""
    top_p: float | None = None
    """Keep the smallest set of most likely tokens whose probability reaches ``top_p``."""

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ValueError(f"sampling temperature must be > 0, got {self.temperature}")

    def step(self, step, lprobs, scores, generator=None):
        lp = lprobs[:, 0]  # (n, V)
        logits = lp / self.temperature
        if self.top_k:
            kth = torch.topk(logits, min(self.top_k, logits.size(-1))).values[:, -1:]  # (n, 1)
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p is not None and self.top_p < 1.0:
            sorted_logits, order = logits.sort(-1, descending=True)  # (n, V)
            probs = sorted_logits.softmax(-1)
            drop = probs.cumsum(-1) - probs > self.top_p  # keep the smallest set reaching top_p
            sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
            logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
        token = torch.multinomial(logits.softmax(-1), 1, generator=generator)  # (n, 1)
        return scores[:, :1] + lp.gather(1, token), token, torch.zeros_like(token)


def gnmt_length_penalty(length: int, alpha: float) -> float:
    """GNMT's length normaliser ``((5 + length) / 6) ** alpha`` (Wu et al. 2016)."""
    return ((5 + length) / 6) ** alpha


@dataclass
class Beam(Strategy):
    """Beam search: the ``2K`` best continuations of a prompt's ``K`` beams each step.

    A hypothesis of ``L`` new tokens (its end-of-sequence included) with summed log-probability
    ``s`` ranks by ``s / ((5 + L) / 6) ** length_penalty``: 0 ranks by raw log-probability
    (short hypotheses win), larger values favour longer ones.
    """

    beam_size: int = 4
    length_penalty: float = 0.6

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")

    def step(self, step, lprobs, scores, generator=None):
        n, K, V = lprobs.shape
        candidates = (scores[:, :, None] + lprobs).view(n, K * V)  # (n, K*V)
        top, index = candidates.topk(min(2 * K, K * V), dim=1)  # (n, 2K)
        return top, index % V, torch.div(index, V, rounding_mode="floor")

    def final_score(self, score: float, length: int) -> float:
        return score / gnmt_length_penalty(length, self.length_penalty)


def get_strategy(name: str, **options: Any) -> Strategy:
    """The strategy registered as ``name`` (``greedy``, ``sample``, ``beam``, a plugin's)."""
    from plugformer.errors import PlugformerError
    from plugformer.plugin_registries import decoding_strategies

    registry = decoding_strategies()
    if name not in registry:
        raise PlugformerError(
            f"unknown decoding strategy {name!r} (installed: {', '.join(registry.names())})"
        )
    return registry.get(name)(**options)


# --------------------------------------------------------------------------- model side


class Incremental(Protocol):
    """A model decoding a batch of prompts one token per row at a time."""

    room: int
    """New tokens the model's context leaves after the longest prompt."""

    def start(self) -> torch.Tensor:
        """Read the prompts; logits (B, V) of each prompt's first new token."""
        ...

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Feed ``tokens`` (N,), one per row; logits (N, V) of the next token."""
        ...

    def reorder(self, index: torch.Tensor) -> None:
        """Row ``i`` becomes old row ``index[i]`` (N',): beams reordered, finished rows dropped."""
        ...


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu"):
    """(ids, mask, positions), each (B, T): prompts right-aligned so new tokens line up."""
    T = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), T), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), T), dtype=torch.long, device=device)
    for i, p in enumerate(prompts):
        if len(p):
            ids[i, T - len(p) :] = torch.tensor(list(p), dtype=torch.long, device=device)
            mask[i, T - len(p) :] = 1
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    return ids, mask, positions


class CausalIncremental:
    """Incremental decoding of a decoder-only backbone over left-padded prompts.

    With ``use_cache`` the backbone's KV cache holds the past (reordered by index, in place);
    without, every step recomputes the whole sequence (the reference the cache must equal).
    """

    def __init__(
        self,
        model: Any,
        prompts: Sequence[Sequence[int]],
        *,
        pad_id: int,
        max_new_tokens: int,
        use_cache: bool = True,
    ) -> None:
        self.model = model
        device = next(model.parameters()).device
        self.seq, self.mask, self.positions = left_pad(prompts, pad_id, device)  # (B, T) each
        T = self.seq.size(1)
        self.room = model.max_seq_len - T
        self.padded = bool((self.mask == 0).any())
        self.cache = (
            model.new_cache(len(prompts), T + max(0, min(max_new_tokens, self.room)))
            if use_cache
            else None
        )

    def _hidden(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Hidden states (N, L, C) of ``ids``; mask and positions only where rows are padded."""
        p = self.padded
        return self.model(ids, self.mask if p else None, self.cache, positions if p else None)

    def _next_logits(self, last: torch.Tensor) -> torch.Tensor:
        """Logits (N, V) of the next token from the last hidden states (N, C)."""
        return self.model.lm_logits(last)

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self._next_logits(self._hidden(ids, positions)[:, -1])  # (N, V)

    def start(self) -> torch.Tensor:
        return self._forward(self.seq, self.positions)

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens[:, None]  # (N, 1)
        self.seq = torch.cat([self.seq, tokens], dim=1)  # (N, L)
        self.mask = torch.cat([self.mask, torch.ones_like(tokens)], dim=1)  # (N, L)
        if self.cache is not None:
            return self._forward(tokens, self.mask.sum(1, keepdim=True) - 1)  # positions (N, 1)
        return self._forward(self.seq, (self.mask.cumsum(1) - 1).clamp(min=0))

    def reorder(self, index: torch.Tensor) -> None:
        self.seq, self.mask = self.seq[index], self.mask[index]
        if self.cache is not None:
            self.cache.reorder(index)


def start_incremental(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    pad_id: int,
    max_new_tokens: int,
    use_cache: bool = True,
) -> Incremental:
    """The model's own incremental decoder (``model.incremental``), else :class:`CausalIncremental`."""
    own = getattr(model, "incremental", None)
    if own is not None:
        return own(prompts, pad_id=pad_id, max_new_tokens=max_new_tokens, use_cache=use_cache)
    return CausalIncremental(
        model, prompts, pad_id=pad_id, max_new_tokens=max_new_tokens, use_cache=use_cache
    )


# --------------------------------------------------------------------------- the loop


@dataclass
class Hypothesis:
    """A complete hypothesis: its new tokens (end-of-sequence excluded) and final score."""

    tokens: list[int]
    score: float


def block_repeated_ngrams(logits: torch.Tensor, hyps: Sequence[Sequence[int]], n: int) -> None:
    """In place: ``-inf`` for every token that would make row ``r`` of ``logits`` (N, V) repeat
    an ``n``-gram of its own new tokens ``hyps[r]`` (fairseq's ``--no-repeat-ngram-size``).

    Only the new tokens count, not the prompt: a summary or translation may still copy any
    phrase of its source, but no longer loops on its own (``Trump's Trump's Trump's``).
    """
    rows: list[int] = []
    cols: list[int] = []
    for r, toks in enumerate(hyps):
        prefix = list(toks[len(toks) - n + 1 :]) if n > 1 else []
        for i in range(len(toks) - n + 1):  # every n-gram so far whose head is the prefix
            if list(toks[i : i + n - 1]) == prefix:
                rows.append(r)
                cols.append(toks[i + n - 1])
    if rows:
        logits[rows, cols] = float("-inf")


def monotonic_copy(source: Sequence[int]) -> Callable[[Sequence[int]], list[int]]:
    """The constraint of extractive (compressive) decoding: each new token is a token of
    ``source`` after the last one copied, so an output is a subsequence of the source,
    words skipped but never reordered or invented (sentence compression, as deletion-based
    compressors and extractive summarisers do).

    Returns ``allowed(tokens) -> ids``: the tokens that may follow ``tokens``, the new tokens
    so far. Each copied token is matched at its first occurrence after the previous match
    (the greedy match leaves the most of the source to copy from); an empty list once the
    source is used up (only the end of sequence is left).
    """
    src = list(source)

    def allowed(tokens: Sequence[int]) -> list[int]:
        at = -1  # position in the source of the last token copied
        for t in tokens:
            try:
                at = src.index(t, at + 1)
            except ValueError:  # not a copy (forced by another constraint): nothing follows
                return []
        return sorted(set(src[at + 1 :]))

    return allowed


def mask_disallowed(
    logits: torch.Tensor, allowed: Sequence[Sequence[int] | None], keep: int | None
) -> None:
    """In place: ``-inf`` in row ``r`` of ``logits`` (N, V) for every token outside
    ``allowed[r]`` (``None``: no constraint on the row) except ``keep`` (the end of sequence,
    which a constraint never forbids)."""
    rows = [r for r, ids in enumerate(allowed) if ids is not None]
    if not rows:
        return
    mask = torch.full((len(rows), logits.shape[1]), float("-inf"), device=logits.device)
    at = [i for i, r in enumerate(rows) for _ in range(len(allowed[r]) + (keep is not None))]
    ids = [t for r in rows for t in [*allowed[r], *([keep] if keep is not None else [])]]
    mask[at, ids] = 0.0  # (R, V): 0 where allowed
    logits[rows] += mask


def _penalise(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty: divide positive logits of seen tokens, multiply negative ones."""
    picked = logits.gather(1, seen)
    picked = torch.where(picked > 0, picked / penalty, picked * penalty)
    return logits.scatter(1, seen, picked)


@torch.inference_mode()
def decode(
    model: Any,
    prompts: Sequence[Sequence[int]],
    strategy: Strategy,
    *,
    max_new_tokens: int | Sequence[int],
    eos_id: int | None,
    min_new_tokens: int | Sequence[int] = 0,
    pad_id: int = 0,
    use_cache: bool = True,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    stop_check: Callable[[list[int]], bool] | None = None,
    n_best: int = 1,
    generator: torch.Generator | None = None,
    allowed_tokens: Callable[[int, list[int]], Sequence[int] | None] | None = None,
) -> list[list[Hypothesis]]:
    """The ``n_best`` best complete hypotheses of each prompt, best first.

    :param max_new_tokens: one budget for all prompts or one per prompt (capped by the context).
    :param min_new_tokens: one floor for all prompts or one per prompt: ``eos_id`` is forbidden
        before that many new tokens (fairseq's ``--min-len``, transformers' ``min_new_tokens``).
    :param stop_check: called with a hypothesis's tokens after each new one; True completes it.
    :param repetition_penalty: > 1 discourages tokens already in the sequence (prompt included).
    :param no_repeat_ngram_size: > 0 forbids a hypothesis to repeat any of its own n-grams of
        this size (:func:`block_repeated_ngrams`; the prompt is not counted).
    :param allowed_tokens: ``allowed_tokens(i, tokens)`` names the tokens that may follow the
        new ``tokens`` of prompt ``i`` (``None``: any), as transformers'
        ``prefix_allowed_tokens_fn``; ``eos_id`` stays allowed (:func:`monotonic_copy` is
        one such constraint).
    """
    B, K = len(prompts), strategy.beam_size
    wanted = [max_new_tokens] * B if isinstance(max_new_tokens, int) else list(max_new_tokens)
    if len(wanted) != B:
        raise ValueError("max_new_tokens must be one value or one per prompt")
    floors = [min_new_tokens] * B if isinstance(min_new_tokens, int) else list(min_new_tokens)
    if len(floors) != B:
        raise ValueError("min_new_tokens must be one value or one per prompt")
    if not B:
        return []
    inc = start_incremental(
        model, prompts, pad_id=pad_id, max_new_tokens=max(wanted), use_cache=use_cache
    )
    budgets = [min(w, inc.room) for w in wanted]
    if max(budgets) < 1:
        return [[] for _ in range(B)]
    logits = inc.start()  # (B, V)
    device = logits.device
    if K > 1:
        rows = torch.arange(B, device=device).repeat_interleave(K)  # (B*K,)
        inc.reorder(rows)
        logits = logits[rows]
    seen = None
    if repetition_penalty != 1.0:
        seen = left_pad(prompts, pad_id, device)[0].repeat_interleave(K, 0)  # (B*K, T)
    # All K beams of a prompt start identical: only the first is live, or the top-K would repeat.
    scores = torch.full((B, K), float("-inf"), device=device)  # (B, K) summed log-probs
    scores[:, 0] = 0.0
    active = list(range(B))  # prompt of each group of K rows
    new: list[list[int]] = [[] for _ in range(B * K)]  # tokens so far of each row
    done: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]

    for step in range(max(budgets)):
        n, length = len(active), step + 1
        logits = logits.float()
        if seen is not None:
            logits = _penalise(logits, seen, repetition_penalty)
        if no_repeat_ngram_size > 0:
            block_repeated_ngrams(logits, new, no_repeat_ngram_size)  # this step's own tensor
        if allowed_tokens is not None:
            mask_disallowed(
                logits, [allowed_tokens(active[r // K], new[r]) for r in range(n * K)], eos_id
            )
        if eos_id is not None:
            early = [g * K + k for g, p in enumerate(active) if step < floors[p] for k in range(K)]
            if early:
                logits[early, eos_id] = float("-inf")
            if allowed_tokens is not None:  # a constraint may leave only the end, floor or not
                logits[torch.isneginf(logits).all(dim=-1), eos_id] = 0.0
        lprobs = torch.log_softmax(logits, dim=-1).view(n, K, -1)  # (n, K, V)
        cand_scores, cand_tokens, cand_beams = strategy.step(step, lprobs, scores, generator)
        c_scores, c_tokens, c_beams = (
            cand_scores.tolist(),
            cand_tokens.tolist(),
            cand_beams.tolist(),
        )
        keep, index, tokens, next_scores, next_new = [], [], [], [], []
        for g, prompt in enumerate(active):
            live: list[tuple[int, int, float, list[int]]] = []  # (row, token, score, tokens)
            taken = 0  # non-eos candidates used (at most K)
            for j, (s, tok, beam) in enumerate(
                zip(c_scores[g], c_tokens[g], c_beams[g], strict=True)
            ):
                if s == float("-inf"):
                    continue
                row = g * K + beam
                if tok == eos_id:
                    if j < K:
                        done[prompt].append((strategy.final_score(s, length), new[row]))
                    continue
                if taken == K:
                    break
                taken += 1
                hyp = [*new[row], tok]
                if length >= budgets[prompt] or (stop_check is not None and stop_check(hyp)):
                    done[prompt].append((strategy.final_score(s, length), hyp))
                else:
                    live.append((row, tok, s, hyp))
            if len(done[prompt]) >= K or length >= budgets[prompt] or not live:
                continue
            while len(live) < K:  # fewer live candidates than beams: pad with dead beams
                live.append((live[0][0], live[0][1], float("-inf"), live[0][3]))
            keep.append(prompt)
            for row, tok, s, hyp in live:
                index.append(row)
                tokens.append(tok)
                next_scores.append(s)
                next_new.append(hyp)
        if not keep:
            break
        idx = torch.tensor(index, device=device)  # (n'*K,) old row of each new row
        tok_t = torch.tensor(tokens, device=device)  # (n'*K,)
        if index != list(range(n * K)):
            inc.reorder(idx)
            if seen is not None:
                seen = seen[idx]
        if seen is not None:
            seen = torch.cat([seen, tok_t[:, None]], dim=1)  # (n'*K, T+step+1)
        active, new = keep, next_new
        scores = torch.tensor(next_scores, device=device).view(len(keep), K)  # (n', K)
        logits = inc.step(tok_t)  # (n'*K, V)

    out = []
    for hyps in done:
        ranked = sorted(hyps, key=lambda h: -h[0])[:n_best]
        out.append([Hypothesis(tokens, score) for score, tokens in ranked])
    return out
