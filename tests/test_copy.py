"""The pointer-generator block (``plugformer.blocks.copy``): the mixture is a distribution, the
training loss equals it, decoding with the cache equals decoding without and equals the
sequence computation, a prompt's token can be copied that the LM alone never writes, and a
task with ``pointer = true`` meets the whole task contract (training, checkpoint round-trip)."""

from __future__ import annotations

import pytest
import torch

from plugformer.blocks import ConditionalGenerationTask
from plugformer.blocks.copy import CopyHead, PointerGenerator, copyable
from plugformer.config import ModelConfig
from plugformer.errors import PlugformerError
from plugformer.inference.decoding import Beam, Greedy, decode
from plugformer.models.gpt import GPT
from plugformer.testing import TaskConformance, micro_backbone, tokenizer_for


@pytest.fixture(scope="module")
def gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(preset="tiny", vocab_size=61, max_seq_len=32)).eval()


def _random_head(d_model: int, seed: int = 1) -> CopyHead:
    torch.manual_seed(seed)
    head = CopyHead(d_model)
    with torch.no_grad():
        head.bilinear.weight.normal_(0, 0.3)
        head.gate.weight.normal_(0, 1.0)
    return head.eval()


def test_mixture_is_a_distribution_and_the_loss_reads_it() -> None:
    torch.manual_seed(0)
    N, S, V, C = 7, 5, 13, 4
    head = _random_head(C)
    queries, lm, context = torch.randn(N, C), torch.randn(N, V), torch.randn(N, S)
    source = torch.randint(0, V, (N, S))
    valid = torch.rand(N, S) > 0.3
    valid[0] = False  # a row with nothing to copy is the LM alone
    lprobs = head.log_probs(queries, lm, context, source, valid)  # (N, V)
    torch.testing.assert_close(lprobs.exp().sum(-1), torch.ones(N))
    torch.testing.assert_close(lprobs[0], torch.log_softmax(lm[0], -1))
    targets = torch.randint(0, V, (N,))
    targets[1:3] = source[1:3, 0]  # some targets occur in the prompt
    direct = head.target_log_probs(queries, lm, context, source, valid, targets)
    torch.testing.assert_close(direct, lprobs.gather(1, targets[:, None])[:, 0])


def test_mixture_at_the_prompt_columns_equals_the_dense_mixture() -> None:
    """``log_probs`` mixes only at the prompt's columns; the dense formula over all V, with
    repeated prompt tokens and padding that shares a token with a copyable position, agrees."""
    import torch.nn.functional as F

    torch.manual_seed(3)
    N, S, V, C = 9, 8, 11, 4
    head = _random_head(C)
    queries, lm, context = torch.randn(N, C), torch.randn(N, V), torch.randn(N, S)
    source = torch.randint(0, 4, (N, S))  # 8 positions over 4 tokens: repeats everywhere
    valid = torch.rand(N, S) > 0.4
    valid[0] = False
    log_attention, log_gate, log_keep = head._parts(queries, lm, context, source, valid)
    copied = torch.zeros(N, V).scatter_add(1, source, log_attention.exp())
    dense = torch.logaddexp(F.log_softmax(lm, -1) + log_keep, copied.log() + log_gate)
    torch.testing.assert_close(head.log_probs(queries, lm, context, source, valid), dense)


def test_loss_gradients_are_finite_where_nothing_can_be_copied() -> None:
    torch.manual_seed(0)
    head = _random_head(4)
    lm = torch.randn(3, 9, requires_grad=True)
    context = torch.randn(3, 4, requires_grad=True)
    source = torch.tensor([[1, 2, 3, 4]] * 3)
    valid = torch.tensor([[True] * 4, [False] * 4, [True, True, False, False]])
    targets = torch.tensor([2, 2, 8])  # in, no source at all, not in the prompt
    head.target_log_probs(torch.randn(3, 4), lm, context, source, valid, targets).sum().backward()
    for grad in (lm.grad, context.grad, head.gate.weight.grad, head.bilinear.weight.grad):
        assert grad is None or torch.isfinite(grad).all()


def test_copyable_positions_exclude_the_separator_padding_and_the_target() -> None:
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]])
    # row 0 right-padded style: prompt x0 x1 x2 <sep>, then target; row 1 left-padded, width 6
    valid = copyable(mask, torch.tensor([4, 6]))
    assert valid.tolist() == [
        [True, True, False, False, False],  # keys of x1, x2 only
        [False, False, True, True, False],  # x0 (col 2) has no key; <sep> (col 5) never
    ]


@torch.no_grad()
def test_untrained_head_restricts_the_copy_to_the_prompt(gpt: GPT) -> None:
    """With the gate forced open, only the prompt's tokens (not <sep>) get probability."""
    head = CopyHead(gpt.d_model, gate_bias=30.0)
    prompt = [5, 6, 7, 8, 3]  # 3 plays <sep>
    inc = PointerGenerator(gpt, head).incremental([prompt], pad_id=0, max_new_tokens=2)
    probs = inc.start().exp()[0]  # (V,)
    assert set((probs > 1e-9).nonzero().flatten().tolist()) == {6, 7, 8}
    assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("strategy", [Greedy(), Beam(beam_size=3)], ids=["greedy", "beam"])
