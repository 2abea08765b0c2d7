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


def test_extending_the_context_keeps_the_pretrained_positions_and_reads_past_them() -> None:
    m = model()  # tiny: max_seq_len 64
    x = torch.randint(5, 97, (2, 64))
    before = m.lm_logits(m(x))
    with pytest.raises(ValueError, match="exceeds max_seq_len=64"):
        m(torch.randint(5, 97, (1, 65)))
    m.extend_context(96)
    assert m.max_seq_len == m.config.max_seq_len == 96
    # the first 64 positions rotate by the angles they had: the same logits, bit for bit
    assert torch.equal(m.lm_logits(m(x)), before)
    longer = torch.cat([x, torch.randint(5, 97, (2, 32))], 1)
    assert torch.equal(m.lm_logits(m(longer))[:, :64], before)  # causal: the past is unchanged
    (new,) = generate(m, [longer[0, :90].tolist()], SamplingConfig(max_new_tokens=6), eos_id=None)
    assert len(new) == 6  # the KV cache holds the longer span
    m.extend_context(80)  # shorter than it reads already: nothing to do
    assert m.max_seq_len == 96


def test_learned_positions_refuse_to_extend_the_context() -> None:
    m = model(positions="learned", norm="layernorm")
    with pytest.raises(ValueError, match="only a rotary"):
        m.extend_context(128)
    assert m.max_seq_len == 64


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", ["causal", "padded", "cached"])
def test_explicit_attention_is_sdpa(dtype: torch.dtype, case: str) -> None:
    """The two ways ``ModelConfig.attention`` computes attention agree, forward and backward."""
    import torch.nn.functional as F

    from plugformer.models.gpt import explicit_attention

    torch.manual_seed(0)
    T, L = (5, 12) if case == "cached" else (12, 12)
    q = torch.randn(3, 2, T, 16, dtype=dtype, requires_grad=True)
    k, v = (torch.randn(3, 2, L, 16, dtype=dtype, requires_grad=True) for _ in range(2))
    mask, causal = None, case == "causal"
    if case != "causal":  # boolean, True = may attend; right padding on row 1, causal over L
        mask = torch.ones(3, 1, T, L, dtype=torch.bool).tril(L - T)
        mask[1, ..., 9:] = False
    ours = explicit_attention(q, k, v, mask, causal)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert ours.dtype == dtype and torch.allclose(ours.float(), ref.float(), atol=tol)
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(ours, (q, k, v), g)
    want = torch.autograd.grad(ref, (q, k, v), g)
    for a, b in zip(grads, want, strict=True):
        assert torch.allclose(a.float(), b.float(), atol=5 * tol)


def test_attention_setting_picks_the_kernel_and_keeps_the_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``auto`` takes the explicit product only to train in bfloat16 on a CPU over short
    spans; ``sdpa`` and ``explicit`` force one; every setting gives the same logits."""
    import plugformer.models.gpt as gpt

    calls: list[str] = []
    real = gpt.explicit_attention
    monkeypatch.setattr(gpt, "explicit_attention", lambda *a: calls.append("x") or real(*a))
    x = torch.randint(5, 97, (2, 10))
    logits = {}
    for impl in ("auto", "sdpa", "explicit"):
        m = model(attention=impl)
        logits[impl] = m.lm_logits(m(x))  # eval, float32: auto is sdpa
        with torch.autocast("cpu", dtype=torch.bfloat16):
            m.train()
            m(x).float().sum().backward()
    # tiny has 2 layers: auto's training pass, explicit's evaluation and training passes
    assert len(calls) == 2 + 2 * 2
    assert torch.allclose(logits["auto"], logits["explicit"], atol=1e-5)
    assert torch.equal(logits["auto"], logits["sdpa"])
