"""The ``translation`` task: a causal backbone learns ``source <sep> target <eos>``.

Encoding. One example is one sequence: the source tokens, ``<sep>``, the target tokens and
``<eos>``. ``labels[t]`` is the token position ``t`` must predict (the next one), ``-100``
wherever that token is still source or ``<sep>``: the loss covers the target and its
``<eos>`` only. The source is cut to ``max_source_tokens`` (default: half the
context), and the whole sequence to the context: ``max_length`` within the backbone's
``max_seq_len``, learned in ``check_backbone``.

Head. None of its own: the backbone's (tied) LM head already maps hidden states to the
vocabulary, and translating is continuing a sequence. ``build_head`` returns a module with no
parameters, so a translation checkpoint is simply the fine-tuned backbone, and a backbone
can translate zero-shot. A learned adapter would add parameters without adding ability the
fine-tuned LM head lacks.

Decoding. Any of the core's decoding strategies (:mod:`plugformer.decoding`: greedy, beam,
sample, or one a plugin registers), over the KV cache, after the prompt ``source <sep>``; at most ``max_length_ratio * source tokens + 10`` new tokens, within the context.

Metrics. sacrebleu corpus BLEU (``main_metric``) and chrF on detokenised text
(:mod:`plugformer.metrics`); their signatures are stored with every result.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from plugformer import SEP, DataError
from plugformer.decoding import decode, get_strategy
from plugformer.lm_task import IGNORE, CausalLMTask
from plugformer.metrics import CorpusBLEU, CorpusCHRF
from plugformer.tasks import Baseline, TaskOptions, score_predictions
from plugformer_translation import __version__
from plugformer_translation.baselines import WordTranslation, copy_source

if TYPE_CHECKING:  # pragma: no cover
    from plugformer.tokenizer import Tokenizer

__all__ = ["TranslationExample", "TranslationOptions", "TranslationTask"]


class TranslationExample(BaseModel):
    """One sentence pair. Unknown fields (a recipe's extras, spare TSV columns) are ignored."""

    model_config = ConfigDict(
        extra="ignore", coerce_numbers_to_str=True, use_attribute_docstrings=True
    )

    id: str | None = None
    """Identifier carried into predictions and error messages."""
    source: str = Field(min_length=1)
    """Text to translate."""
    target: str | None = None
    """Reference translation; required for training and scoring, not for prediction."""
    source_lang: str | None = None
    """Language of ``source`` (e.g. ``"en"``); if given, must match the task's ``source_lang``."""
    target_lang: str | None = None
    """Language of ``target``; if given, must match the task's ``target_lang``."""


class TranslationOptions(TaskOptions):
    """Options of the ``translation`` task (plus ``max_length`` and ``columns``)."""

    source_lang: str | None = None
    """Source language code; examples that declare another one are refused."""
    target_lang: str | None = None
    """Target language code; picks sacrebleu's BLEU tokenizer as its ``-l`` does (zh, ja, ko)."""
    decoding: str = "beam"
    """A decoding strategy: ``greedy``, ``beam`` (``beam_size`` beams), ``sample`` or one a
    plugin registers (``register_decoding_strategies``)."""
    beam_size: int = Field(4, ge=1)
    """Beams per sentence (beam search only; 1 equals greedy)."""
    length_penalty: float = Field(0.6, ge=0)
    """GNMT length-penalty exponent alpha: scores are divided by ((5 + length) / 6) ** alpha."""
    max_length_ratio: float = Field(1.5, gt=0)
    """At most ``max_length_ratio * source tokens + 10`` new tokens (within the context)."""
    max_source_tokens: int | None = Field(None, ge=1)
    """Longer sources are cut to this many tokens (default: half the context); at most the
    context less two tokens (``<sep>`` and one target token)."""


class TranslationTask(CausalLMTask):
    """Sentence-level translation with a causal backbone."""

    name = "translation"
    Example = TranslationExample
    Options = TranslationOptions
    main_metric = "bleu"
    higher_is_better = True
    version = __version__
    options: TranslationOptions

    def __init__(
        self,
        options: TaskOptions | dict[str, Any] | None = None,
        tokenizer: Tokenizer | None = None,
    ) -> None:
        super().__init__(options, tokenizer)
        self.max_len: int | None = self.options.max_length
        """Longest encoded sequence: ``max_length`` within the backbone's context (once known)."""

    # ------------------------------------------------------------------ data
    def prepare(self, train_examples: Sequence[TranslationExample]) -> None:
        """Refuse training data whose declared languages contradict the options."""
        for ex in train_examples:
            for side in ("source_lang", "target_lang"):
                declared, wanted = getattr(ex, side), getattr(self.options, side)
                if declared and wanted and declared != wanted:
                    raise DataError(
                        f"example {ex.id!r}: {side} is {declared!r} but the task's {side} is {wanted!r}"
                    )

    def example_from_input(self, value: str | dict[str, Any]) -> TranslationExample:
        """A string is the source sentence."""
        if isinstance(value, str):
            return self.parse_example({"source": value})
        return self.parse_example(value)

    # ------------------------------------------------------------------ tensors
    def encode(self, example: TranslationExample, *, train: bool) -> list[dict[str, Any]]:
        """One feature: ``input_ids``, ``labels`` (next token or -100) and ``prompt_length``."""
        tok = self.tokenizer
        if train and example.target is None:
            raise DataError(f"example {example.id!r}: no target to train on")
        limit = self.max_len
        source_cap = self.options.max_source_tokens or (limit // 2 if limit else None)
        if limit and source_cap:
            source_cap = min(source_cap, limit - 2)
        prompt = [*tok.encode(example.source)[:source_cap], tok.sep_id]
        target = [*tok.encode(example.target), tok.eos_id] if example.target is not None else []
        ids = (prompt + target)[:limit]
        labels = [IGNORE] * (len(prompt) - 1) + ids[len(prompt) :] + [IGNORE]
        return [{"input_ids": ids, "labels": labels[: len(ids)], "prompt_length": len(prompt)}]

    def pretrain_documents(self, examples: Sequence[TranslationExample]) -> Iterator[str]:
        """``source <sep> target``: the sequence ``encode`` trains on (the corpus adds ``<eos>``)."""
        for ex in examples:
            if ex.target is not None:
                yield f"{ex.source}{SEP}{ex.target}"

    def predict(
        self, backbone: Any, head: nn.Module, batch: dict[str, Any]
    ) -> list[dict[str, str]]:
        """``{"translation": text}`` per example, decoded after ``source <sep>``."""
        tok = self.tokenizer
        examples = batch["examples"]
        prompts: list[list[int]] = [[] for _ in examples]
        for row, e in enumerate(batch["example_index"].tolist()):
            prompts[e] = batch["input_ids"][row, : int(batch["prompt_length"][row])].tolist()
        budgets = [int(self.options.max_length_ratio * (len(p) - 1)) + 10 for p in prompts]
        o = self.options
        strategy = get_strategy(o.decoding, beam_size=o.beam_size, length_penalty=o.length_penalty)
        results = decode(
            backbone,
            prompts,
            strategy,
            max_new_tokens=budgets,
            eos_id=tok.eos_id,
            pad_id=tok.pad_id,
        )
        return [{"translation": tok.decode(h[0].tokens if h else []).strip()} for h in results]

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, Any]:
        return {"bleu": CorpusBLEU(self.options.target_lang), "chrf": CorpusCHRF()}

    def update_metrics(
        self,
        metrics: dict[str, Any],
        predictions: list[dict[str, str]],
        examples: list[TranslationExample],
    ) -> None:
        references = []
        for ex in examples:
            if ex.target is None:
                raise DataError(f"example {ex.id!r}: no target to score the translation against")
            references.append(ex.target)
        hypotheses = [p["translation"] for p in predictions]
        for metric in metrics.values():
            metric.update(hypotheses, references)

    def metric_info(self) -> dict[str, Any]:
        """sacrebleu signatures, e.g. ``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0``."""
        return {name: metric.signature() for name, metric in self.metrics().items()}

    def baselines(self) -> dict[str, Baseline]:
        """``copy-source`` (the source sentence itself) and ``ibm1-words`` (word-for-word
        IBM Model 1 translation, tuned on validation BLEU); see :mod:`.baselines`."""

        def bleu(
            predictions: list[dict[str, str]], examples: Sequence[TranslationExample]
        ) -> float:
            return score_predictions(self, predictions, examples)["bleu"]

        return {"copy-source": copy_source, "ibm1-words": WordTranslation(bleu)}