def test_cached_decoding_equals_recomputation(gpt: GPT, strategy) -> None:
    model = PointerGenerator(gpt, _random_head(gpt.d_model))
    prompts = [[5, 6, 7, 8, 9, 3], [10, 11, 3], [12, 13, 14, 3]]  # ragged: left-padded
    kw = {"max_new_tokens": 6, "eos_id": None, "pad_id": 0}
    cached = decode(model, prompts, strategy, **kw)
    fresh = decode(model, prompts, strategy, use_cache=False, **kw)
    assert [[h.tokens for h in hs] for hs in cached] == [[h.tokens for h in hs] for hs in fresh]
    for hyps, fresh_hyps in zip(cached, fresh, strict=True):
        assert hyps[0].score == pytest.approx(fresh_hyps[0].score, abs=1e-4)


@torch.no_grad()
def test_decoding_scores_equal_the_sequence_log_probs(gpt: GPT) -> None:
    """Greedy decoding of one prompt scores its tokens as the training-time computation does."""
    head = _random_head(gpt.d_model)
    prompt = [5, 6, 7, 8, 9, 3]
    [[hyp]] = decode(
        PointerGenerator(gpt, head), [prompt], Greedy(), max_new_tokens=4, eos_id=None, pad_id=0
    )
    ids = torch.tensor([prompt + hyp.tokens])
    labels = torch.full_like(ids, -100)
    labels[0, len(prompt) - 1 : -1] = ids[0, len(prompt) :]
    lprobs = head.sequence_log_probs(
        gpt, gpt(ids), ids, torch.ones_like(ids), torch.tensor([len(prompt)]), labels=labels
    )
    assert float(lprobs.sum()) == pytest.approx(hyp.score, abs=1e-4)


class Headline(ConditionalGenerationTask):
    name = "headline-copy-test"
    source_field, target_field, output_key = "article", "headline", "headline"


ARTICLES = [
    ("Storms hit Louisiana on Monday and closed schools", "Storms hit Louisiana"),
    ("Voters in Ohio chose a new mayor after a long count", "Ohio chose a new mayor"),
    ("The museum in Lyon opened a wing for modern art", "Lyon museum opens wing"),
    ("Farmers near Cork sold record wool at the fair", "Cork farmers sell record wool"),
]


class TestPointerGeneration(TaskConformance):
    """The whole task contract with the pointer-generator head."""

    task_class = Headline
    register_in_process = True
    train_examples = [{"article": a, "headline": h} for a, h in ARTICLES * 5]
    options = {"max_new_tokens": 6, "pointer": True}


def test_pointer_head_learns_to_copy_what_the_lm_alone_learns_slower() -> None:
    """Same steps, same backbone: copying a random prompt word is learnt far faster with the
    pointer than through the vocabulary (the lesson of See et al. 2017, in miniature)."""
    words = [f"w{i}" for i in range(40)]
    rng = torch.Generator().manual_seed(0)
    examples = []
    for _ in range(64):
        pick = [words[int(i)] for i in torch.randint(0, 40, (5,), generator=rng)]
        examples.append({"article": " ".join(pick), "headline": pick[2]})
    tokenizer = tokenizer_for(examples)
    losses = {}
    for pointer in (False, True):
        task = Headline({"pointer": pointer}, tokenizer)
        backbone = micro_backbone(tokenizer).model
        head = task.build_head(backbone)
        params = [*backbone.parameters(), *head.parameters()]
        opt = torch.optim.AdamW(params, lr=3e-3)
        features = [f for ex in examples for f in task.encode(task.parse_example(ex), train=True)]
        torch.manual_seed(0)
        for step in range(60):
            batch = task.collate([features[(step * 8 + i) % 64] for i in range(8)])
            loss = task.train_loss(backbone, head, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
        batch = task.collate(features[:32])
        with torch.no_grad():
            losses[pointer] = float(task.loss(task.forward(backbone, head, batch), batch))
    assert losses[True] < 0.5 * losses[False], losses


def test_pointer_refuses_an_encoder_decoder_backbone() -> None:
    tokenizer = tokenizer_for([{"article": a, "headline": h} for a, h in ARTICLES])

    class OwnDecoder(torch.nn.Module):
        causal = True
        max_seq_len = 64
        d_model = 8

        def incremental(self, *args, **kwargs):  # pragma: no cover - never decodes
            raise AssertionError

    with pytest.raises(PlugformerError, match="pointer = true needs a decoder-only backbone"):
        Headline({"pointer": True}, tokenizer).build_head(OwnDecoder())
