"""The ``qa`` task: extractive question answering in the SQuAD v1.1 format.

:class:`QATask` is the task's contract with the core, in the order a run uses it: options
and state, encode and collate, head, forward and loss, predict and decode, metrics,
baselines. What it builds on lives beside it, one job per module:

- :mod:`~plugformer_qa.schema`: the example (:class:`QAExample`) and options (:class:`QAOptions`)
- :mod:`~plugformer_qa.windows`: window starts and the tokens a character span covers
- :mod:`~plugformer_qa.head`: :class:`SpanHead` and :func:`best_spans`, on tensors alone
- :mod:`~plugformer_qa.candidates`: cloze candidates' batching and loss
- :mod:`~plugformer_qa.decoding`: window spans → one answer per example, as characters
- :mod:`~plugformer_qa.metrics`, :mod:`~plugformer_qa.baselines`: scoring, the entity ranker

Data flow (``W`` = window, the backbone's context length or ``options.max_length``)::

    {"question", "context", "answers": [{"text", "answer_start"}]}
        ──encode──▶ one feature per context window:
                    input_ids = question tokens + <sep> + a slice of the context tokens + <sep>
                    offsets   = (char start, char end) in the context of each of those tokens
        ──collate─▶ input_ids, attention_mask, context_mask (B, T); start/end_positions (B,)
        ──backbone─▶ hidden (B, T, C) ──SpanHead──▶ start_logits, end_logits (B, T)
                    (a linear score per token + a pointer from the last <sep>, the query,
                    + on a language model its prediction there of the answer's first token)
        ──decode──▶ best span over all windows of an example ──▶ context[char_start:char_end]

The question comes first so that a causal backbone's context tokens have read it. Contexts
longer than a window are split into overlapping windows ``doc_stride`` tokens apart. A
window that holds the whole (first) gold answer is labelled with its token span; a window
that does not is labelled with its ``<sep>`` token, as in BERT's SQuAD code, so training
also teaches the model which window holds the answer. Decoding never returns the ``<sep>``:
SQuAD v1.1 questions always have an answer.

A prediction is always an exact substring of the context; a span that starts or ends inside
a word is widened to the whole word (``snap_to_words``; :mod:`~plugformer_qa.decoding`). With
``answer_candidates = "entities"`` decoding chooses only among the context's candidate
entities (cloze QA: the answer is always one), still by the model's start + end logits, and
training learns that choice: a softmax over each window's candidate occurrences and its
``<sep>``, each scored ``start[i] + end[j]``, where every occurrence of the answer's text is
right (Kadlec et al., 2016's attention-sum reader sums over an entity's occurrences too;
:mod:`~plugformer_qa.candidates`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from plugformer import SEP, DataError, PlugformerError, Task
from plugformer.tasks import Baseline, example_location, score_predictions
from plugformer_qa import __version__
from plugformer_qa.baselines import EntityRanker, candidate_spans, fit_prior, prior_logits
from plugformer_qa.candidates import (
    Candidate,
    candidate_loss,
    collate_candidates,
    window_candidates,
)
from plugformer_qa.decoding import decode_candidates, decode_spans
from plugformer_qa.head import SpanHead, best_spans
from plugformer_qa.metrics import SQuADScore, normalize_text, squad_f1
from plugformer_qa.schema import Answer, QAExample, QAOptions
from plugformer_qa.windows import (
    TokenSpans,
    passage_around,
    token_span,
    window_rows,
    window_starts,
)

__all__ = ["Answer", "QAExample", "QAOptions", "QATask", "SpanHead", "best_spans", "squad_f1"]

DEFAULT_MAX_LEN = 128
"""Window used before the task has seen a backbone (``check_backbone`` sets the real one)."""


WINDOW_BATCH = 64
"""Windows scored per forward pass in evaluation: bounds memory whatever a context's length."""


