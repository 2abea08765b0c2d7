"""The ``qa`` task: extractive question answering in the SQuAD v1.1 format.

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

Answers map back through the tokenizer's character offsets (leading and trailing
whitespace of the span is dropped), so a prediction is always an exact substring of the
context. A span that starts or ends inside a word (a sub-word token) is widened to the whole
word (``snap_to_words``), since SQuAD scoring compares whole words. With
``answer_candidates = "entities"`` decoding chooses only among the context's candidate
entities (cloze QA: the answer is always one), still by the model's start + end logits, and
training learns that choice: a softmax over each window's candidate occurrences and its
``<sep>``, each scored ``start[i] + end[j]``, where every occurrence of the answer's text is
right (Kadlec et al., 2016's attention-sum reader sums over an entity's occurrences too).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from plugformer import SEP, DataError, PlugformerError, Task
from plugformer.tasks import (
    Baseline,
    LocatedExample,
    TaskOptions,
    example_location,
    score_predictions,
)
from plugformer_qa import __version__
from plugformer_qa.baselines import EntityRanker, candidate_spans, fit_prior, prior_logits
from plugformer_qa.candidates import (
    Candidate,
    candidate_loss,
    collate_candidates,
    window_candidates,
)
from plugformer_qa.head import SpanHead, best_spans
from plugformer_qa.metrics import SQuADScore, normalize_text, squad_f1

__all__ = ["Answer", "QAExample", "QAOptions", "QATask", "SpanHead", "best_spans", "squad_f1"]

DEFAULT_MAX_LEN = 128
"""Window used before the task has seen a backbone (``check_backbone`` sets the real one)."""


class Answer(BaseModel):
    """One gold answer: a span of the context."""

    model_config = ConfigDict(extra="ignore", use_attribute_docstrings=True)

    text: str = Field(min_length=1)
    """The answer exactly as it appears in the context."""
    answer_start: int = Field(ge=0)
    """Character offset of the answer in the context."""


class QAExample(LocatedExample):
    """A question about a context. Unknown fields (``title``, ``article_id``) are ignored.
    Read from a file, it remembers its file:line for error messages."""

    model_config = ConfigDict(
        extra="ignore", coerce_numbers_to_str=True, use_attribute_docstrings=True
    )

    id: str | None = None
    """Question identifier (optional)."""
    context: str
    """The passage the answer is extracted from."""
    question: str = Field(min_length=1)
    """The question."""
    answers: list[Answer] = []
    """Gold answers (SQuAD dev sets have several); training uses the first. Empty for
    prediction-only inputs."""

    @model_validator(mode="after")
    def _answers_are_in_the_context(self) -> QAExample:
        for k, a in enumerate(self.answers):
            if self.context[a.answer_start : a.answer_start + len(a.text)] != a.text:
                raise ValueError(
                    f"answers[{k}]: {a.text!r} is not at character {a.answer_start} of the context"
                )
        return self


class QAOptions(TaskOptions):
    """Options of the ``qa`` task (``[options]`` of a task spec)."""

    doc_stride: int | None = Field(None, ge=1)
    """Tokens between the starts of consecutive context windows (BERT's ``doc_stride``).
    Default: half the context tokens a window holds; capped at that number, so windows
    overlap or abut but never leave gaps."""
    max_question_tokens: int = Field(64, ge=1)
    """Questions are cut to this many tokens (and to half the window)."""
    max_answer_tokens: int = Field(30, ge=1)
    """Longest span decoding considers, in tokens."""
    snap_to_words: bool = True
    """Widen a predicted span that starts or ends inside a word (a sub-word token) to the
    whole word, since SQuAD scoring compares whole words."""
    answer_candidates: Literal["any", "entities"] = "any"
    """Spans decoding may return. ``"any"``: every context span of up to
    ``max_answer_tokens``. ``"entities"``: only the context's candidate entities, the spans
    the ``entity-ranker`` baseline chooses among (runs of 1-4 capitalised or numeric words
    not in the question; :func:`plugformer_qa.baselines.candidate_spans`), as cloze readers
    choose among the document's entities (Hermann et al., 2015); the model still scores
    them. An example without a candidate falls back to ``"any"``. Training then learns the
    same choice: a cross-entropy over each window's candidates, every occurrence of the
    answer's text counting for it (the attention-sum reader's objective)."""
    candidate_prior: bool = False
    """With ``answer_candidates = "entities"``: add to each candidate's score the
    ``entity-ranker`` baseline's logit for it, times a weight the head learns (starting at 1).
    The ranker's logistic regression is fitted in ``prepare`` on the training split alone
    (its default window 10 and C 1, no validation choice) and kept in task checkpoints, so
    the reader starts from the ranker's lexical features and learns what the backbone adds
    to them, as DrQA's reader takes lexical features beside its neural ones (Chen et al.,
    2017)."""

    @model_validator(mode="after")
    def _prior_needs_entities(self) -> QAOptions:
        if self.candidate_prior and self.answer_candidates != "entities":
            raise ValueError('candidate_prior needs answer_candidates = "entities"')
        return self


WINDOW_BATCH = 64
"""Windows scored per forward pass in evaluation: bounds memory whatever a context's length."""


