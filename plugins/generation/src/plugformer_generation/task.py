"""The ``generation`` task: prompt → completion pairs, and plain text for domain adaptation.

Examples come in two kinds (one model, :class:`GenerationExample`):

* a pair ``{prompt, completion}`` is encoded ``prompt <sep> completion <eos>`` with the loss
  on the completion and its ``<eos>`` only (headline generation, instruction following);
* a text ``{text}`` is encoded ``<bos> text <eos>`` with the causal-LM loss on every token
  after ``<bos>``; a text longer than the context becomes several windows, so every token
  is scored exactly once (domain adaptation; held-out perplexity).

``labels[t]`` is the token position ``t`` must predict (the next one) or ``-100``.

Head. None of its own by default: the backbone's LM head is the generation head (see the
translation plugin for the reasoning); a generation checkpoint is the fine-tuned backbone.
With ``pointer = true`` the core's pointer-generator head (:mod:`plugformer.blocks.copy`) can
also copy the prompt's words, which headlines reuse (news-headlines turns it on).

Evaluation. ``predict`` scores each example's reference with the model (summed NLL, scored
tokens, UTF-8 bytes of the reference: a completion's without the space encoded before it)
and, for pairs, samples a completion after ``prompt <sep>`` with the core's KV-cache decoder
(greedy, beam search, temperature, top-k, top-p, repetition penalty, stop strings; seeded). Metrics: ``perplexity`` and ``bits_per_byte`` from the
scores; ``rougeL`` (the default ``main_metric``), ``bleu`` and ``chrf`` from the completions.
For text-only data set the option ``main_metric = "bits_per_byte"``: text examples have no
completion to compare, and lower is better there.

Pairs are encoded by the core's :class:`~plugformer.blocks.ConditionalGenerationTask`
(``prompt`` → ``completion``); this module adds plain texts, sampling, likelihood scores
and their metrics.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
from pydantic import ConfigDict, Field, StrictStr, model_validator
from torch import nn

from plugformer import DataError
from plugformer.blocks import ConditionalGenerationTask
from plugformer.blocks import GenerationOptions as PairOptions
from plugformer.inference import decoding
from plugformer.inference.generation import SamplingConfig, generate
from plugformer.lm_task import IGNORE
from plugformer.metric_info import MetricInfo
from plugformer.tasks import Baseline, LocatedExample, score_predictions
from plugformer_generation import __version__
from plugformer_generation.baselines import Lead
from plugformer_generation.compressor import Compressor
from plugformer_generation.extractive import oracle_compression
from plugformer_generation.metrics import BitsPerByte, CorpusBLEU, CorpusCHRF, Perplexity, RougeL

__all__ = ["GenerationExample", "GenerationOptions", "GenerationTask"]

LIKELIHOOD_METRICS = ("perplexity", "bits_per_byte")
"""Metrics from the model's scores of references (lower is better); the others compare text."""


class GenerationExample(LocatedExample):
    """A prompt (with its reference completion) or a plain text; never both.

    Unknown fields (a recipe's extras such as ``article_id``) are ignored.
    """

    model_config = ConfigDict(
        extra="ignore", coerce_numbers_to_str=True, use_attribute_docstrings=True
    )

    id: str | None = None
    """Identifier carried into predictions and error messages."""
    prompt: StrictStr | None = None
    """Text the completion follows (texts are strings: a number is refused, not read as one)."""
    completion: StrictStr | None = None
    """Reference completion of ``prompt``; required for training and scoring, not prediction."""
    text: StrictStr | None = None
    """A plain text, learned and scored as a whole (causal-LM loss on every token)."""

    @model_validator(mode="after")
    def _one_kind(self) -> GenerationExample:
        if (self.prompt is None) == (self.text is None):
            raise ValueError("give either prompt (with completion) or text, not both or neither")
        if self.completion is not None and self.prompt is None:
            raise ValueError("completion needs a prompt")
        return self


