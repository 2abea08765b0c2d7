"""The native backbone: shapes, padding, KV-cache equivalence, generation."""

from __future__ import annotations

import pytest
import torch

from plugformer.config import ModelConfig
from plugformer.inference.generation import SamplingConfig, generate
from plugformer.models.gpt import GPT

STYLES = [
    {"positions": "rope", "norm": "rmsnorm"},
    {"positions": "learned", "norm": "layernorm", "bias": True},
]


def model(**kw: object) -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(preset="tiny", vocab_size=97, **kw)).eval()


@pytest.mark.parametrize("style", STYLES)
def test_hidden_and_logits_shapes(style: dict) -> None:
    m = model(**style)
    h = m(torch.randint(0, 97, (3, 11)))
    assert h.shape == (3, 11, 64) and m.lm_logits(h).shape == (3, 11, 97)


def test_right_padding_does_not_change_real_positions() -> None:
    m = model()
    x = torch.randint(5, 97, (1, 7))
    padded = torch.cat([x, torch.zeros(1, 3, dtype=torch.long)], 1)
    mask = torch.tensor([[1] * 7 + [0] * 3])
    assert torch.allclose(m(padded, mask)[:, :7], m(x), atol=1e-5)


def test_causality_future_tokens_do_not_leak() -> None:
    m = model()
    x = torch.randint(5, 97, (1, 10))
    y = x.clone()
    y[0, 6:] = 3
    assert torch.allclose(m(x)[:, :6], m(y)[:, :6], atol=1e-6)


def test_bidirectional_encoder_sees_the_future() -> None:
    m = model(causal=False)
    x = torch.randint(5, 97, (1, 10))
    y = x.clone()
    y[0, 9] = 3
    assert not torch.allclose(m(x)[:, 0], m(y)[:, 0])


@pytest.mark.parametrize("style", STYLES)
def test_kv_cache_generation_equals_full_recomputation(style: dict) -> None:
    m = model(**style)
    prompts = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]  # ragged: exercises left padding
    cfg = SamplingConfig(max_new_tokens=15)
    cached = generate(m, prompts, cfg, eos_id=None)
    assert cached == generate(m, prompts, cfg, eos_id=None, use_cache=False)
    assert cached == [generate(m, [p], cfg, eos_id=None)[0] for p in prompts]


def test_sampling_is_reproducible_with_a_seed_and_stops_at_eos() -> None:
    m = model()
    cfg = SamplingConfig(
        max_new_tokens=12, temperature=1.0, top_k=20, top_p=0.9, repetition_penalty=1.2, seed=7
    )
    a = generate(m, [[5, 6, 7]], cfg, eos_id=None)
    assert a == generate(m, [[5, 6, 7]], cfg, eos_id=None)
    first = a[0][0]
    assert generate(m, [[5, 6, 7]], cfg, eos_id=first) == [[]]


def test_too_long_input_is_refused() -> None:
    with pytest.raises(ValueError, match="max_seq_len"):
        model()(torch.zeros(1, 65, dtype=torch.long))
