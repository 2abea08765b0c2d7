"""The :class:`Task` base class: what a task plugin implements.

This module is the plugin author's guide. A task turns examples into tensors, builds a head
on top of any backbone, says how to compute the loss, how to decode predictions, and which
metrics to report. The core owns everything else: the Trainer, devices, batching, optimisers,
checkpoints, suites. A task never touches the Trainer.

Data flow (``B`` = batch of features, ``E`` = examples in an evaluation batch)::

    raw row ──parse_example──▶ Example ──encode──▶ [features, ...] ──collate──▶ batch
    batch ──forward(backbone, head)──▶ outputs ──loss──▶ scalar
    eval batch ──predict──▶ [prediction per example] ──update_metrics──▶ torchmetrics

Lifecycle (the order the core calls a task in)::

    __init__(options, tokenizer) → check_backbone(backbone)   # sets self.max_len, the length budget
      → prepare(train) [fine-tuning] | load_state_dict(state) [loading a checkpoint]
      → build_head(backbone) → encode/collate → forward/loss | predict → update_metrics

``encode`` must keep every feature within ``self.max_len`` tokens (``self.length_budget``
raises if the core has not handed it over yet). Unlabelled inputs (``plugformer predict``)
leave the label field ``None``. ``update_metrics`` builds its tensors on each metric's own
``device`` (the core moves metrics with the model).

Training batches hold features of any examples; evaluation batches hold whole examples
(all features of each, e.g. every QA window) plus ``batch["examples"]`` (the E examples)
and ``batch["example_index"]`` (LongTensor, feature → position in ``examples``).

Importing this module does not import torch: torch-using code of a task may import at the
top of its own module, and the plugin registers it lazily (see ``register_tasks``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, Field, PrivateAttr, ValidationError

from plugformer.config import StrictModel
from plugformer.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

    from plugformer.tokenizer import Tokenizer

__all__ = [
    "SEP",
    "Baseline",
    "LocatedExample",
    "Task",
    "TaskOptions",
    "example_location",
    "fit_once",
    "run_baseline",
    "score_predictions",
]

SEP = "<sep>"
"""The separator token as text: a task's pretraining documents write it between fields, and
the tokenizer maps it to ``tokenizer.sep_id`` (the id ``encode`` puts there)."""


class LocatedExample(BaseModel):
    """A base for ``Example`` models that remember where they were read: ``parse_example``
    records each one's ``file:line`` in ``_where``, so that an error found later (a missing
    label in ``prepare``, a target missing at training time) can name the row
    (:func:`example_location`)."""

    _where: str = PrivateAttr("")


def example_location(example: Any) -> str:
    """Where an example came from, for error messages: its ``file:line`` when it was read from
    a file, else ``example 'ID'``, else ``an example without an id``."""
    where = getattr(example, "_where", "") or ""
    if where:
        return where
    ident = getattr(example, "id", None)
    return f"example {ident!r}" if ident is not None else "an example without an id"


def _json_kind(value: Any) -> str:
    """What a value read from JSON is, in JSON's words (``a number``, ``null``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class TaskOptions(StrictModel):
    """Options every task accepts; a task's ``Options`` subclasses this."""

    max_length: int | None = Field(None, ge=1)
    """Truncate encoded inputs to this many tokens (default: the backbone's context)."""
    columns: dict[str, str] = {}
    """Map example field → column name in CSV/TSV/JSONL files, e.g. {text = "sentence"}."""


Baseline = Callable[..., list[Any]]
"""``baseline(train, test, validation=...) -> predictions``: a simple reference system.

It returns one prediction per test example, in the format ``predict`` returns, and is scored
with the task's own metrics. The contract (see :func:`run_baseline`):

* ``validation`` (keyword): the validation examples, passed only when the callable names a
  ``validation`` parameter (or takes ``**kwargs``), so two-argument baselines keep working.
  Every choice a baseline makes (hyperparameters, variants) is made on these, never on
  ``test``; an empty list means "use your defaults".
* ``definition`` (optional attribute, ``str``): a one-line description of the system for
  reports, e.g. ``"TF-IDF + logistic regression, C chosen on validation accuracy"``.
* ``chosen`` (optional attribute, ``dict``, set by the call): what it picked on validation,
  e.g. ``{"C": 4.0}``.

A baseline with settings is most simply a small class whose ``__call__`` tunes on
``validation`` and sets ``self.chosen``; :meth:`Task.baselines` makes new instances.
"""


