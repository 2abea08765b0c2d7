"""Inference precision (``plugformer.inference.quantize``): int8 and bf16 stay close to fp32, the setting
round-trips through a task checkpoint, and a bad value is one line.

Tolerances, on the session's micro backbone (2 layers, width 32, 30 pretraining steps) scoring
its own corpus teacher-forced: max abs logit difference from fp32 ≤ ``INT8_MAX_ABS`` (int8) /
``BF16_MAX_ABS`` (bf16), top-1 agreement with fp32 ≥ ``INT8_TOP1`` / ``BF16_TOP1``, and greedy
continuations that share their first tokens with fp32's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from plugformer.errors import ConfigError

INT8_MAX_ABS, INT8_TOP1 = 0.1, 0.95  # measured 0.017 and 1.00 (logit std 2.3)
BF16_MAX_ABS, BF16_TOP1 = 0.1, 0.95  # measured 0.021 and 1.00


def _logits(model, ids: torch.Tensor, precision: str) -> torch.Tensor:
    from plugformer.inference.quantize import autocast

    with torch.inference_mode(), autocast(precision):
        return model.lm_logits(model(ids)).float()


@pytest.mark.parametrize(
    "precision,max_abs,top1", [("int8", INT8_MAX_ABS, INT8_TOP1), ("bf16", BF16_MAX_ABS, BF16_TOP1)]
)
def test_logits_and_greedy_decoding_close_to_fp32(
    micro_checkpoint: Path, precision: str, max_abs: float, top1: float
) -> None:
    import plugformer
    from plugformer.inference.generation import SamplingConfig, generate
    from plugformer.inference.quantize import autocast

    ref = plugformer.load(micro_checkpoint)
    low = plugformer.load(micro_checkpoint, precision=precision)
    text = "It is a truth universally acknowledged, that a single man in possession of a good"
    ids = torch.tensor([ref.tokenizer.encode(text)[:32]] * 2)
    fp32, other = _logits(ref.model, ids, "fp32"), _logits(low.model, ids, precision)
    diff = (fp32 - other).abs().max().item()
    agree = (fp32.argmax(-1) == other.argmax(-1)).float().mean().item()
    assert diff <= max_abs, f"{precision}: max abs logit diff {diff:.3f} > {max_abs}"
    assert agree >= top1, f"{precision}: top-1 agreement {agree:.2f} < {top1}"

    prompts = [ids[0, :8].tolist(), ids[0, :3].tolist()]
    cfg = SamplingConfig(max_new_tokens=12)
    with torch.inference_mode():
        want = generate(ref.model, prompts, cfg, eos_id=None)
        with autocast(precision):
            got = generate(low.model, prompts, cfg, eos_id=None)
    assert all(len(g) == 12 for g in got)
    assert [g[:4] for g in got] == [w[:4] for w in want]


def test_int8_quantises_every_linear_and_leaves_the_source_model(micro_checkpoint: Path) -> None:
    from torch import nn

    import plugformer
    from plugformer.inference.quantize import prepare

    loaded = plugformer.load(micro_checkpoint)
    q = prepare(loaded.model, "int8")
    assert not any(type(m) is nn.Linear for m in q.modules())
    assert any(type(m) is nn.Linear for m in loaded.model.modules())  # a copy, not in place
    assert q.inference_precision == "int8"


def test_int8_calls_torch_aos_kernel_directly_with_the_same_outputs() -> None:
    """``Int8Linear`` runs ``torch.ao``'s packed weight through the same kernel: outputs
    equal to the bit, for any leading dimensions."""
    from torch import nn
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    from plugformer.inference.layout import Int8Linear
    from plugformer.inference.quantize import prepare

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8, bias=False))
    x = torch.randn(3, 5, 16)  # (B, T, C)
    fast = prepare(model, "int8")
    assert [type(m) for m in (fast[0], fast[2])] == [Int8Linear, Int8Linear]
    stock = [m.quantized for m in (fast[0], fast[2])]  # the torch.ao modules they call
    assert all(type(m) is DynamicQuantizedLinear for m in stock)
    with torch.inference_mode():
        want = stock[1](torch.relu(stock[0](x)))
        assert torch.equal(fast(x), want)
    assert type(model[0]) is nn.Linear  # the source model is left as it was


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.ao's notice (the reference)
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_swiglu_fused_for_inference_computes_the_same_function(precision: str) -> None:
    """``prepare`` fuses the native MLP's gate and up projections (one product per step): the
    prepared model has ``gate_up`` and no ``gate``/``up``, and its logits are the unfused
    model's under the same precision (fp32: to rounding; int8: per-channel scales are per
    output row, so stacking rows quantises each weight exactly as before)."""
    from plugformer.config import ModelConfig
    from plugformer.inference.quantize import prepare
    from plugformer.models.gpt import GPT

    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layers=2, d_model=32, n_heads=2, max_seq_len=16, vocab_size=64))
    ids = torch.randint(0, 64, (2, 9))
    unfused = model.blocks[0].mlp
    with torch.inference_mode():
        if precision == "int8":  # the reference: torch.ao's modules on the unfused model
            from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

            ref = quantize_dynamic(
                model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
            )
            want = ref.lm_logits(ref(ids))
        else:
            want = model.lm_logits(model(ids))
        fast = prepare(model, precision)
        got = fast.lm_logits(fast(ids))
    mlp = fast.blocks[0].mlp
    assert mlp.gate_up is not None and not hasattr(mlp, "gate") and not hasattr(mlp, "up")
    if precision == "int8":
        assert unfused.gate_up is None and hasattr(unfused, "gate")  # the caller's copy kept
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_fp32_layout_computes_the_same_function(micro_checkpoint: Path) -> None:
    """fp32 inference holds every linear weight in a fast layout (oneDNN-packed on a CPU
    that has it, else transposed): same logits and greedy tokens, ``weight`` still readable
    as (out, in), the tied embedding untouched."""
    from torch import nn

    import plugformer
    from plugformer.inference.generation import SamplingConfig, generate
    from plugformer.inference.layout import (
        InferenceLinear,
        PackedLinear,
        onednn_linear_available,
    )

    ref = plugformer.load(micro_checkpoint)
    fast = plugformer.load(micro_checkpoint, precision="fp32")
    layout = PackedLinear if onednn_linear_available() else InferenceLinear
    swapped = [m for m in fast.model.modules() if type(m) is layout]
    assert swapped and not any(type(m) is nn.Linear for m in fast.model.modules())
    torch.testing.assert_close(fast.model.lm_head.weight, ref.model.lm_head.weight)  # (V, C)
    assert torch.equal(fast.model.wte.weight, ref.model.wte.weight)
    ids = torch.tensor([ref.tokenizer.encode("It is a truth universally acknowledged")[:16]] * 3)
    torch.testing.assert_close(
        _logits(fast.model, ids, "fp32"), _logits(ref.model, ids, "fp32"), rtol=1e-5, atol=1e-5
    )
    cfg = SamplingConfig(max_new_tokens=10)
    with torch.inference_mode():
        prompts = [ids[0, :6].tolist(), ids[0, :2].tolist()]  # left-padded batch
        assert generate(fast.model, prompts, cfg, None) == generate(ref.model, prompts, cfg, None)


@pytest.mark.parametrize("layout", ["transposed", "packed"])
def test_each_fp32_layout_is_nn_linears_function(layout: str) -> None:
    """Both layouts compute ``nn.Linear``'s function for any leading dimensions, with and
    without bias, keep ``weight`` readable as (out, in), and survive ``copy.deepcopy``."""
    import copy

    from torch import nn

    from plugformer.inference.layout import (
        InferenceLinear,
        PackedLinear,
        onednn_linear_available,
        transpose_linears,
    )

    if layout == "packed" and not onednn_linear_available():
        pytest.skip("this PyTorch build has no oneDNN linear kernel")
    cls = PackedLinear if layout == "packed" else InferenceLinear
    torch.manual_seed(0)
    head = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2, bias=False))
    weights = [head[0].weight.detach().clone(), head[2].weight.detach().clone()]
    x = torch.randn(5, 7, 4)  # (B, T, C): any leading dimensions
    want = head(x)
    if layout == "packed":
        head[0], head[2] = PackedLinear(head[0]), PackedLinear(head[2])
    else:
        transpose_linears(head)
    assert type(head[0]) is cls and head[0].bias is not None and head[2].bias is None
    assert torch.equal(head[0].weight, weights[0]) and torch.equal(head[2].weight, weights[1])
    with torch.inference_mode():
        torch.testing.assert_close(head(x), want)
        torch.testing.assert_close(copy.deepcopy(head)(x), want)
        torch.testing.assert_close(head(x[:0]), want[:0])  # no rows


def test_the_onednn_probe_leaves_the_global_seed_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model at fp32 probes oneDNN once; the probe must not draw from the global
    generator, or a seeded run would sample differently depending on what it loaded."""
    from plugformer.inference import layout

    monkeypatch.setattr(layout, "_ONEDNN", None)  # probe again
    torch.manual_seed(7)
    want = torch.rand(4)
    torch.manual_seed(7)
    layout.onednn_linear_available()
    assert torch.equal(torch.rand(4), want)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_preparing_or_copying_a_model_leaves_the_global_seed_alone(precision: str) -> None:
    """Loading at a precision fuses and swaps layers; building them must not draw from the
    global generator (a seeded run would otherwise depend on what it loaded), nor must
    ``copy.deepcopy`` of the prepared model."""
    import copy

    from plugformer.config import ModelConfig
    from plugformer.inference import layout
    from plugformer.inference.quantize import prepare
    from plugformer.models.gpt import GPT

    layout.onednn_linear_available()  # probed already (its own test covers the probe)
    model = GPT(ModelConfig(n_layers=1, d_model=32, n_heads=2, max_seq_len=16, vocab_size=64))
    torch.manual_seed(7)
    want = torch.rand(4)
    torch.manual_seed(7)
    copy.deepcopy(prepare(model, precision))
    assert torch.equal(torch.rand(4), want)


