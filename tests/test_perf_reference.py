"""The performance benchmarks compare like with like: the harness's plain reference loop
(``benchmarks/perf/train.py``) computes the same loss, and takes the same update, as
plugformer's pretraining step on the same batch and weights (tiny shape)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

PERF = Path(__file__).resolve().parents[1] / "benchmarks" / "perf"


@pytest.fixture
def perf_train():
    sys.path.insert(0, str(PERF))
    try:
        import train

        yield train
    finally:
        sys.path.remove(str(PERF))


def test_plain_reference_and_plugformer_compute_the_same_loss(perf_train) -> None:
    from plugformer.config import PretrainConfig
    from plugformer.training.objectives import CausalLM
    from plugformer.training.pretrain import PretrainModule

    torch.manual_seed(0)
    config = PretrainConfig(
        model={"n_layers": 2, "d_model": 32, "n_heads": 2, "max_seq_len": 16, "vocab_size": 97},
        trainer={"precision": "32-true", "compile": False, "max_steps": 1, "batch_size": 4},
    )
    module = PretrainModule(config, CausalLM(), 0, 4.0)
    block = torch.randint(0, 97, (4, 17))
    ours = module._loss(block)
    model = module.model
    x, y = block[:, :-1], block[:, 1:]
    plain = perf_train.reference_loss(perf_train.gpt_logits(model), x, y)
    torch.testing.assert_close(ours, plain, rtol=1e-5, atol=1e-5)

    # The same gradients too: the loops differ only in how they compute them.
    g_ours = torch.autograd.grad(ours, list(model.parameters()))
    g_plain = torch.autograd.grad(plain, list(model.parameters()))
    for a, b in zip(g_ours, g_plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