class QATask(Task):
    """Extractive QA: the answer is a span of the context."""

    name = "qa"
    Example = QAExample
    Options = QAOptions
    main_metric = "f1"
    version = __version__

    options: QAOptions

    def __init__(
        self, options: QAOptions | dict[str, Any] | None = None, tokenizer: Any = None
    ) -> None:
        super().__init__(options, tokenizer)
        self.max_len = self.options.max_length or DEFAULT_MAX_LEN
        self.prior: dict[str, Any] | None = None  # candidate_prior: the fitted ranker

    def prepare(self, train_examples: Sequence[QAExample]) -> None:
        """With ``candidate_prior``, fit the entity ranker on the training examples."""
        if self.options.candidate_prior:
            self.prior = fit_prior(train_examples)

    def state_dict(self) -> dict[str, Any]:
        return {"prior": self.prior} if self.prior is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.prior = state.get("prior")

    def _priors(self, example: QAExample) -> dict[str, float]:
        """Prior score of each candidate text of ``example`` (empty without a fitted prior)."""
        if self.prior is None:
            return {}
        return prior_logits(self.prior, example.context, example.question)

    def example_from_input(self, value: str | dict[str, Any]) -> QAExample:
        if isinstance(value, str):
            raise DataError(
                "task 'qa' needs a dict per input (a JSON object on the command line): "
                '{"question": ..., "context": ...}'
            )
        return self.parse_example(value, "<input>")

    # ------------------------------------------------------------------ tensors
    def encode(self, example: QAExample, *, train: bool) -> list[dict[str, Any]]:
        tok = self.tokenizer
        keep = min(self.options.max_question_tokens, self.max_len // 2)
        prefix = [*tok.encode(example.question)[:keep], tok.sep_id]
        span = self.max_len - len(prefix) - 1  # context tokens per window, then the query <sep>
        if span < 1:
            raise PlugformerError(f"task 'qa': {self.max_len} tokens leave no room for the context")
        stride = min(self.options.doc_stride or max(1, span // 2), span)
        ids, offsets = tok.encode_with_offsets(example.context)
        answer = None
        if example.answers:
            first = example.answers[0]
            answer = token_span(offsets, first.answer_start, first.answer_start + len(first.text))
        if train and answer is None:
            raise DataError(f"{example_location(example)}: training needs an answer")
        candidates = self._candidate_tokens(example, offsets) if answer is not None else None
        features = []
        for start in window_starts(len(ids), span, stride):
            end = min(start + span, len(ids))
            # context_offset: position of the first context token; offsets: the character
            # span in the context of each context token of the window.
            feature: dict[str, Any] = {
                "input_ids": [*prefix, *ids[start:end], tok.sep_id],
                "context_offset": len(prefix),
                "offsets": offsets[start:end],
            }
            if answer is not None and start <= answer[0] and answer[1] < end:
                feature["start_position"] = len(prefix) + answer[0] - start
                feature["end_position"] = len(prefix) + answer[1] - start
            elif answer is not None:  # the answer is not (wholly) in this window: point at <sep>
                feature["start_position"] = feature["end_position"] = len(prefix) - 1
            if candidates is not None:
                feature["candidates"] = window_candidates(
                    candidates, feature, start, end, len(prefix)
                )
            features.append(feature)
        return features

    def _candidate_tokens(
        self, example: QAExample, offsets: Sequence[tuple[int, int]]
    ) -> list[Candidate] | None:
        """With ``answer_candidates = "entities"``: every candidate occurrence of the context as
        ``(first token, last token, is it the answer's text?, prior score)`` over the whole
        context's tokens (maybe none); ``None`` otherwise."""
        if self.options.answer_candidates != "entities":
            return None
        gold = example.answers[0].text
        priors = self._priors(example)
        out = []
        spans = TokenSpans(offsets)
        for char_start, char_end in candidate_spans(example.context, example.question):
            tokens = spans.span(char_start, char_end)
            if tokens is not None:
                text = example.context[char_start:char_end]
                out.append((*tokens, text == gold, priors.get(text, 0.0)))
        return out

    def pretrain_documents(self, examples: Sequence[QAExample]) -> Iterator[str]:
        """``question <sep> context <sep> answer``: question first, as ``encode`` puts it, so a
        causal model reads the question before the passage it must search; then the answer
        to be copied out of the passage, after a space: a word inside a passage is one token
        with its leading space, and the answer must start with that same token for the
        model's prediction at the query ``<sep>`` to point at it (:class:`SpanHead`).

        With pretraining's context known (``pretrain_max_tokens``), the context is cut to a
        window around the answer (:func:`passage_around`) so that the whole document fits
        one block: a news-cloze document (~230 tokens) in blocks of 128 was otherwise never
        read with its question and its answer together."""
        for ex in examples:
            if ex.answers:
                answer = ex.answers[0]
                yield f"{ex.question}{SEP}{self._passage(ex)}{SEP} {answer.text}"

    def _passage(self, ex: QAExample) -> str:
        """The context, or the window of it that fits ``pretrain_max_tokens`` beside the
        question, two ``<sep>`` and the answer, starting at a word."""
        room, tok = self.pretrain_max_tokens, self.tokenizer
        if room is None or tok is None:
            return ex.context
        answer = ex.answers[0]
        end = answer.answer_start + len(answer.text)
        _, offsets = tok.encode_with_offsets(ex.context)
        span = room - len(tok.encode(f"{ex.question}{SEP}{SEP} {answer.text}"))
        while True:
            a, b = passage_around(
                offsets, answer.answer_start, end, max(span, 1), ex.id or ex.question
            )
            if a > 0 and not ex.context[a - 1].isspace():  # start at a word, not inside one
                space = ex.context.find(" ", a, answer.answer_start)
                a = a if space < 0 else space + 1
            # a passage cut out of its context may take a token or two more on its own
            excess = len(tok.encode(f"{ex.question}{SEP}{ex.context[a:b]}{SEP} {answer.text}"))
            excess -= room
            if excess <= 0 or span <= 1:
                return ex.context[a:b]
            span -= excess

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        B, T = len(features), max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((B, T), self.tokenizer.pad_id, dtype=torch.long)  # (B, T)
        attention_mask = torch.zeros((B, T), dtype=torch.long)  # (B, T)
        context_mask = torch.zeros((B, T), dtype=torch.bool)  # (B, T): tokens an answer may use
        for i, f in enumerate(features):
            n, c = len(f["input_ids"]), f["context_offset"]
            input_ids[i, :n] = torch.tensor(f["input_ids"])
            attention_mask[i, :n] = 1
            context_mask[i, c : c + len(f["offsets"])] = True
        batch: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "context_mask": context_mask,
            "context_offset": self._longs(features, "context_offset"),
            "query_index": torch.tensor([len(f["input_ids"]) - 1 for f in features]),  # (B,)
            "offsets": [f["offsets"] for f in features],
        }
        if all("start_position" in f for f in features):
            batch["start_positions"] = self._longs(features, "start_position")
            batch["end_positions"] = self._longs(features, "end_position")
        if all("candidates" in f for f in features):
            batch.update(collate_candidates([f["candidates"] for f in features]))
        return batch

    @staticmethod
    def _longs(features: list[dict[str, Any]], key: str) -> torch.Tensor:
        return torch.tensor([f[key] for f in features], dtype=torch.long)  # (B,)

    # ------------------------------------------------------------------ model
    def check_backbone(self, backbone: Any) -> None:
        super().check_backbone(backbone)
        self.max_len = self.max_length(backbone)

    def build_head(self, backbone: Any) -> SpanHead:
        self.check_backbone(backbone)
        return SpanHead(backbone.d_model, prior=self.options.candidate_prior)

    def forward(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> Any:
        """The head on the backbone's hidden states; on a language model (``causal`` with an
        LM head) ``batch["copy"]`` is added first: at each window's query ``<sep>``, the
        log-probability the model gives each of the window's tokens as the next one (B, T)."""
        hidden = backbone(batch["input_ids"], batch.get("attention_mask"))  # (B, T, C)
        if getattr(backbone, "causal", False) and hasattr(backbone, "lm_logits"):
            rows = torch.arange(hidden.size(0), device=hidden.device)
            query = hidden[rows, batch["query_index"]]  # (B, C)
            logp = F.log_softmax(backbone.lm_logits(query).float(), dim=-1)  # (B, V)
            batch = {**batch, "copy": logp.gather(1, batch["input_ids"])}  # (B, T)
        return head(hidden, batch)

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> torch.Tensor:
        """With ``answer_candidates = "entities"``, cross-entropy over each window's candidate
        entities (:func:`~plugformer_qa.candidates.candidate_loss`), the choice decoding makes; otherwise over the start
        and over the end token, BERT's SQuAD loss."""
        if "candidate_spans" in batch:
            return candidate_loss(outputs, batch)
        start = F.cross_entropy(outputs["start_logits"], batch["start_positions"])
        end = F.cross_entropy(outputs["end_logits"], batch["end_positions"])
        return (start + end) / 2

    # ------------------------------------------------------------------ predictions
    @torch.no_grad()
    def predict(
        self, backbone: Any, head: nn.Module, batch: dict[str, Any]
    ) -> list[dict[str, Any]]:
        *spans, logits = self._windowed_spans(backbone, head, batch)
        weight = getattr(head, "prior_weight", None)  # a Parameter with candidate_prior only
        prior_weight = float(weight) if weight is not None else 0.0
        return self._answers(spans, logits, batch, prior_weight)

    def _windowed_spans(
        self, backbone: Any, head: nn.Module, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``best_spans`` of every window, run ``WINDOW_BATCH`` windows at a time, and, for
        ``answer_candidates = "entities"`` only, each window's start and end logits (a (2, T)
        tensor per window, T its mini-batch's length; else an empty list).

        One long context becomes thousands of windows; running them as one batch held every
        window's activations at once (a 5 MB context took 7 GB of RAM on a tiny model).
        """
        n = int(batch["input_ids"].size(0))
        parts, logits = [], []
        keep_logits = self.options.answer_candidates == "entities"
        for lo in range(0, n, WINDOW_BATCH):
            sub = window_rows(batch, n, lo, lo + WINDOW_BATCH)
            out = self.forward(backbone, head, sub)
            parts.append(
                best_spans(
                    out["start_logits"],
                    out["end_logits"],
                    sub["context_mask"],
                    self.options.max_answer_tokens,
                )
            )
            if keep_logits:
                logits.extend(torch.stack([out["start_logits"], out["end_logits"]], dim=1))
        if not parts:
            empty = torch.empty(0, dtype=torch.long)
            return empty.float(), empty, empty, []
        scores, starts, ends = (torch.cat(p) for p in zip(*parts, strict=True))  # each (B,)
        return scores, starts, ends, logits

    def decode(
        self,
        start_logits: torch.Tensor,
        end_logits: torch.Tensor,
        batch: dict[str, Any],
        prior_weight: float = 0.0,
    ) -> list[dict[str, Any]]:
        """One prediction per example of an evaluation batch: the best span over its windows
        (with ``answer_candidates = "entities"``, the best candidate, its prior score weighted
        by ``prior_weight``).

        A prediction is ``{"answer": text, "answer_start": char offset, "score": start + end
        logit}``; an example without any context token gets ``{"answer": "", ...: None}``.
        """
        spans = best_spans(
            start_logits, end_logits, batch["context_mask"], self.options.max_answer_tokens
        )
        logits: list[torch.Tensor] = []
        if self.options.answer_candidates == "entities":
            logits = list(torch.stack([start_logits, end_logits], dim=1))  # (2, T) per window
        return self._answers(spans, logits, batch, prior_weight)

    def _answers(
        self,
        spans: Sequence[torch.Tensor],
        logits: list[torch.Tensor],
        batch: dict[str, Any],
        prior_weight: float,
    ) -> list[dict[str, Any]]:
        """Each window's best span (score, start, end; each (B,)) → one prediction per
        example, among all spans or, with ``answer_candidates = "entities"``, among the
        candidates (:mod:`plugformer_qa.decoding`)."""
        if self.options.answer_candidates == "entities":
            return decode_candidates(
                *spans,
                logits,
                batch,
                snap_to_words=self.options.snap_to_words,
                prior_of=self._priors,
                prior_weight=prior_weight,
            )
        return decode_spans(*spans, batch, snap_to_words=self.options.snap_to_words)

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, Any]:
        return {"exact_match": SQuADScore("exact_match"), "f1": SQuADScore("f1")}

    def example_statistics(self, predictions: Sequence[Any], examples: Sequence[Any]) -> Any:
        """The main metric per question (best over its gold answers, 0-100 as reported), so
        that reports can resample the test questions (:mod:`plugformer.resampling`)."""
        from plugformer.resampling import ExampleStatistics

        def exact(p: str, g: str) -> float:
            return float(normalize_text(p) == normalize_text(g))

        scorer = squad_f1 if self.main_metric == "f1" else exact
        rows = [
            [100.0 * max(scorer(p["answer"], a.text) for a in ex.answers)]
            for p, ex in zip(predictions, examples, strict=True)
        ]
        return ExampleStatistics("mean", rows)

    def update_metrics(
        self, metrics: dict[str, Any], predictions: list[Any], examples: list[Any]
    ) -> None:
        preds, targets = [], []
        for k, (pred, ex) in enumerate(zip(predictions, examples, strict=True)):
            if not ex.answers:
                raise DataError(f"{example_location(ex)}: no gold answers to score against")
            preds.append({"prediction_text": pred["answer"], "id": str(k)})  # ids only pair them up
            gold = {
                "text": [a.text for a in ex.answers],
                "answer_start": [a.answer_start for a in ex.answers],
            }
            targets.append({"answers": gold, "id": str(k)})
        for metric in metrics.values():
            metric.update(preds, targets)

    def metric_info(self) -> dict[str, Any]:
        return {
            "definition": "SQuAD v1.1 exact match and token F1 (torchmetrics.text.SQuAD), max over gold answers",
            "normalisation": "lower case, remove punctuation, remove a/an/the, collapse whitespace",
            "scale": "0-100",
        }

    def baselines(self) -> dict[str, Baseline]:
        """``entity-ranker``: the context entity a logistic regression of lexical features
        ranks first (see :mod:`plugformer_qa.baselines`), tuned on validation F1."""

        def f1(predictions: list[dict[str, Any]], examples: Sequence[QAExample]) -> float:
            return score_predictions(self, predictions, examples)["f1"]

        return {"entity-ranker": EntityRanker(f1)}
