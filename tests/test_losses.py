"""The fused linear cross-entropy against ``F.cross_entropy`` on materialised logits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from plugformer.training.losses import linear_cross_entropy


def _case(ignore: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(2, 75, 16, generator=g).requires_grad_()  # (B, T, C)
    weight = (torch.randn(300, 16, generator=g) * 0.5).requires_grad_()  # (V, C)
    target = torch.randint(0, 300, (2, 75), generator=g)
    if ignore:
        target[:, ::3] = -100
    return hidden, weight, target


def _grads(loss, *leaves):
    return torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("chunk_rows", [7, 64, None])
def test_matches_cross_entropy_in_fp32(ignore, reduction, chunk_rows):
    hidden, weight, target = _case(ignore)
    ref = F.cross_entropy((hidden @ weight.T).flatten(0, 1), target.flatten(), reduction=reduction)
    ours = linear_cross_entropy(hidden, weight, target, reduction=reduction, chunk_rows=chunk_rows)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(_grads(ours, hidden, weight), _grads(ref, hidden, weight), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_matches_autocast_bf16_within_bf16_rounding():
    hidden, weight, target = _case(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = F.cross_entropy((hidden @ weight.T).float().flatten(0, 1), target.flatten())
        ours = linear_cross_entropy(hidden, weight, target, chunk_rows=32)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=1e-3, atol=1e-3)
    for a, b in zip(_grads(ours, hidden, weight), _grads(ref, hidden, weight), strict=True):
        assert a.dtype == torch.float32  # gradients come back in the parameters' dtype
        assert (a - b).abs().max() <= 0.02 * b.abs().max()


def test_no_grad_gives_the_loss_and_stores_nothing():
    hidden, weight, target = _case(False)
    ref = F.cross_entropy((hidden @ weight.T).flatten(0, 1), target.flatten())
    with torch.no_grad():
        ours = linear_cross_entropy(hidden, weight, target)
    assert not ours.requires_grad
    torch.testing.assert_close(ours, ref.detach(), rtol=1e-5, atol=1e-5)


def test_backward_scales_with_the_upstream_gradient():
    hidden, weight, target = _case(False)
    (g1,) = _grads(linear_cross_entropy(hidden, weight, target), hidden)
    (g3,) = _grads(3.0 * linear_cross_entropy(hidden, weight, target), hidden)
    torch.testing.assert_close(g3, 3.0 * g1)


def test_every_target_ignored_is_zero_not_nan():
    hidden, weight, target = _case(False)
    loss = linear_cross_entropy(hidden, weight, torch.full_like(target, -100))
    assert loss.item() == 0.0


def test_bad_shapes_are_one_clear_error():
    hidden, weight, target = _case(False)
    with pytest.raises(ValueError, match=r"weight must be \(V, 16\)"):
        linear_cross_entropy(hidden, weight.T, target)
    with pytest.raises(ValueError, match="150 hidden rows but 149 targets"):
        linear_cross_entropy(hidden, weight, target.flatten()[:-1])
    with pytest.raises(ValueError, match="reduction"):
        linear_cross_entropy(hidden, weight, target, reduction="none")


def test_training_helpers_choose_measured_fast_paths():
    from plugformer.training.common import adamw, resolve_compile, resolve_precision

    model = torch.nn.Linear(4, 4)
    opt = adamw([{"params": list(model.parameters())}], lr=1e-3)
    assert opt.defaults["fused"] is True
    assert resolve_precision("32") == "32-true"
    assert resolve_precision("bf16-mixed") == "bf16-mixed"
    assert resolve_precision("auto", "cpu") in ("bf16-mixed", "32-true")
    assert resolve_compile("auto", 10) is False  # a short run never pays for compiling
    assert resolve_compile(False, 10_000) is False
    assert resolve_compile(True, 1) is True