class GenerationOptions(PairOptions):
    """Options of the ``generation`` task (plus ``max_length``, ``max_new_tokens``, ``columns``)."""

    temperature: float = Field(0.0, ge=0)
    """Sampling temperature; 0 is greedy decoding."""
    top_k: int | None = Field(None, ge=1)
    """Sample among the k most likely tokens only."""
    top_p: float | None = Field(None, gt=0, le=1)
    """Sample from the smallest set of tokens whose probability reaches top_p (nucleus)."""
    repetition_penalty: float = Field(1.0, gt=0)
    """> 1 discourages tokens already in the prompt or completion (CTRL-style)."""
    no_repeat_ngram_size: int = Field(0, ge=0)
    """> 0: a completion never repeats one of its own n-grams of this size, as fairseq's
    ``--no-repeat-ngram-size`` (the prompt's n-grams do not count, so copying stays free)."""
    stop: list[str] = []
    """Stop strings: a completion ends before the first one it produces."""
    seed: int = 0
    """Seed of sampling: the same seed, model and prompts give the same completions."""
    beam_size: int = Field(1, ge=1)
    """> 1: beam search with this many beams (the core's ``Beam``; needs temperature 0),
    else greedy or sampling."""
    length_penalty: float = Field(1.0, ge=0)
    """Beam search's GNMT length penalty: 0 ranks by raw log-probability (short completions
    win), larger values favour longer ones."""
    min_new_tokens: int = Field(0, ge=0)
    """The end of a completion (``<eos>``) is forbidden before this many new tokens (0: no
    floor; capped at ``max_new_tokens``); a stop string may still end it earlier. A small
    model's completions tend to end early, which a recall-weighted metric (ROUGE-L) punishes."""
    extractive: bool = False
    """A completion copies the prompt's tokens in order, skipping any: each new token is one
    of the prompt's after the last one copied (:func:`plugformer.inference.decoding.
    monotonic_copy`), so a headline is a compression of its article, never a word it lacks.
    Greedy or beam search (``beam_size``). Training targets are then the reference's words
    that the prompt holds (:func:`plugformer_generation.extractive.oracle_compression`);
    the references themselves score the predictions."""
    max_prompt_tokens: int | None = Field(None, ge=1)
    """Prompts are cut to their first max_prompt_tokens (default: half the context); at most
    the context less two tokens (``<sep>`` and one completion token)."""
    main_metric: Literal["rougeL", "bleu", "chrf", "bits_per_byte", "perplexity"] = "rougeL"
    """Metric for model selection and reports; ``bits_per_byte`` for text-only data."""

    @model_validator(mode="after")
    def _sampling_needs_temperature(self) -> GenerationOptions:
        if self.temperature == 0 and (self.top_k is not None or self.top_p is not None):
            raise ValueError("top_k and top_p apply only when sampling: set temperature > 0")
        if self.beam_size > 1 and self.temperature > 0:
            raise ValueError("beam search (beam_size > 1) is deterministic: set temperature = 0")
        if self.extractive and self.temperature > 0:
            raise ValueError("extractive decoding is greedy or beam search: set temperature = 0")
        return self


