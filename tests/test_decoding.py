"""The core's decoding strategies, tested once here for every task: greedy, sampling, beam,
the shared loop (budgets, eos, stop checks, n-best), cache = recomputation, the registry."""

from __future__ import annotations

import types

import pytest
import torch

from plugformer import hookimpl, plugins
from plugformer.config import ModelConfig
from plugformer.errors import PlugformerError
from plugformer.inference.decoding import (
    Beam,
    Greedy,
    Sampling,
    Strategy,
    block_repeated_ngrams,
    decode,
    get_strategy,
    mask_disallowed,
    monotonic_copy,
)
from plugformer.models.gpt import GPT

PROMPTS = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]  # ragged: the batch is left-padded


@pytest.fixture(scope="module")
def gpt() -> GPT:
    """A random micro GPT, its weights scaled up so that its choices are peaked and varied."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(preset="tiny", vocab_size=61, max_seq_len=32)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8)
    return model


def tokens(results: list) -> list[list[int]]:
    return [hyps[0].tokens if hyps else [] for hyps in results]


@torch.no_grad()
def argmax_reference(model: GPT, prompt: list[int], n: int) -> list[int]:
    """Greedy by hand: one prompt, the whole sequence recomputed for every token."""
    seq = list(prompt)
    for _ in range(n):
        seq.append(int(model.lm_logits(model(torch.tensor([seq])))[0, -1].argmax()))
    return seq[len(prompt) :]


@torch.no_grad()
def logprob(model: GPT, prompt: list[int], new: list[int]) -> float:
    """Summed log-probability of ``new`` after ``prompt``, from one full forward pass."""
    seq = torch.tensor([prompt + new])
    lp = model.lm_logits(model(seq))[0].float().log_softmax(-1)  # (T, V)
    return float(sum(lp[len(prompt) - 1 + i, t] for i, t in enumerate(new)))


def test_greedy_is_the_argmax_path_for_every_prompt_of_a_ragged_batch(gpt: GPT) -> None:
    out = tokens(decode(gpt, PROMPTS, Greedy(), max_new_tokens=8, eos_id=None))
    assert out == [argmax_reference(gpt, p, 8) for p in PROMPTS]


@pytest.mark.parametrize("strategy", [Greedy(), Beam(3, 0.6), Sampling(1.0, top_k=10)])
def test_cached_decoding_equals_recomputation(gpt: GPT, strategy: Strategy) -> None:
    kwargs = {"max_new_tokens": [5, 9, 7], "eos_id": 3}
    g = [torch.Generator().manual_seed(1) for _ in range(2)]
    cached = tokens(decode(gpt, PROMPTS, strategy, generator=g[0], **kwargs))
    assert cached == tokens(
        decode(gpt, PROMPTS, strategy, use_cache=False, generator=g[1], **kwargs)
    )
    assert all(len(c) <= b for c, b in zip(cached, [5, 9, 7], strict=True))


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_of_width_one_is_greedy(gpt: GPT, length_penalty: float) -> None:
    ref = argmax_reference(gpt, PROMPTS[1], 10)
    stop = next(i for i in range(1, 10) if ref[i] not in ref[:i])
    eos = ref[stop]  # the second prompt ends after ``stop`` tokens
    greedy = decode(gpt, PROMPTS, Greedy(), max_new_tokens=10, eos_id=eos)
    beam = decode(gpt, PROMPTS, Beam(1, length_penalty), max_new_tokens=10, eos_id=eos)
    assert tokens(beam) == tokens(greedy)
    assert tokens(greedy)[1] == ref[:stop]


def test_beam_n_best_are_distinct_ranked_and_scored_honestly(gpt: GPT) -> None:
    alpha = 1.0
    (hyps,) = decode(gpt, [PROMPTS[0]], Beam(4, alpha), max_new_tokens=6, eos_id=None, n_best=4)
    assert len(hyps) == 4 and len({tuple(h.tokens) for h in hyps}) == 4
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    for h in hyps:  # the loop's score is the model's log-probability, length-normalised
        expected = logprob(gpt, PROMPTS[0], h.tokens) / ((5 + len(h.tokens)) / 6) ** alpha
        assert h.score == pytest.approx(expected, abs=1e-4)
    greedy = argmax_reference(gpt, PROMPTS[0], 6)
    assert hyps[0].score >= logprob(gpt, PROMPTS[0], greedy) / (11 / 6) ** alpha - 1e-4


def test_decoding_stops_at_eos_stop_checks_and_the_context(gpt: GPT) -> None:
    first = argmax_reference(gpt, PROMPTS[0], 1)[0]
    for strategy in (Greedy(), Beam(2)):
        assert tokens(decode(gpt, [PROMPTS[0]], strategy, max_new_tokens=5, eos_id=first)) == [[]]
    out = decode(
        gpt, PROMPTS, Greedy(), max_new_tokens=9, eos_id=None, stop_check=lambda t: len(t) == 2
    )
    assert [len(t) for t in tokens(out)] == [2, 2, 2]
    full = [list(range(20, 20 + gpt.max_seq_len))]
    assert tokens(decode(gpt, full, Beam(2), max_new_tokens=5, eos_id=None)) == [[]]
    near = [list(range(20, 20 + gpt.max_seq_len - 2))]  # room for two tokens only
    assert len(tokens(decode(gpt, near, Greedy(), max_new_tokens=5, eos_id=None))[0]) == 2


def test_sampling_reproducible_with_a_seed_and_truncation_to_one_token_is_greedy(gpt: GPT) -> None:
    def sample(strategy: Strategy, seed: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(seed)
        return tokens(decode(gpt, PROMPTS, strategy, max_new_tokens=8, eos_id=None, generator=g))

    s = Sampling(1.5)
    assert sample(s, 7) == sample(s, 7)
    assert sample(s, 7) != sample(s, 8)
    greedy = tokens(decode(gpt, PROMPTS, Greedy(), max_new_tokens=8, eos_id=None))
    assert sample(Sampling(1.0, top_k=1), 3) == greedy
    assert sample(Sampling(1.0, top_p=1e-6), 3) == greedy
    with pytest.raises(ValueError, match="temperature"):
        Sampling(0.0)


def test_repetition_penalty_discourages_repeats(gpt: GPT) -> None:
    plain = tokens(decode(gpt, [[5]], Greedy(), max_new_tokens=20, eos_id=None))[0]
    penal = tokens(
        decode(gpt, [[5]], Greedy(), max_new_tokens=20, eos_id=None, repetition_penalty=100.0)
    )[0]
    assert len(set(penal)) > len(set(plain)) or len(set(plain)) == 20


def _ngrams(toks: list[int], n: int) -> list[tuple[int, ...]]:
    return [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]


@pytest.mark.parametrize("strategy", [Greedy(), Beam(2)], ids=["greedy", "beam"])
def test_min_new_tokens_forbids_the_end_before_each_prompts_floor(
    gpt: GPT, strategy: Strategy
) -> None:
    eos = argmax_reference(gpt, PROMPTS[0], 1)[0]  # the first prompt would end at once
    assert tokens(decode(gpt, [PROMPTS[0]], strategy, max_new_tokens=8, eos_id=eos)) == [[]]
    out = tokens(
        decode(gpt, PROMPTS, strategy, max_new_tokens=8, eos_id=eos, min_new_tokens=[3, 0, 8])
    )
    assert len(out[0]) >= 3 and eos not in out[0][:3]
    assert len(out[2]) == 8 and eos not in out[2]  # floor = budget: runs to the budget
    assert out[1] == tokens(decode(gpt, [PROMPTS[1]], strategy, max_new_tokens=8, eos_id=eos))[0]
    with pytest.raises(ValueError, match="min_new_tokens"):
        decode(gpt, PROMPTS, strategy, max_new_tokens=8, eos_id=eos, min_new_tokens=[1, 2])


def test_block_repeated_ngrams_bans_exactly_the_completing_tokens() -> None:
    logits = torch.zeros(3, 10)
    block_repeated_ngrams(logits, [[1, 2, 3, 1, 2], [4, 4], []], 3)
    assert torch.isinf(logits[0]).nonzero().flatten().tolist() == [3]  # 1 2 3 seen: no "1 2 3"
    assert not torch.isinf(logits[1:]).any()  # [4, 4]: no trigram yet; []: nothing
    bigrams = torch.zeros(1, 10)
    block_repeated_ngrams(bigrams, [[7, 8, 7, 9, 7]], 2)
    assert sorted(torch.isinf(bigrams[0]).nonzero().flatten().tolist()) == [8, 9]


@pytest.mark.parametrize("strategy", [Greedy(), Beam(3)], ids=["greedy", "beam"])
def test_no_repeat_ngram_size_stops_loops(gpt: GPT, strategy: Strategy) -> None:
    plain = tokens(decode(gpt, PROMPTS, strategy, max_new_tokens=24, eos_id=None))
    assert any(len(set(_ngrams(t, 2))) < len(_ngrams(t, 2)) for t in plain)  # it does loop
    blocked = tokens(
        decode(gpt, PROMPTS, strategy, max_new_tokens=24, eos_id=None, no_repeat_ngram_size=2)
    )
    for out in blocked:
        assert len(out) == 24
        assert len(set(_ngrams(out, 2))) == len(_ngrams(out, 2))  # no bigram twice


def _is_subsequence(small: list[int], big: list[int]) -> bool:
    it = iter(big)
    return all(t in it for t in small)  # `in` consumes the iterator up to the match


def test_monotonic_copy_allows_the_source_tokens_after_the_last_copied() -> None:
    allowed = monotonic_copy([5, 6, 7, 6, 8])
    assert allowed([]) == [5, 6, 7, 8]
    assert allowed([6]) == [6, 7, 8]  # matched at its first occurrence: the most left to copy
    assert allowed([6, 6]) == [8]
    assert allowed([6, 6, 8]) == [] and allowed([9]) == []  # used up; not a copy
    logits = torch.zeros(3, 10)
    mask_disallowed(logits, [[1, 2], None, []], keep=0)
    assert torch.isfinite(logits[0]).nonzero().flatten().tolist() == [0, 1, 2]
    assert torch.isfinite(logits[1]).all()  # None: unconstrained
    assert torch.isfinite(logits[2]).nonzero().flatten().tolist() == [0]  # the end stays


@pytest.mark.parametrize("strategy", [Greedy(), Beam(3)], ids=["greedy", "beam"])
def test_allowed_tokens_makes_every_output_a_subsequence_of_its_prompt(
    gpt: GPT, strategy: Strategy
) -> None:
    plain = tokens(decode(gpt, PROMPTS, strategy, max_new_tokens=6, eos_id=None))
    assert not all(_is_subsequence(o, p) for o, p in zip(plain, PROMPTS, strict=True))
    copies = [monotonic_copy(p) for p in PROMPTS]
    out = tokens(
        decode(
            gpt,
            PROMPTS,
            strategy,
            max_new_tokens=6,
            eos_id=0,
            min_new_tokens=6,  # a floor past the source: the constraint still ends it
            allowed_tokens=lambda i, ids: copies[i](ids),
        )
    )
    for o, p in zip(out, PROMPTS, strict=True):
        assert o and _is_subsequence(o, p), (o, p)
    assert len(out[1]) <= 2  # two source tokens: nothing left to copy after them


def test_kv_cache_reorders_in_place_by_index(gpt: GPT) -> None:
    cache = gpt.new_cache(4, 16)
    gpt(torch.randint(5, 61, (4, 6)), cache=cache)
    before = [k[:, :, :6].clone() for k in cache.k]
    ptr = cache.k[0].data_ptr()
    cache.reorder(torch.tensor([3, 1]))
    assert cache.k[0].data_ptr() == ptr and cache.k[0].shape[0] == 2  # same buffer, fewer rows
    assert torch.equal(cache.k[1][:, :, :6], before[1][[3, 1]])
    # a permutation that reads rows already overwritten, in keys and values alike
    cache = gpt.new_cache(3, 16)
    gpt(torch.randint(5, 61, (3, 6)), cache=cache)
    before = [t[:, :, :6].clone() for t in (*cache.k, *cache.v)]
    cache.reorder(torch.tensor([2, 0, 1]))
    for got, old in zip((*cache.k, *cache.v), before, strict=True):
        assert torch.equal(got[:, :, :6], old[[2, 0, 1]])


def test_strategies_come_from_the_registry_and_plugins_add_their_own(gpt: GPT) -> None:
    assert isinstance(get_strategy("beam", beam_size=2), Beam)
    assert isinstance(get_strategy("greedy", beam_size=5), Greedy)

    class Lowest(Greedy):
        """A plugin's strategy: the least likely token."""

        def step(self, step, lprobs, scores, generator=None):
            worst, token = lprobs[:, 0].min(-1)
            return scores[:, :1] + worst[:, None], token[:, None], torch.zeros_like(token)[:, None]

    plugin = types.ModuleType("pt_lowest")

    @hookimpl
    def register_decoding_strategies(register):
        register("lowest", lambda **_: Lowest())

    plugin.register_decoding_strategies = register_decoding_strategies
    plugins.register_plugin(plugin, "lowest")
    out = tokens(decode(gpt, [PROMPTS[0]], get_strategy("lowest"), max_new_tokens=1, eos_id=None))
    with torch.no_grad():
        logits = gpt.lm_logits(gpt(torch.tensor([PROMPTS[0]])))[0, -1]
    assert out == [[int(logits.argmin())]]
    with pytest.raises(PlugformerError, match=r"unknown decoding strategy 'nope'.*lowest"):
        get_strategy("nope")
