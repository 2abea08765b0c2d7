"""What the ``qa`` task reads and how it is set up: :class:`QAExample` (a question about a
context, with its gold :class:`Answer` spans) and :class:`QAOptions` (the ``[options]`` of a
task spec). Each field is documented where it is declared; each cross-field rule is one
validator. :class:`~plugformer_qa.task.QATask` names them as its ``Example`` and ``Options``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from plugformer.tasks import LocatedExample, TaskOptions

__all__ = ["Answer", "QAExample", "QAOptions"]


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
    context: StrictStr
    """The passage the answer is extracted from."""
    question: StrictStr = Field(min_length=1)
    """The question (a string: a number is refused, not read as one)."""
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