class GenerationTask(ConditionalGenerationTask):
    """Conditional generation and language modelling with a causal backbone.

    ``main_metric`` and ``higher_is_better`` are set per instance from the options.
    """

    name = "generation"
    Example = GenerationExample
    Options = GenerationOptions
    source_field, target_field, output_key = "prompt", "completion", "completion"
    main_metric = "rougeL"
    higher_is_better = True
    version = __version__
    options: GenerationOptions

    def __init__(self, options: Any = None, tokenizer: Any = None) -> None:
        super().__init__(options, tokenizer)
        self.main_metric = self.options.main_metric
        self.higher_is_better = self.main_metric not in LIKELIHOOD_METRICS

    # ------------------------------------------------------------------ data
    def prepare(self, train_examples: Sequence[GenerationExample]) -> None:
        """Refuse a completion metric as ``main_metric`` when no example has a completion."""
        if self.main_metric not in LIKELIHOOD_METRICS and all(
            ex.text is not None for ex in train_examples
        ):
            raise DataError(
                f"main_metric {self.main_metric!r} compares completions, but the data is plain "
                "text only; set the option main_metric = 'bits_per_byte'"
            )

    # ------------------------------------------------------------------ tensors
    def encode(self, example: GenerationExample, *, train: bool) -> list[dict[str, Any]]:
        """Features with ``input_ids``, ``labels`` and ``prompt_length`` (0 for text windows)."""
        if example.text is not None:
            return self._encode_text(example.text)
        if train and self.options.extractive and example.completion is not None:
            # Train on what the copy constraint can write: the reference's words in the prompt.
            target = oracle_compression(example.prompt or "", example.completion)
            if not target:  # the article holds none of its headline: nothing to learn to keep
                return []
            example = example.model_copy(update={"completion": target})
        return super().encode(example, train=train)  # prompt <sep> completion <eos>

    def prompt_budget(self) -> int | None:
        return self.options.max_prompt_tokens or self.options.prompt_budget

    def _encode_text(self, text: str) -> list[dict[str, Any]]:
        """``<bos> text <eos>`` in windows of the context; each token after ``<bos>`` is a label once."""
        tok = self.tokenizer
        seq = [tok.bos_id, *tok.encode(text), tok.eos_id]
        width = self.max_len or len(seq) - 1
        features = []
        for start in range(0, len(seq) - 1, width):
            ids = seq[start : start + width]
            labels = seq[start + 1 : start + width + 1]
            labels += [IGNORE] * (len(ids) - len(labels))
            features.append({"input_ids": ids, "labels": labels, "prompt_length": 0})
        return features

    def pretrain_documents(self, examples: Sequence[GenerationExample]) -> Iterator[str]:
        """``prompt <sep> completion`` (an article and its headline), or a plain text as it is:
        the sequences ``encode`` trains on (the corpus adds ``<eos>``), the prompt cut to its
        first ``max_prompt_tokens`` as ``encode`` cuts it (:meth:`pair_document`)."""
        for ex in examples:
            if ex.text is not None:
                yield ex.text
            elif ex.completion is not None:  # after a space, as encode has it
                yield self.pair_document(ex.prompt or "", ex.completion)

    def predict(
        self, backbone: Any, head: nn.Module, batch: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Per example: ``completion`` (pairs), and ``nll``/``tokens``/``bytes`` of its reference."""
        examples, index = batch["examples"], batch["example_index"]  # index: (B,) feature → example
        labels = batch["labels"]  # (B, T)
        with torch.no_grad():
            # the reference's likelihood: logits at its tokens only, not the (B, T, V) tensor
            nll = -self.label_log_probs(backbone, head, batch).double().cpu()  # (N,)
        owner = index.cpu()[(labels != IGNORE).nonzero()[:, 0].cpu()]  # (N,): example of each
        nll_sums = torch.zeros(len(examples), dtype=torch.float64).index_add_(0, owner, nll)
        scored: list[list[int]] = [[] for _ in examples]  # label ids of each example, in order
        prompts: dict[int, list[int]] = {}  # example → prompt ids (pairs only)
        rows = zip(index.tolist(), labels.tolist(), batch["prompt_length"].tolist(), strict=True)
        for row, (e, row_labels, prompt_length) in enumerate(rows):
            scored[e] += [t for t in row_labels if t != IGNORE]
            if prompt_length:
                prompts[e] = batch["input_ids"][row, :prompt_length].tolist()
        decoder = self.decoder(backbone, head)
        completions = dict(
            zip(prompts, self._complete(decoder, list(prompts.values())), strict=True)
        )
        predictions = []
        for e in range(len(examples)):
            prediction: dict[str, Any] = {"completion": completions[e]} if e in completions else {}
            if scored[e]:
                prediction |= {
                    "nll": float(nll_sums[e]),
                    "tokens": len(scored[e]),
                    "bytes": self._bytes(scored[e], pair=e in prompts),
                }
            predictions.append(prediction)
        return predictions

    def _complete(self, decoder: Any, prompts: list[list[int]]) -> list[str]:
        """Sampled completions of ``prompts`` by ``decoder`` (the backbone, or with ``pointer`` the
        pointer-generator), each cut before the first stop string."""
        if not prompts:
            return []
        o, tok = self.options, self.tokenizer
        cfg = SamplingConfig(
            max_new_tokens=o.max_new_tokens,
            min_new_tokens=o.min_new_tokens,
            temperature=o.temperature,
            top_k=o.top_k,
            top_p=o.top_p,
            repetition_penalty=o.repetition_penalty,
            no_repeat_ngram_size=o.no_repeat_ngram_size,
            seed=o.seed,
        )

        def text(ids: list[int]) -> str:  # without the space encode puts before a completion
            return tok.decode(ids).removeprefix(" ")

        def stopped(ids: list[int]) -> bool:
            return any(s in text(ids) for s in o.stop)

        allowed = None
        if o.extractive:  # each prompt's own tokens, specials (<sep>, <bos>) left out
            special = {getattr(tok, f"{n}_id", None) for n in ("pad", "bos", "eos", "sep")}
            copies = [decoding.monotonic_copy([t for t in p if t not in special]) for p in prompts]

            def allowed(i: int, ids: list[int]) -> list[int]:
                return copies[i](ids)

        if o.beam_size > 1 or allowed is not None:
            hyps = decoding.decode(
                decoder,
                prompts,
                decoding.Beam(o.beam_size, o.length_penalty),
                max_new_tokens=o.max_new_tokens,
                min_new_tokens=min(o.min_new_tokens, o.max_new_tokens),
                eos_id=tok.eos_id,
                pad_id=tok.pad_id,
                repetition_penalty=o.repetition_penalty,
                no_repeat_ngram_size=o.no_repeat_ngram_size,
                stop_check=stopped if o.stop else None,
                allowed_tokens=allowed,
            )
            outputs = [h[0].tokens if h else [] for h in hyps]
        else:
            outputs = generate(
                decoder,
                prompts,
                cfg,
                tok.eos_id,
                tok.pad_id,
                stop_check=stopped if o.stop else None,
            )
        return [self._cut(text(ids)).strip() for ids in outputs]

    def _cut(self, text: str) -> str:
        """``text`` up to the first stop string."""
        for s in self.options.stop:
            text = text.split(s, 1)[0]
        return text

    def _bytes(self, ids: list[int], pair: bool) -> int:
        """UTF-8 bytes of the text that scored tokens spell (special tokens spell nothing); a
        completion's without the space ``encode`` puts before it (``after_sep``): bytes of
        the reference itself."""
        text = self.tokenizer.decode(ids)
        return len((text.removeprefix(" ") if pair else text).encode("utf-8"))

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, Any]:
        return {
            "rougeL": RougeL(),
            "bleu": CorpusBLEU(),
            "chrf": CorpusCHRF(),
            "perplexity": Perplexity(),
            "bits_per_byte": BitsPerByte(),
        }

    def update_metrics(
        self,
        metrics: dict[str, Any],
        predictions: list[dict[str, Any]],
        examples: list[GenerationExample],
    ) -> None:
        """Scores update the likelihood metrics; completions with a reference update the others."""
        hypotheses, references = [], []
        for prediction, ex in zip(predictions, examples, strict=True):
            if prediction.get("tokens"):
                for name in LIKELIHOOD_METRICS:
                    metrics[name].update(
                        prediction["nll"], prediction["tokens"], prediction["bytes"]
                    )
            if "completion" in prediction and ex.completion is not None:
                hypotheses.append(prediction["completion"])
                references.append(ex.completion)
        if hypotheses:
            for name in ("rougeL", "bleu", "chrf"):
                metrics[name].update(hypotheses, references)

    def compute_metrics(self, metrics: dict[str, Any]) -> dict[str, float]:
        """Values of the metrics that saw data (text-only data has no ``rougeL``, a baseline
        without scores no ``perplexity``)."""
        return {name: float(m.compute()) for name, m in metrics.items() if m.update_called}

    def metric_info(self) -> dict[str, Any]:
        """sacrebleu BLEU and chrF (with signatures), ROUGE-L, and the likelihood metrics."""
        lower = {"higher_is_better": False, "range": (0.0, None)}
        return {
            **super().metric_info(),
            "rougeL": MetricInfo(
                definition="torchmetrics ROUGEScore rougeL F-measure, no stemming"
            ),
            "perplexity": MetricInfo(
                definition="exp(mean NLL per scored token), scored tokens include <eos>",
                **{**lower, "range": (1.0, None)},
            ),
            "bits_per_byte": MetricInfo(
                definition=(
                    "summed NLL / (ln 2 * UTF-8 bytes of the reference text; of a pair's "
                    "completion without the space encoded before it), <eos> included"
                ),
                **lower,
            ),
        }

    # ------------------------------------------------------------------ baselines
    def baselines(self) -> dict[str, Baseline]:
        """The baseline of the main metric: ``lead`` (the prompt's opening words, how many
        chosen on validation; strong for headlines, see :mod:`.baselines`) for completion
        metrics, ``unigram`` (an add-one unigram LM of the training labels, scored on the
        same tokens as the model) for perplexity and bits per byte."""
        if self.main_metric in LIKELIHOOD_METRICS:
            return {"unigram": self._unigram}

        def main(predictions: list[dict[str, Any]], examples: Sequence[GenerationExample]) -> float:
            return score_predictions(self, predictions, examples)[self.main_metric]

        return {"lead": Lead(main), "compress": Compressor(main)}

    def _unigram(
        self, train: list[GenerationExample], test: list[GenerationExample]
    ) -> list[dict[str, Any]]:
        counts = Counter(
            t
            for ex in train
            for f in self.encode(ex, train=True)
            for t in f["labels"]
            if t != IGNORE
        )
        total, vocab = sum(counts.values()), self.tokenizer.vocab_size
        predictions = []
        for ex in test:
            ids = [t for f in self.encode(ex, train=False) for t in f["labels"] if t != IGNORE]
            nll = -sum(math.log((counts[t] + 1) / (total + vocab)) for t in ids)
            predictions.append(
                {"nll": nll, "tokens": len(ids), "bytes": self._bytes(ids, pair=ex.text is None)}
                if ids
                else {}
            )
        return predictions