def _sentiment_checkpoint(backbone: Path, tmp: Path, precision: str) -> Path:
    from plugformer.config import TaskSpec, parse_model
    from plugformer.training.finetune import finetune

    rows = [
        {"text": f"a {w} film, truly {w}", "label": lab}
        for w, lab in [("great", "pos"), ("lovely", "pos"), ("awful", "neg"), ("dreadful", "neg")]
        * 4
    ]
    (tmp / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = parse_model(
        TaskSpec,
        {
            "task": "sentiment",
            "data": {"train": str(tmp / "train.jsonl"), "test": str(tmp / "train.jsonl")},
            "finetune": {"max_steps": 2, "batch_size": 4, "progress": False},
            "inference": {"precision": precision},
        },
    )
    return Path(finetune(spec, str(backbone), tmp / "run")["checkpoint"]), spec


def test_precision_round_trips_through_a_task_checkpoint(
    micro_checkpoint: Path, tmp_path: Path
) -> None:
    from torch import nn

    import plugformer
    from plugformer import plugins
    from plugformer.inference.layout import InferenceLinear, PackedLinear
    from plugformer.training.finetune import evaluate

    if "sentiment" not in plugins.tasks().names():
        pytest.skip("sentiment plugin not installed")
    ckpt, spec = _sentiment_checkpoint(micro_checkpoint, tmp_path, "int8")
    manifest = json.loads((ckpt / "plugformer.json").read_text())
    assert manifest["spec"]["inference"] == {"precision": "int8"}
    saved = plugformer.load(ckpt)
    assert saved.precision == "int8"
    assert not any(type(m) is nn.Linear for m in saved.backbone.modules())
    fp32 = plugformer.load(ckpt, precision="fp32")  # overridden at load time
    # fp32: the weights stay fp32, in a fast layout (plugformer.inference.layout), not quantised
    assert fp32.precision == "fp32"
    assert any(type(m) in (PackedLinear, InferenceLinear) for m in fp32.backbone.modules())
    assert not any(type(m) is nn.Linear for m in fp32.backbone.modules())
    inputs = ["a great film", "an awful film"]
    assert saved.predict(inputs) and fp32.predict(inputs)
    assert evaluate(spec, ckpt)["precision"] == "int8"


def test_bad_precision_is_one_line(micro_checkpoint: Path) -> None:
    import plugformer
    from plugformer.config import TaskSpec, parse_model

    with pytest.raises(ConfigError) as exc:
        parse_model(
            TaskSpec,
            {"task": "sentiment", "data": {"dataset": "x"}, "inference": {"precision": "fp16"}},
        )
    assert "inference.precision" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        plugformer.load(micro_checkpoint, precision="int4")
    assert str(exc.value) == "inference precision 'int4': expected one of fp32, bf16, int8"