def fit_once(cache: dict[str, Any], data: Any, fit: Callable[[], Any]) -> Any:
    """``fit()``, computed once per process for ``data``: ``cache`` (the caller's own dict)
    keeps results by the sha256 of ``data``'s JSON. A suite fine-tunes every backbone and seed
    on the same training examples in worker processes that run cell after cell, so what a
    task's ``prepare`` fits on them (a baseline used as the model's input) is fitted once.
    ``data`` must hold everything the result depends on; a deep copy is returned, so a caller
    may change its own."""
    import copy
    import hashlib
    import json

    key = hashlib.sha256(json.dumps(data).encode()).hexdigest()
    if key not in cache:
        cache[key] = fit()
    return copy.deepcopy(cache[key])


def run_baseline(
    baseline: Baseline, train: list[Any], test: list[Any], validation: list[Any]
) -> tuple[list[Any], dict[str, Any]]:
    """Call ``baseline`` (with ``validation`` if it accepts it): its predictions, and what it
    reports: ``{"definition", "chosen", "tuned_on"}`` (``tuned_on`` is ``"validation"`` when it
    was given validation examples, else ``None``)."""
    import inspect

    try:
        params = inspect.signature(baseline).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: the old contract
        params = []  # type: ignore[assignment]
    accepts = any(p.name == "validation" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    if accepts:
        predictions = baseline(train, test, validation=validation)
    else:
        predictions = baseline(train, test)
    info = {
        "definition": getattr(baseline, "definition", None),
        "chosen": dict(getattr(baseline, "chosen", None) or {}),
        "tuned_on": "validation" if accepts and validation else None,
    }
    return predictions, info


def score_predictions(
    task: Task, predictions: Sequence[Any], examples: Sequence[Any], batch_size: int = 64
) -> dict[str, float]:
    """The task's metrics of ``predictions`` (one per example), updated batch by batch as in
    evaluation: what a baseline tunes on."""
    metrics = task.metrics()
    for i in range(0, len(examples), batch_size):
        task.update_metrics(
            metrics, list(predictions[i : i + batch_size]), list(examples[i : i + batch_size])
        )
    return task.compute_metrics(metrics)


class Task:
    """Base class of every task. Subclass it and fill in the class attributes and methods.

    Class attributes
    ----------------
    name: the task kind users write in specs (``"sentiment"``).
    Example: a pydantic model of one example; every input row is validated against it.
        Declare its texts ``StrictStr``: a number given for a text is then refused, not read
        as a string (``coerce_numbers_to_str`` is for ids and labels).
    Options: a pydantic model (subclass of TaskOptions) of the task's options.
    requires_causal: True if the task decodes left to right (translation, generation): a
        bidirectional backbone is refused with a clear message. An instance may set it from
        its options (a classifier started from the LM head, ``head = "label_words"``).
    main_metric: the metric name (a key of ``metrics()``) used for model selection and the
        headline of suite reports.
    higher_is_better: direction of ``main_metric``.
    version: the task's own version (usually its distribution's); stored in task
        checkpoints; ``compatible_versions`` says which it loads.
    """

    name: ClassVar[str]
    Example: ClassVar[type[BaseModel]]
    Options: ClassVar[type[TaskOptions]] = TaskOptions
    requires_causal: ClassVar[bool] = False
    main_metric: ClassVar[str]
    higher_is_better: ClassVar[bool] = True
    version: ClassVar[str] = "0"
    compatible_versions: ClassVar[str] = ""
    """PEP 440 specifier of task-checkpoint versions this class loads (default: same major)."""

    def __init__(
        self,
        options: TaskOptions | dict[str, Any] | None = None,
        tokenizer: Tokenizer | None = None,
    ):
        if isinstance(options, TaskOptions):
            self.options = options
        else:
            from plugformer.config import parse_model

            self.options = parse_model(
                self.Options, dict(options or {}), f"options of task {self.name!r}"
            )
        self.tokenizer = tokenizer
        self.max_len: int | None = self.options.max_length
        """The length budget: longest input fed to the backbone (``options.max_length`` until
        ``check_backbone`` sets it from the backbone's context)."""
        self.pretrain_max_tokens: int | None = None
        """Set by task-aware pretraining, with ``tokenizer``, before ``pretrain_documents``:
        the tokens a document may take (its ``<eos>`` not counted) to be read whole in one
        block of the pretraining context. ``None``: not known (the documents train the
        tokenizer itself)."""

    # ------------------------------------------------------------------ data
    def parse_example(self, raw: dict[str, Any], where: str = "<input>") -> Any:
        """Validate one raw row as ``self.Example``; errors name ``where`` (file:line) and field."""
        try:
            example = self.Example.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "(row)"
            msg = err["msg"]
            if err["type"] == "string_type":  # a text given as a number, a list, null, ...
                msg = f"expected a string, got {_json_kind(err.get('input'))}"
            raise DataError(f"{where}: field {field!r}: {msg}") from None
        if "_where" in getattr(type(example), "__private_attributes__", {}):
            example._where = where  # an Example with this private attribute learns its file:line
        return example

    def read_file(self, path: str | Path) -> list[Any]:
        """Read and validate every example of a JSONL/CSV/TSV file (or a format a plugin reads
        through the ``read_examples`` hook)."""
        from plugformer.data.readers import read_records
        from plugformer.hook_calls import read_examples

        raw = read_examples(str(path), self)
        if raw is not None:
            return [self.parse_example(r, f"{path}:{i + 1}") for i, r in enumerate(raw)]
        return [
            self.parse_example(rec, where)
            for where, rec in read_records(path, self.options.columns)
        ]

    def prepare(self, train_examples: Sequence[Any]) -> None:
        """Learn what the task needs from the training set (e.g. the label names). Optional."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state learned by ``prepare``; stored in task checkpoints."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def example_from_input(self, value: str | dict[str, Any]) -> Any:
        """Build an example from user input for ``plugformer predict`` (a string or a dict)."""
        if isinstance(value, dict):
            return self.parse_example(value)
        raise DataError(
            f"task {self.name!r} needs named fields per input, not one text: a dict in Python, "
            "a JSON object on the command line"
        )

    def read_input(self, value: str | Mapping[str, Any]) -> Any:
        """An example from one user input (``plugformer predict``, ``Predictor.predict``): a
        dict may name its fields by the data files' column names (``options.columns``), as the
        training data did; then :meth:`example_from_input`. Not meant to be overridden."""
        columns = getattr(self.options, "columns", None)
        if isinstance(value, Mapping):
            value = dict(value)
            for field, column in (columns or {}).items():
                if column in value and field not in value:
                    value[field] = value.pop(column)
        return self.example_from_input(value)

    # ------------------------------------------------------------------ tensors
    def encode(self, example: Any, *, train: bool) -> list[dict[str, Any]]:
        """Features for one example (usually one; QA gives one per context window)."""
        raise NotImplementedError

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Stack features into a batch of tensors (pad with ``self.tokenizer.pad_id``)."""
        raise NotImplementedError

    def max_length(self, backbone: Any) -> int:
        """Longest input this task feeds the backbone: its context, capped by ``options.max_length``."""
        limit = backbone.max_seq_len
        return min(limit, self.options.max_length) if self.options.max_length else limit

    @property
    def length_budget(self) -> int:
        """``self.max_len``, or a clear error if the core has not called ``check_backbone`` yet."""
        if self.max_len is None:
            from plugformer.errors import PlugformerError

            raise PlugformerError(
                f"task {self.name!r} has no length budget yet: call check_backbone(backbone) "
                "before encode"
            )
        return self.max_len

    # ------------------------------------------------------------------ model
    def build_head(self, backbone: Any) -> nn.Module:
        """The task's trainable head on top of ``backbone`` (read ``backbone.d_model``, and
        ``backbone.causal``; reuse ``backbone.lm_logits`` for generative tasks)."""
        raise NotImplementedError

    def forward(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> Any:
        """Run backbone and head on a batch. Default: ``head(backbone(ids, mask), batch)``."""
        hidden = backbone(batch["input_ids"], batch.get("attention_mask"))  # (B, T, C)
        return head(hidden, batch)

    def loss(self, outputs: Any, batch: dict[str, Any]) -> torch.Tensor:
        """Scalar training loss."""
        raise NotImplementedError

    def train_loss(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        """The loss of one training batch: ``loss(forward(...))``. A task may override it with
        a faster path that gives the same value (the LM tasks fuse head and loss)."""
        return self.loss(self.forward(backbone, head, batch), batch)

    def predict(self, backbone: Any, head: nn.Module, batch: dict[str, Any]) -> list[Any]:
        """Decoded predictions, one per example of an evaluation batch (JSON-serialisable)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, Any]:
        """Fresh torchmetrics objects (name → Metric), updated batch by batch."""
        raise NotImplementedError

    def update_metrics(
        self, metrics: dict[str, Any], predictions: list[Any], examples: list[Any]
    ) -> None:
        """Update ``metrics`` with one batch of predictions and their gold examples."""
        raise NotImplementedError

    def compute_metrics(self, metrics: dict[str, Any]) -> dict[str, float]:
        """Final values; default ``float(metric.compute())`` for each."""
        return {k: float(m.compute()) for k, m in metrics.items()}

    def example_statistics(self, predictions: Sequence[Any], examples: Sequence[Any]) -> Any:
        """Per-example statistics of the main metric on these predictions, from which reports
        recompute it on resamples of the test set (an
        :class:`~plugformer.resampling.ExampleStatistics`), or ``None``.

        The default asks the main metric's object, updated with every prediction: the core's
        BLEU/chrF, ``MeanOf`` and ROUGE-L metrics keep per-example state. Override it when the
        main metric is a mean of per-example scores that the metric object does not keep."""
        from plugformer.resampling import metric_statistics

        metrics = self.metrics()
        if self.main_metric not in metrics or not predictions:
            return None
        self.update_metrics(metrics, list(predictions), list(examples))
        return metric_statistics(metrics[self.main_metric])

    def metric_info(self) -> dict[str, Any]:
        """``{metric: MetricInfo}`` for every metric (definition, range, direction, signature);
        stored with every result. Task-wide facts (label set, …) go under ``"_task"``."""
        return {}

    def baselines(self) -> dict[str, Baseline]:
        """Simple reference systems for suite reports (name → :data:`Baseline`), new
        instances on every call; each tunes on validation only."""
        return {}

    def fuse(self, a: Any, b: Any, weight: float) -> Any:
        """One prediction of an example from two systems' predictions of it: ``weight`` on
        ``a``, ``1 - weight`` on ``b`` (0 ≤ weight ≤ 1). A suite's ``ensembles`` use it to
        pool a fine-tuned model with a baseline, the weight chosen on validation; a task that
        predicts probabilities pools them (:class:`~plugformer.blocks.ClassificationTask`:
        a weighted geometric mean). The default refuses: a task opts in."""
        from plugformer.errors import PlugformerError

        raise PlugformerError(
            f"task {self.name!r} cannot pool two systems' predictions "
            "(its plugin does not implement Task.fuse)"
        )

    # ------------------------------------------------------------------ pretraining
    def pretrain_documents(self, examples: Sequence[Any]) -> Iterable[str]:
        """Language-model documents made of training examples, for task-aware pretraining.

        A pretraining config that names this task (``data.tasks``) mixes these documents into
        the corpus, so the backbone learns the task's format before fine-tuning (as T5 and
        FLAN put supervised tasks into pretraining). Write the fields in the order and with
        the separators that ``encode`` uses, so that pretraining and fine-tuning see the same
        token sequences: the separator is the special token :data:`SEP` written into the text;
        a generated part follows it after a space (``f"{source}{SEP} {target}"``, as
        :func:`~plugformer.blocks.encoding.after_sep` encodes it), so that its first word is the
        token it is inside a sentence; the corpus ends each document with ``<eos>``. Only
        training examples are ever passed here. The default refuses: a task opts in.

        The pretraining corpus packs each document whole into one block of its context where
        it fits, and a longer one is cut where the blocks end. So a task whose documents can
        run longer than ``self.pretrain_max_tokens`` (when set, with ``self.tokenizer``)
        should shorten them the way its ``encode`` does (a prompt cut to its budget, a
        passage to a window around the answer), so that the part fine-tuning learns from is
        read together with what it depends on.
        """
        from plugformer.errors import PlugformerError

        raise PlugformerError(
            f"task {self.name!r} does not make pretraining documents "
            "(its plugin does not implement Task.pretrain_documents)"
        )

    # ------------------------------------------------------------------ checks
    def check_backbone(self, backbone: Any) -> None:
        """Refuse a backbone this task cannot use (one clear line); learn the length budget.

        The core calls it with the backbone before ``prepare``, ``build_head`` and ``encode``;
        an override calls ``super().check_backbone(backbone)``.
        """
        from plugformer.errors import PlugformerError

        if self.requires_causal and not getattr(backbone, "causal", True):
            raise PlugformerError(
                f"task {self.name!r} needs a causal backbone (it decodes, or reads the LM "
                "head, left to right); "
                "this backbone is bidirectional (masked-LM / encoder)"
            )
        self.max_len = self.max_length(backbone)
