"""``ConditionalGenerationTask``: prompt → target on a causal backbone (translation, headlines).

Encoding is ``prompt <sep> target <eos>`` (the target with a space before it, as a word has
inside a sentence: :func:`~plugformer.blocks.encoding.after_sep`) with the loss on the
target tokens only; the prompt is cut to ``prompt_budget`` tokens (default: half the length
budget) so a target always has room. Decoding is greedy by default (``decode`` is the one
method a subclass overrides for beam search or sampling). Metrics are sacreBLEU's corpus
BLEU and chrF on the decoded text; the baseline copies the prompt.

The head is the backbone's own LM head, or with the option ``pointer = true`` a
pointer-generator (:mod:`plugformer.blocks.copy`) that can also copy the prompt's tokens:
training, likelihoods and every decoding strategy then use its mixture.

A subclass names its fields and output key::

    class HeadlineTask(ConditionalGenerationTask):
        name = "headline"
        source_field, target_field, output_key = "article", "headline", "headline"
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field, StrictStr, create_model
from torch import nn

from plugformer.blocks.encoding import after_sep, first_tokens
from plugformer.errors import DataError, PlugformerError
from plugformer.lm_task import IGNORE, CausalLMTask
from plugformer.metric_info import MetricInfo
from plugformer.tasks import SEP, Baseline, LocatedExample, TaskOptions, example_location

__all__ = ["ConditionalGenerationTask", "GenerationOptions", "seq2seq_example"]


class _Seq2SeqExample(LocatedExample):
    """Base of the generated example models (they remember their file:line)."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


def seq2seq_example(name: str, source: str, target: str) -> type[BaseModel]:
    """Example model: optional ``id``, a non-empty source, an optional target; extras ignored.
    Source and target must be strings (a number is refused); an id number is read as one."""
    return create_model(
        name,
        __base__=_Seq2SeqExample,
        id=(str | None, None),
        **{source: (StrictStr, Field(min_length=1)), target: (StrictStr | None, None)},
    )


class GenerationOptions(TaskOptions):
    """Options of a conditional-generation task."""

    prompt_budget: int | None = Field(None, ge=1)
    """Longest prompt in tokens (default: half the length budget; at most the budget less two)."""
    max_new_tokens: int = Field(64, ge=1)
    """Most tokens generated per example (within the context)."""
    source_field: str | None = None
    """Example field of the prompt (default: the class's ``source_field``)."""
    target_field: str | None = None
    """Example field of the target (default: the class's ``target_field``)."""
    no_repeat_ngram_size: int = Field(0, ge=0)
    """> 0: an output never repeats one of its own n-grams of this size, as fairseq's
    ``--no-repeat-ngram-size`` (the prompt's n-grams do not count, so copying stays free); 0
    turns it off."""
    pointer: bool = False
    """Add a pointer-generator head that can copy the prompt's tokens (names, phrases) besides
    the LM head (:mod:`plugformer.blocks.copy`); decoder-only backbones."""