def _rows(batch: dict[str, Any], n: int, lo: int, hi: int) -> dict[str, Any]:
    """Rows ``lo:hi`` of the per-window entries of a collated batch (tensors and lists of n)."""
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if key in ("examples", "example_index"):
            continue
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.size(0) == n:
            out[key] = value[lo:hi]
        elif isinstance(value, list) and len(value) == n:
            out[key] = value[lo:hi]
        else:
            out[key] = value
    return out


def _window_starts(n_tokens: int, span: int, stride: int) -> list[int]:
    """Starts of windows of ``span`` tokens, ``stride`` apart, covering ``n_tokens`` (at least one)."""
    starts = [0]
    while starts[-1] + span < n_tokens:
        starts.append(starts[-1] + stride)
    return starts


def _token_span(
    offsets: Sequence[tuple[int, int]], char_start: int, char_end: int
) -> tuple[int, int] | None:
    """First and last token overlapping characters ``[char_start, char_end)``, if any."""
    hits = [t for t, (s, e) in enumerate(offsets) if s < char_end and e > char_start]
    return (hits[0], hits[-1]) if hits else None


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
                'task \'qa\' needs a JSON object per input: {"question": ..., "context": ...}'
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
            answer = _token_span(offsets, first.answer_start, first.answer_start + len(first.text))
        if train and answer is None:
            raise DataError(f"{example_location(example)}: training needs an answer")
        candidates = self._candidate_tokens(example, offsets) if answer is not None else None
        features = []
        for start in _window_starts(len(ids), span, stride):
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
        for char_start, char_end in candidate_spans(example.context, example.question):
            tokens = _token_span(offsets, char_start, char_end)
            if tokens is not None:
                text = example.context[char_start:char_end]
                out.append((*tokens, text == gold, priors.get(text, 0.0)))
        return out

    def pretrain_documents(self, examples: Sequence[QAExample]) -> Iterator[str]:
        """``question <sep> context <sep> answer``: question first, as ``encode`` puts it, so a
        causal model reads the question before the passage it must search; then the answer
        to be copied out of the passage, after a space: a word inside a passage is one token
        with its leading space, and the answer must start with that same token for the
        model's prediction at the query ``<sep>`` to point at it (:class:`SpanHead`)."""
        for ex in examples:
            if ex.answers:
                yield f"{ex.question}{SEP}{ex.context}{SEP} {ex.answers[0].text}"

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

    @torch.no_grad()
    def predict(
        self, backbone: Any, head: nn.Module, batch: dict[str, Any]
    ) -> list[dict[str, Any]]:
        *spans, logits = self._windowed_spans(backbone, head, batch)
        if self.options.answer_candidates == "entities":
            weight = getattr(head, "prior_weight", None)
            prior_weight = float(weight) if weight is not None else 0.0
            return self._decode_candidates(*spans, logits, batch, prior_weight)
        return self._decode_spans(*spans, batch)

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
            sub = _rows(batch, n, lo, lo + WINDOW_BATCH)
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

    def _decode_candidates(
        self,
        scores: torch.Tensor,
        starts: torch.Tensor,
        ends: torch.Tensor,
        logits: list[torch.Tensor],
        batch: dict[str, Any],
        prior_weight: float = 0.0,
    ) -> list[dict[str, Any]]:
        """The best-scoring candidate entity of each example (``answer_candidates =
        "entities"``): a candidate occurrence scores ``start[i] + end[j]`` over its first and
        last token in a window that holds it whole, plus ``prior_weight`` times its text's
        prior score (``candidate_prior``); the best over occurrences and windows wins.
        Examples without a candidate decode as with ``"any"``."""
        predictions = self._decode_spans(scores, starts, ends, batch)
        examples, owner = batch["examples"], batch["example_index"].tolist()
        best: list[tuple[float, int, int] | None] = [None] * len(examples)
        spans = [candidate_spans(ex.context, ex.question) for ex in examples]
        priors = [self._priors(ex) if prior_weight else {} for ex in examples]
        for f, e in enumerate(owner):
            if not spans[e]:
                continue
            offset, offsets = int(batch["context_offset"][f]), batch["offsets"][f]
            start_logits, end_logits = logits[f].tolist()
            for char_start, char_end in spans[e]:
                tokens = _token_span(offsets, char_start, char_end)
                if tokens is None:
                    continue
                i, j = tokens
                # Only an occurrence this window holds whole: none cut at either edge.
                if offsets[i][0] > char_start or offsets[j][1] < char_end:
                    continue
                text = examples[e].context[char_start:char_end]
                score = start_logits[offset + i] + end_logits[offset + j]
                score += prior_weight * priors[e].get(text, 0.0)
                if best[e] is None or score > best[e][0]:
                    best[e] = (score, char_start, char_end)
        for e, found in enumerate(best):
            if found is not None:
                score, char_start, char_end = found
                answer = examples[e].context[char_start:char_end]
                predictions[e] = {"answer": answer, "answer_start": char_start, "score": score}
        return predictions

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
        if self.options.answer_candidates == "entities":
            logits = list(torch.stack([start_logits, end_logits], dim=1))  # (2, T) per window
            return self._decode_candidates(*spans, logits, batch, prior_weight)
        return self._decode_spans(*spans, batch)

    def _decode_spans(
        self,
        scores: torch.Tensor,
        starts: torch.Tensor,
        ends: torch.Tensor,
        batch: dict[str, Any],
    ) -> list[dict[str, Any]]:
        examples = batch["examples"]
        best: list[tuple[float, int, int, int] | None] = [None] * len(examples)
        spans = zip(scores.tolist(), starts.tolist(), ends.tolist(), strict=True)
        for f, ((score, i, j), e) in enumerate(
            zip(spans, batch["example_index"].tolist(), strict=True)
        ):
            if score > float("-inf") and (best[e] is None or score > best[e][0]):
                best[e] = (score, f, i, j)
        predictions = []
        for example, found in zip(examples, best, strict=True):
            if found is None:
                predictions.append({"answer": "", "answer_start": None, "score": None})
                continue
            score, f, i, j = found
            offset, offsets = int(batch["context_offset"][f]), batch["offsets"][f]
            char_start, char_end = offsets[i - offset][0], offsets[j - offset][1]
            char_start, char_end = self._tidy(example.context, char_start, char_end)
            answer = example.context[char_start:char_end]
            predictions.append({"answer": answer, "answer_start": char_start, "score": score})
        return predictions

    def _tidy(self, context: str, start: int, end: int) -> tuple[int, int]:
        """Drop surrounding whitespace of ``context[start:end]``; widen to whole words if asked."""
        while start < end and context[start].isspace():
            start += 1
        while end > start and context[end - 1].isspace():
            end -= 1
        if self.options.snap_to_words and start < end:
            while start > 0 and context[start - 1].isalnum() and context[start].isalnum():
                start -= 1
            while end < len(context) and context[end - 1].isalnum() and context[end].isalnum():
                end += 1
        return start, end

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
