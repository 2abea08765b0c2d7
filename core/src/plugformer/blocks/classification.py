"""``ClassificationTask``: one label for one or more text fields (single text, pairs, triples).

A subclass names its fields and is done::

    class NLITask(ClassificationTask):
        name = "nli"
        text_fields = ("premise", "hypothesis")

Data flow::

    {"premise": ..., "hypothesis": ..., "label": "entailment"}
        ──encode──▶ premise <sep> hypothesis <eos>  (longest-first truncation to the budget)
        ──collate─▶ input_ids, attention_mask (B, T), labels (B,)
        ──backbone─▶ (B, T, C) ──pool──▶ (B, C) ──dropout, linear──▶ logits (B, K)

Labels keep their names end to end (:class:`LabelSet`); predictions are
``{"label": name, "probs": {name: p}}``. The declarative task ``classification`` is this
class with the fields, labels, metrics and baselines read from a spec's ``[options]``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictStr,
    create_model,
    field_validator,
    model_validator,
)
from torch import nn

from plugformer.blocks.encoding import encode_fields, pad_collate
from plugformer.blocks.heads import PooledHead, init_from_lm_head, resolve_pooling
from plugformer.blocks.labels import LabelSet
from plugformer.blocks.metrics import (
    CLASSIFICATION_INFO,
    classification_metrics,
    majority_baseline,
    on_device,
)
from plugformer.errors import ConfigError, DataError, PluginError
from plugformer.tasks import SEP, Baseline, LocatedExample, Task, TaskOptions, example_location

__all__ = ["ClassificationOptions", "ClassificationTask", "classification_example"]


class _LocatedExample(LocatedExample):
    """Base of the generated example models: ``Task.parse_example`` records each example's
    file:line in ``_where``, so label errors in ``prepare`` can name the row."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


def classification_example(
    name: str, text_fields: Sequence[str], label_field: str = "label"
) -> type[BaseModel]:
    """A pydantic example model: optional ``id``, required non-empty texts, optional label.

    Unknown fields are ignored; an id or label number is read as a string (``label = 1`` →
    ``"1"``), a text must be a string (``"text": 5`` is refused).
    """
    fields: dict[str, Any] = {"id": (str | None, None)}
    fields.update({f: (StrictStr, Field(min_length=1)) for f in text_fields})
    fields[label_field] = (str | None, None)
    return create_model(name, __base__=_LocatedExample, **fields)


def prediction(probs: Sequence[float], labels: Sequence[str]) -> dict[str, Any]:
    """``{"label": most probable name, "probs": {name: p}}`` (ties: the first in ``labels``)."""
    best = max(range(len(labels)), key=lambda k: probs[k])
    return {
        "label": labels[best],
        "probs": {n: float(p) for n, p in zip(labels, probs, strict=True)},
    }