class ConditionalGenerationTask(CausalLMTask):
    """Prompt → target generation; predictions are ``{output_key: text}``."""

    source_field: ClassVar[str] = "source"
    target_field: ClassVar[str] = "target"
    output_key: ClassVar[str] = "output"
    Example: ClassVar[type[BaseModel]]
    Options = GenerationOptions
    main_metric = "bleu"
    options: GenerationOptions

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Example" not in cls.__dict__:
            cls.Example = seq2seq_example(
                f"{cls.__name__}Example", cls.source_field, cls.target_field
            )

    def __init__(self, options: Any = None, tokenizer: Any = None) -> None:
        super().__init__(options, tokenizer)
        self.src = getattr(self.options, "source_field", None) or self.source_field
        self.tgt = getattr(self.options, "target_field", None) or self.target_field
        if (self.src, self.tgt) != (self.source_field, self.target_field):
            self.Example = seq2seq_example(  # type: ignore[misc]
                f"{type(self).__name__}Example", self.src, self.tgt
            )

    def example_from_input(self, value: str | dict[str, Any]) -> Any:
        """A string is the prompt."""
        return self.parse_example({self.src: value} if isinstance(value, str) else value, "<input>")

    def pretrain_documents(self, examples: Sequence[Any]) -> Iterator[str]:
        """``prompt <sep> target``: the sequence ``encode`` trains on (the corpus adds ``<eos>``;
        the target keeps the space :func:`~plugformer.blocks.encoding.after_sep` gives it),
        the prompt cut as :meth:`prompt_ids` cuts it within pretraining's context."""
        for ex in examples:
            if getattr(ex, self.tgt) is not None:
                yield self.pair_document(getattr(ex, self.src), getattr(ex, self.tgt))

    def pair_document(self, prompt: str, target: str) -> str:
        """``prompt <sep> target``; with ``pretrain_max_tokens`` known, the prompt cut to its
        first tokens as :meth:`prompt_ids` cuts it (its budget, at most half the context by
        default), and further so that ``<sep>`` and the whole target fit: the target is what
        fine-tuning learns, and it is read beside the start of its prompt, as fine-tuning
        reads it (a long article's headline beside its lead, not its last paragraph)."""
        room = self.pretrain_max_tokens
        if room is not None and self.tokenizer is not None:
            cap = min(self.prompt_cap(room), room - 1 - len(after_sep(self.tokenizer, target)))
            prompt = first_tokens(self.tokenizer, prompt, max(cap, 1))
        return f"{prompt}{SEP} {target}"

    # ------------------------------------------------------------------ model
    def check_backbone(self, backbone: Any) -> None:
        """Refuse a backbone that cannot decode (before training, not after it), and
        ``pointer`` on one that decodes on its own (an encoder–decoder)."""
        from plugformer.models.families import check_decodable

        super().check_backbone(backbone)
        check_decodable(backbone)
        if getattr(self.options, "pointer", False) and hasattr(backbone, "incremental"):
            raise PlugformerError(
                f"task {self.name!r}: option pointer = true needs a decoder-only backbone "
                "(the pointer reads the prompt's hidden states); set pointer = false"
            )

    def build_head(self, backbone: Any) -> nn.Module:
        """The pointer-generator's :class:`~plugformer.blocks.copy.CopyHead` with ``pointer``,
        else nothing: the backbone's LM head is the head."""
        self.check_backbone(backbone)
        if not getattr(self.options, "pointer", False):
            return nn.Module()
        from plugformer.blocks.copy import CopyHead

        return CopyHead(backbone.d_model)

    def forward(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """Vocabulary logits (B, T, V); with ``pointer``, the mixture's log-probabilities."""
        if not self._copies(head):
            return super().forward(backbone, head, batch)
        hidden = backbone(batch["input_ids"])  # (B, T, C)
        return head.sequence_log_probs(  # type: ignore[operator]
            backbone, hidden, batch["input_ids"], batch["attention_mask"], batch["prompt_length"]
        )

    def train_loss(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """Mean NLL of the target tokens; with ``pointer``, of the mixture at those positions only."""
        if not self._copies(head):
            return super().train_loss(backbone, head, batch)
        return -self.label_log_probs(backbone, head, batch).mean()

    def label_log_probs(
        self, backbone: Any, head: nn.Module, batch: dict[str, Any]
    ) -> torch.Tensor:
        """``log P(label)`` (N,) of the labelled tokens; with ``pointer``, of the mixture."""
        if not self._copies(head):
            return super().label_log_probs(backbone, head, batch)
        hidden = backbone(batch["input_ids"])  # (B, T, C)
        return head.sequence_log_probs(  # type: ignore[operator]
            backbone,
            hidden,
            batch["input_ids"],
            batch["attention_mask"],
            batch["prompt_length"],
            labels=batch["labels"],
        )  # (N,)

    @staticmethod
    def _copies(head: nn.Module) -> bool:
        return hasattr(head, "sequence_log_probs")

    def decoder(self, backbone: Any, head: nn.Module) -> Any:
        """The model ``decode`` runs: the backbone, or with ``pointer`` the pointer-generator."""
        if not self._copies(head):
            return backbone
        from plugformer.blocks.copy import PointerGenerator

        return PointerGenerator(backbone, head)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ tensors
    def prompt_budget(self) -> int | None:
        """Longest prompt asked for (``options.prompt_budget``); ``None``: half the budget."""
        return self.options.prompt_budget

    def prompt_cap(self, budget: int) -> int:
        """Most prompt tokens in a sequence of ``budget``: the prompt budget, else half, and
        room for ``<sep>`` and one target token."""
        return min(self.prompt_budget() or budget // 2, budget - 2)

    def prompt_ids(self, example: Any) -> list[int]:
        """The prompt's tokens, cut to the prompt budget, then ``<sep>``."""
        cap = self.prompt_cap(self.length_budget)
        return [*self.tokenizer.encode(getattr(example, self.src))[:cap], self.tokenizer.sep_id]

    def encode(self, example: Any, *, train: bool) -> list[dict[str, Any]]:
        """``input_ids``, ``labels`` (next target token or -100) and ``prompt_length``."""
        target = getattr(example, self.tgt)
        if train and target is None:
            raise DataError(f"{example_location(example)}: no {self.tgt} to train on")
        prompt = self.prompt_ids(example)
        answer = (
            [*after_sep(self.tokenizer, target), self.tokenizer.eos_id]
            if target is not None
            else []
        )
        ids = (prompt + answer)[: self.length_budget]
        labels = [IGNORE] * (len(prompt) - 1) + ids[len(prompt) :] + [IGNORE]
        return [{"input_ids": ids, "labels": labels[: len(ids)], "prompt_length": len(prompt)}]

    # ------------------------------------------------------------------ decoding
    def prompts(self, batch: dict[str, Any]) -> list[list[int]]:
        """Each example's prompt tokens (``... <sep>``), read back from an evaluation batch."""
        out: list[list[int]] = [[] for _ in batch["examples"]]
        for row, e in enumerate(batch["example_index"].tolist()):
            out[e] = batch["input_ids"][row, : int(batch["prompt_length"][row])].tolist()
        return out

    def decode(self, backbone: Any, prompts: list[list[int]]) -> list[list[int]]:
        """New token ids per prompt; greedy, at most ``max_new_tokens`` within the context."""
        from plugformer.inference.generation import SamplingConfig, generate

        room = self.length_budget - max(len(p) for p in prompts)
        cfg = SamplingConfig(
            max_new_tokens=max(1, min(self.options.max_new_tokens, room)),
            no_repeat_ngram_size=self.options.no_repeat_ngram_size,
        )
        tok = self.tokenizer
        return generate(backbone, prompts, cfg, eos_id=tok.eos_id, pad_id=tok.pad_id)

    def predict(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> list[Any]:
        outputs = self.decode(self.decoder(backbone, head), self.prompts(batch))
        return [{self.output_key: self.tokenizer.decode(o).strip()} for o in outputs]

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, Any]:
        from plugformer.metrics import CorpusBLEU, CorpusCHRF

        return {"bleu": CorpusBLEU(), "chrf": CorpusCHRF()}

    def references(self, examples: Sequence[Any]) -> list[str]:
        refs = [getattr(ex, self.tgt) for ex in examples]
        missing = next((ex for ex, r in zip(examples, refs, strict=True) if r is None), None)
        if missing is not None:
            raise DataError(
                f"{example_location(missing)}: no {self.tgt} to score the output against"
            )
        return refs

    def update_metrics(
        self, metrics: dict[str, Any], predictions: list[Any], examples: list[Any]
    ) -> None:
        hypotheses, refs = [p[self.output_key] for p in predictions], self.references(examples)
        for metric in metrics.values():
            metric.update(hypotheses, refs)

    def metric_info(self) -> dict[str, Any]:
        """sacreBLEU corpus scores (0-100) with their signatures."""
        words = {"bleu": "corpus BLEU, sacreBLEU", "chrf": "corpus chrF, sacreBLEU"}
        return {
            name: MetricInfo(
                definition=words.get(name, name), range=(0.0, 100.0), signature=m.signature()
            )
            for name, m in self.metrics().items()
            if hasattr(m, "signature")
        }

    def baselines(self) -> dict[str, Baseline]:
        """``copy-source``: the output is the prompt itself."""

        def copy_source(train: list[Any], test: list[Any]) -> list[Any]:
            return [{self.output_key: getattr(ex, self.src)} for ex in test]

        return {"copy-source": copy_source}
