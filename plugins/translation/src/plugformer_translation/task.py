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

Decoding. Greedy (the core's :func:`plugformer.inference.generation.generate`) or beam search
(:mod:`plugformer_translation.beam`), both over the KV cache, after the prompt ``source
<sep>``; at most ``max_length_ratio * source tokens + 10`` new tokens, within the context.

Metrics. sacrebleu corpus BLEU (``main_metric``) and chrF on detokenised text
(:mod:`plugformer.metrics`); their signatures are stored with every result.

Encoding, batching, the loss, greedy decoding, the metrics, the copy-source baseline and
the pretraining documents come from the core's
:class:`~plugformer.blocks.ConditionalGenerationTask`; this module adds the languages,
beam search and the length ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ConfigDict, Field

from plugformer import DataError
from plugformer.blocks import ConditionalGenerationTask, GenerationOptions
from plugformer.inference import decoding
from plugformer.lm_task import IGNORE
from plugformer.metrics import CorpusBLEU, CorpusCHRF
from plugformer.tasks import Baseline, LocatedExample, example_location, score_predictions
from plugformer_translation import __version__
from plugformer_translation.baselines import WordTranslation, copy_source

__all__ = ["IGNORE", "TranslationExample", "TranslationOptions", "TranslationTask"]


class TranslationExample(LocatedExample):
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
    max_source_tokens: int | None = Field(None, ge=1)
    """Longer sources are cut to this many tokens (default: half the context); at most the
    context less two tokens (``<sep>`` and one target token)."""


class TranslationTask(ConditionalGenerationTask):
    """Sentence-level translation with a causal backbone."""

    name = "translation"
    Example = TranslationExample
    Options = TranslationOptions
    source_field, target_field, output_key = "source", "target", "translation"
    main_metric = "bleu"
    version = __version__
    options: TranslationOptions

    def prepare(self, train_examples: Sequence[TranslationExample]) -> None:
        """Refuse training data whose declared languages contradict the options."""
        for ex in train_examples:
            for side in ("source_lang", "target_lang"):
                declared, wanted = getattr(ex, side), getattr(self.options, side)
                if declared and wanted and declared != wanted:
                    raise DataError(
                        f"{example_location(ex)}: {side} is {declared!r} but the task's {side} "
                        f"is {wanted!r}"
                    )

    def prompt_budget(self) -> int | None:
        return self.options.max_source_tokens or self.options.prompt_budget

    def decode(self, backbone: Any, prompts: list[list[int]]) -> list[list[int]]:
        """Beam search or greedy, at most ``max_length_ratio * source tokens + 10`` new tokens."""
        tok = self.tokenizer
        budgets = [int(self.options.max_length_ratio * (len(p) - 1)) + 10 for p in prompts]
        o = self.options
        strategy = decoding.get_strategy(
            o.decoding, beam_size=o.beam_size, length_penalty=o.length_penalty
        )
        results = decoding.decode(
            backbone,
            prompts,
            strategy,
            max_new_tokens=budgets,
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