class ClassificationOptions(TaskOptions):
    """Options of a classification task (``[options]`` of a spec)."""

    text_fields: list[str] | None = None
    """Example fields joined as the input, in order (default: the task class's ``text_fields``)."""
    label_field: str | None = None
    """Example field holding the label (default: the task class's, ``label``)."""
    labels: list[str] | None = None
    """Fixed label names in output order; default: the training labels, sorted."""
    head: Literal["pooled", "label_words"] = "pooled"
    """``pooled``: a linear layer on the pooled hidden states (``pooling``), from a random
    start. ``label_words``: the input ends in ``<sep>``, as in this task's pretraining
    documents (``text <sep> label``), and the linear layer on that ``<sep>`` state starts as
    the backbone's LM head restricted to each label's first token: what a causal backbone
    learnt from the task's documents in pretraining is the classifier's start (prompt-based
    fine-tuning, as in PET or LM-BFF). Needs a causal backbone with an affine LM head, label
    names whose first tokens differ, and ``pooling`` ``auto`` or ``last``."""
    pooling: Literal["auto", "last", "mean"] = "auto"
    """``last`` real token, ``mean`` of real tokens, or ``auto`` (last if causal, else mean)."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Dropout on the pooled vector, before the linear classifier."""
    class_weights: bool = False
    """Weight the cross-entropy by inverse label frequency."""
    metrics: list[Literal["accuracy", "macro_f1", "mcc"]] | None = None
    """Metrics to report (default: the task class's ``default_metrics``); when given, the first
    is the main metric unless ``main_metric`` names one."""
    main_metric: str | None = None
    """Metric for model selection and report headlines (default: the first of ``metrics`` when
    given, else the task class's ``main_metric``)."""
    baselines: list[Literal["majority"]] = ["majority"]
    """Reference systems scored beside the model."""

    @field_validator("labels", mode="before")
    @classmethod
    def _names_as_strings(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _consistent(self) -> ClassificationOptions:
        if self.labels is not None:
            if len(self.labels) < 2:
                raise ValueError("labels: give at least two label names")
            if len(set(self.labels)) != len(self.labels):
                raise ValueError(f"labels: names must be distinct, got {self.labels}")
        if self.metrics is not None and not self.metrics:
            raise ValueError("metrics: name at least one metric")
        if self.main_metric is not None and self.main_metric not in (
            self.metrics or [self.main_metric]
        ):
            raise ValueError(
                f"main_metric {self.main_metric!r} is not one of metrics {self.metrics}"
            )
        if self.text_fields is not None and not self.text_fields:
            raise ValueError("text_fields: name at least one field")
        if self.head == "label_words" and self.pooling == "mean":
            raise ValueError(
                'head "label_words" reads the state at the closing <sep>: pooling must be '
                '"auto" or "last", not "mean"'
            )
        return self


class ClassificationTask(Task):
    """Text classification over ``text_fields``; subclasses set ``name`` and the fields."""

    text_fields: ClassVar[tuple[str, ...]] = ("text",)
    label_field: ClassVar[str] = "label"
    default_metrics: ClassVar[tuple[str, ...]] = ("accuracy", "macro_f1", "mcc")
    """Metrics reported when ``options.metrics`` is not given; ``main_metric`` is one of them."""
    Example: ClassVar[type[BaseModel]]
    Options = ClassificationOptions
    main_metric = "accuracy"
    options: ClassificationOptions

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Example" not in cls.__dict__:  # built from the declared fields
            cls.Example = classification_example(
                f"{cls.__name__}Example", cls.text_fields, cls.label_field
            )

    def __init__(self, options: Any = None, tokenizer: Any = None) -> None:
        super().__init__(options, tokenizer)
        opts = self.options
        self.fields = tuple(opts.text_fields or self.text_fields)
        self.label_key = opts.label_field or self.label_field
        if (self.fields, self.label_key) != (self.text_fields, self.label_field):
            self.Example = classification_example(  # type: ignore[misc]
                f"{type(self).__name__}Example", self.fields, self.label_key
            )
        self.metric_names = list(opts.metrics or self.default_metrics)
        """The metrics reported: ``options.metrics``, else the class's ``default_metrics``."""
        # The options choose the main metric when they name one or list the metrics; else the
        # class's own (a subclass's ``main_metric = "macro_f1"`` holds).
        main = opts.main_metric or (opts.metrics[0] if opts.metrics else type(self).main_metric)
        own_metrics = type(self).metrics is not ClassificationTask.metrics  # names we can't know
        if main not in self.metric_names and not own_metrics:
            raise ConfigError(
                f"task {self.name!r}: main_metric {main!r} is not one of its metrics "
                f"{self.metric_names} (set default_metrics or options.metrics to include it)"
            )
        self.main_metric = main  # type: ignore[misc]
        self.label_set = LabelSet(self.name, opts.labels, field=self.label_key)
        if opts.head == "label_words":  # the LM head's predictions at <sep> are the start
            self.requires_causal = True  # type: ignore[misc]

    @property
    def labels(self) -> list[str]:
        """The label names, in output order."""
        return self.label_set.names

    @property
    def label_counts(self) -> list[int]:
        """Training examples per label (after ``prepare``)."""
        return self.label_set.counts

    # ------------------------------------------------------------------ data
    def gold(self, example: Any) -> str | None:
        return getattr(example, self.label_key)

    def prepare(self, train_examples: Sequence[Any]) -> None:
        wheres = [getattr(ex, "_where", "") or "" for ex in train_examples]
        self.label_set.learn([self.gold(ex) for ex in train_examples], wheres)

    def state_dict(self) -> dict[str, Any]:
        return self.label_set.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.label_set.load_state_dict(state)

    def example_from_input(self, value: str | dict[str, Any]) -> Any:
        if isinstance(value, str):
            if len(self.fields) > 1:
                raise DataError(
                    f"task {self.name!r} needs the fields {list(self.fields)}, not one text: a "
                    "dict in Python; a JSON object, or --field NAME=VALUE for each, on the "
                    "command line"
                )
            value = {self.fields[0]: value}
        return self.parse_example(value, "<input>")

    def pretrain_documents(self, examples: Sequence[Any]) -> Iterator[str]:
        """``field1 <sep> field2 … <sep> label``: the texts as ``encode`` joins them, then the
        label name as a word, so the language model learns what the classifier is asked."""
        for ex in examples:
            if self.gold(ex) is not None:
                yield SEP.join([*(getattr(ex, f) for f in self.fields), self.gold(ex)])

    # ------------------------------------------------------------------ tensors
    def encode(self, example: Any, *, train: bool) -> list[dict[str, Any]]:
        texts = [getattr(example, f) for f in self.fields]
        if self.options.head == "label_words":  # t1 <sep> t2 <sep>: the label comes next
            ids = encode_fields(self.tokenizer, texts, self.length_budget - 1, end=False)
            ids.append(self.tokenizer.sep_id)
        else:
            ids = encode_fields(self.tokenizer, texts, self.length_budget)
        feature: dict[str, Any] = {"input_ids": ids}
        if train or self.gold(example) is not None:
            feature["labels"] = self.label_set.index(
                self.gold(example), example.id, where=example_location(example)
            )
        return [feature]

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        return pad_collate(features, {"input_ids": self.tokenizer.pad_id})

    # ------------------------------------------------------------------ model
    def build_head(self, backbone: Any) -> nn.Module:
        self.check_backbone(backbone)
        names = self.label_set.require()
        if self.options.head == "pooled":
            pooling = resolve_pooling(self.options.pooling, backbone)
            return PooledHead(backbone.d_model, len(names), pooling, self.options.dropout)
        if not hasattr(backbone, "lm_logits"):  # check_backbone refused a bidirectional one
            raise ConfigError(
                f'task {self.name!r}: options.head = "label_words" needs a backbone with an LM '
                f"head; this {getattr(backbone, 'family', '')} backbone has none (use "
                'head = "pooled")'
            )
        head = PooledHead(backbone.d_model, len(names), "last", self.options.dropout)
        try:
            init_from_lm_head(head, backbone, self.label_tokens())
        except ValueError as exc:
            raise ConfigError(f'task {self.name!r}: options.head = "label_words": {exc}') from None
        return head

    def label_tokens(self) -> list[int]:
        """Each label's first token where it follows ``<sep>`` in :meth:`pretrain_documents`
        (``text<sep>label``); distinct, or the labels could not be told apart."""
        names = self.label_set.require()
        tokens = []
        for name in names:
            ids = self.tokenizer.encode(f"{SEP}{name}")
            if len(ids) < 2 or ids[0] != self.tokenizer.sep_id:
                raise ConfigError(f"task {self.name!r}: label {name!r} encodes to no token")
            tokens.append(ids[1])
        if len(set(tokens)) < len(tokens):
            clash = [n for n, t in zip(names, tokens, strict=True) if tokens.count(t) > 1]
            raise ConfigError(
                f'task {self.name!r}: options.head = "label_words" needs labels whose first '
                f"tokens differ; {clash} begin with the same token"
            )
        return tokens

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        expected = (batch["labels"].size(0), len(self.label_set.require()))
        if tuple(outputs.shape) != expected:
            # A custom head that forgot to pool gives (B, T, K): torch's message would not say so.
            raise PluginError(
                f"task {self.name!r}: the head returned logits of shape {tuple(outputs.shape)}; "
                f"expected {expected}, one row of {expected[1]} label logits per example"
            )
        weight = None
        if self.options.class_weights and self.label_set.counts:
            weight = torch.tensor(self.label_set.inverse_frequency(), device=outputs.device)  # (K,)
        return F.cross_entropy(outputs.float(), batch["labels"], weight=weight)

    @torch.no_grad()
    def predict(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> list[Any]:
        logits = self.forward(backbone, head, batch)  # (B, K): one feature per example
        probs = logits.float().softmax(dim=-1).tolist()
        return [prediction(p, self.label_set.names) for p in probs]

    def fuse(self, a: Any, b: Any, weight: float) -> dict[str, Any]:
        """The weighted geometric mean of two predictions' probabilities, renormalised
        (log-linear pooling: ``weight · log p_a + (1 - weight) · log p_b``, as a product of
        experts). Probabilities are floored at 1e-12, so a system certain of one label
        cannot veto the other's whatever the weight; ``weight`` 1 gives ``a``'s label."""
        import math

        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be between 0 and 1, got {weight}")
        names = self.label_set.names
        pa, pb = a["probs"], b["probs"]
        logs = [
            weight * math.log(max(pa.get(n, 0.0), 1e-12))
            + (1 - weight) * math.log(max(pb.get(n, 0.0), 1e-12))
            for n in names
        ]
        top = max(logs)
        exp = [math.exp(v - top) for v in logs]
        total = sum(exp)
        return prediction([e / total for e in exp], names)

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, Any]:
        return classification_metrics(len(self.label_set.require()), self.metric_names)

    def update_metrics(
        self, metrics: dict[str, Any], predictions: list[Any], examples: list[Any]
    ) -> None:
        preds = [self.label_set.index(p["label"]) for p in predictions]
        gold = [
            self.label_set.index(self.gold(ex), ex.id, where=example_location(ex))
            for ex in examples
        ]
        for metric in metrics.values():
            metric.update(on_device(metric, preds), on_device(metric, gold))

    def example_statistics(self, predictions: Sequence[Any], examples: Sequence[Any]) -> Any:
        """Accuracy is the mean of one 0/1 per example; macro-F1 and MCC are not means, so
        they have none (their reports keep the interval over seeds)."""
        from plugformer.resampling import ExampleStatistics

        if self.main_metric != "accuracy":
            return None
        rows = [
            [float(p["label"] == self.gold(ex))]
            for p, ex in zip(predictions, examples, strict=True)
        ]
        return ExampleStatistics("mean", rows)

    def metric_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {m: CLASSIFICATION_INFO[m] for m in self.metric_names}
        return {**info, "_task": {"labels": self.label_set.names}}

    def baselines(self) -> dict[str, Baseline]:
        out: dict[str, Baseline] = {}
        if "majority" in self.options.baselines:
            names = self.label_set.names
            out["majority"] = majority_baseline(
                self.gold,
                lambda top: prediction([float(n == top) for n in names], names),
            )
        return out
