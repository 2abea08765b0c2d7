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

Draft. With ``draft = "ibm1-words"`` the prompt also carries the ``ibm1-words`` baseline's
word-for-word translation of the source: ``source <sep> draft <sep> target <eos>``. The
model then post-edits a draft that already has most of the right words (in source order)
instead of recalling every word from its weights, and with ``pointer = true`` it copies
them. The dictionary is learned in ``prepare`` from the training pairs alone (the baseline's
default setting, nothing chosen on validation), kept in the task checkpoint
(``state_dict``), and the pretraining documents carry the draft too, so task-aware
pretraining sees the format fine-tuning uses.

Decoding. Greedy or beam search (the core's :mod:`plugformer.inference.decoding`), over the
KV cache, after the prompt; at least ``min_length_ratio * source tokens`` new tokens (the end
of the translation is forbidden before) and at most ``max_length_ratio * source tokens + 10``,
within the context.

Metrics. sacrebleu corpus BLEU (``main_metric``) and chrF on detokenised text
(:mod:`plugformer.metrics`); their signatures are stored with every result.

Encoding, batching, the loss, greedy decoding, the metrics, the copy-source baseline and
the pretraining documents come from the core's
:class:`~plugformer.blocks.ConditionalGenerationTask`; this module adds the languages,
the draft, and the length ratios.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

from pydantic import ConfigDict, Field, StrictStr

from plugformer import DataError, PlugformerError
from plugformer.blocks import ConditionalGenerationTask, GenerationOptions
from plugformer.blocks.encoding import after_sep, truncate_longest_first
from plugformer.inference import decoding
from plugformer.lm_task import IGNORE
from plugformer.metrics import CorpusBLEU, CorpusCHRF
from plugformer.tasks import SEP, Baseline, LocatedExample, example_location, score_predictions
from plugformer_translation import __version__
from plugformer_translation.baselines import WordTranslation, copy_source, fit_lexicon
from plugformer_translation.baselines import draft as word_for_word

__all__ = ["IGNORE", "TranslationExample", "TranslationOptions", "TranslationTask"]


class TranslationExample(LocatedExample):
    """One sentence pair. Unknown fields (a recipe's extras, spare TSV columns) are ignored."""

    model_config = ConfigDict(
        extra="ignore", coerce_numbers_to_str=True, use_attribute_docstrings=True
    )

    id: str | None = None
    """Identifier carried into predictions and error messages."""
    source: StrictStr = Field(min_length=1)
    """Text to translate (a string: a number is refused, not read as one)."""
    target: StrictStr | None = None
    """Reference translation; required for training and scoring, not for prediction."""
    source_lang: str | None = None
    """Language of ``source`` (e.g. ``"en"``); if given, must match the task's ``source_lang``."""
    target_lang: str | None = None
    """Language of ``target``; if given, must match the task's ``target_lang``."""


class TranslationOptions(GenerationOptions):
    """Options of the ``translation`` task (plus ``max_length`` and ``columns``)."""

    source_lang: str | None = None
    """Source language code; examples that declare another one are refused."""
    target_lang: str | None = None
    """Target language code; picks sacrebleu's BLEU tokenizer as its ``-l`` does (zh, ja, ko)."""
    decoding: str = "beam"
    """A decoding strategy by name (``plugformer.inference.decoding``): ``greedy``, ``beam`` (with
    ``beam_size`` beams), or one a plugin registers."""
    beam_size: int = Field(4, ge=1)
    """Beams per sentence (beam search only; 1 equals greedy)."""
    length_penalty: float = Field(0.6, ge=0)
    """GNMT length-penalty exponent alpha: scores are divided by ((5 + length) / 6) ** alpha."""
    max_length_ratio: float = Field(1.5, gt=0)
    """At most ``max_length_ratio * source tokens + 10`` new tokens (within the context)."""
    min_length_ratio: float = Field(0.0, ge=0)
    """At least ``min_length_ratio * source tokens`` new tokens before the end of the
    translation (0: no floor); a small model tends to stop early, which BLEU's brevity
    penalty punishes."""
    max_source_tokens: int | None = Field(None, ge=1)
    """Longer sources are cut to this many tokens (default: half the context; with a draft,
    source and draft together, longest first, default two thirds of the context); at most
    the context less two tokens (``<sep>`` and one target token)."""
    draft: Literal["none", "ibm1-words"] = "none"
    """``ibm1-words``: the prompt is ``source <sep> draft <sep>``, the draft being the
    ``ibm1-words`` baseline's word-for-word translation of the source (its dictionary learned
    in ``prepare`` from the training pairs alone, kept in the task checkpoint); the model
    post-edits it (and copies from it with ``pointer = true``). ``none``: the source alone."""


class TranslationTask(ConditionalGenerationTask):
    """Sentence-level translation with a causal backbone."""

    name = "translation"
    Example = TranslationExample
    Options = TranslationOptions
    source_field, target_field, output_key = "source", "target", "translation"
    main_metric = "bleu"
    version = __version__
    options: TranslationOptions

    def __init__(self, options: Any = None, tokenizer: Any = None) -> None:
        super().__init__(options, tokenizer)
        self.lexicon: dict[str, str] | None = None
        """The draft's word dictionary (``draft = "ibm1-words"``), learned by ``prepare``."""

    def prepare(self, train_examples: Sequence[TranslationExample]) -> None:
        """Refuse training data whose declared languages contradict the options; learn the
        draft's dictionary from the training pairs."""
        for ex in train_examples:
            for side in ("source_lang", "target_lang"):
                declared, wanted = getattr(ex, side), getattr(self.options, side)
                if declared and wanted and declared != wanted:
                    raise DataError(
                        f"{example_location(ex)}: {side} is {declared!r} but the task's {side} "
                        f"is {wanted!r}"
                    )
        if self.options.draft != "none":
            self.lexicon = fit_lexicon(train_examples)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.lexicon is None else {"lexicon": self.lexicon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.lexicon = state.get("lexicon")

    def draft(self, source: str) -> str:
        """The draft translation of ``source`` put into the prompt (``options.draft``)."""
        if self.lexicon is None:
            raise PlugformerError(
                f"task {self.name!r}: draft = {self.options.draft!r} needs its dictionary: "
                "prepare the task on training examples or load it from a task checkpoint"
            )
        return word_for_word(source, self.lexicon)

    def pretrain_documents(self, examples: Sequence[Any]) -> Iterator[str]:
        """``source <sep> target``, or with a draft ``source <sep> draft <sep> target``: the
        sequence ``encode`` trains on (a space after each ``<sep>``, as ``encode`` has it for
        the byte-level BPE that pretraining uses). The dictionary is learned here from
        ``examples`` (only training examples are passed) when the task was not prepared."""
        if self.options.draft == "none":
            yield from super().pretrain_documents(examples)
            return
        if self.lexicon is None:
            self.lexicon = fit_lexicon(examples)
        for ex in examples:
            if ex.target is not None:  # draft and target after a space, as encode has them
                yield f"{ex.source}{SEP} {self.draft(ex.source)}{SEP} {ex.target}"

    def prompt_budget(self) -> int | None:
        return self.options.max_source_tokens or self.options.prompt_budget

    def prompt_ids(self, example: Any) -> list[int]:
        """``source <sep>``, or ``source <sep> draft <sep>`` cut longest first to the budget."""
        if self.options.draft == "none":
            return super().prompt_ids(example)
        tok, budget = self.tokenizer, self.length_budget
        cap = min(self.prompt_budget() or 2 * budget // 3, budget - 2)
        source, drafted = truncate_longest_first(
            [tok.encode(example.source), after_sep(tok, self.draft(example.source))], cap - 1
        )
        return [*source, tok.sep_id, *drafted, tok.sep_id]

    def decode(self, backbone: Any, prompts: list[list[int]]) -> list[list[int]]:
        """Beam search or greedy: ``min_length_ratio * source tokens`` to ``max_length_ratio *
        source tokens + 10`` new tokens."""
        tok = self.tokenizer
        # the source is the prompt up to its first <sep> (a draft may follow it)
        o = self.options
        sources = [p.index(tok.sep_id) for p in prompts]
        budgets = [int(o.max_length_ratio * n) + 10 for n in sources]
        floors = [
            min(int(o.min_length_ratio * n), b - 1) for n, b in zip(sources, budgets, strict=True)
        ]
        strategy = decoding.get_strategy(
            o.decoding, beam_size=o.beam_size, length_penalty=o.length_penalty
        )
        results = decoding.decode(
            backbone,
            prompts,
            strategy,
            max_new_tokens=budgets,
            min_new_tokens=floors,
            eos_id=tok.eos_id,
            pad_id=tok.pad_id,
            no_repeat_ngram_size=o.no_repeat_ngram_size,
        )
        return [list(hyps[0].tokens) if hyps else [] for hyps in results]

    def metrics(self) -> dict[str, Any]:
        return {"bleu": CorpusBLEU(self.options.target_lang), "chrf": CorpusCHRF()}

    def baselines(self) -> dict[str, Baseline]:
        """``copy-source`` (the source sentence itself) and ``ibm1-words`` (word-for-word
        IBM Model 1 translation, tuned on validation BLEU); see :mod:`.baselines`."""

        def bleu(
            predictions: list[dict[str, str]], examples: Sequence[TranslationExample]
        ) -> float:
            return score_predictions(self, predictions, examples)["bleu"]

        return {"copy-source": copy_source, "ibm1-words": WordTranslation(bleu)}
