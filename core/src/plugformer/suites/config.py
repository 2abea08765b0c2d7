"""Suite configuration: the TOML file's schema, loading it, and what it names.

A suite file (a named suite such as ``default``, shipped in ``plugformer/configs/suites/``, or
any ``<name>.toml``) is validated as :class:`SuiteConfig`: its task specs (names or files), its backbone columns (:class:`SuiteBackbone`), seeds, baselines, ensembles
(:class:`SuiteEnsemble`) and the overrides applied to every spec. Here too: resolving backbone references (``--backbone``
replacements, ``${VAR}`` expansion), finding a suite's spec files by name or path, and loading one spec as
the suite sees it (overrides applied, one seed). Planning and running cells is
:mod:`plugformer.suites.bench`.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator, model_validator

from plugformer.config import (
    SEED_MAX,
    StrictModel,
    TaskSpec,
    load_toml,
    parse_model,
    resolve_spec_paths,
)
from plugformer.errors import ConfigError
from plugformer.specs import is_path, resolve

__all__ = [
    "SuiteBackbone",
    "SuiteConfig",
    "SuiteEnsemble",
    "load_spec",
    "load_suite",
    "merge_overrides",
    "resolve_backbones",
    "spec_path",
]


class SuiteBackbone(StrictModel):
    """One backbone column of a suite."""

    name: str = Field(min_length=1)
    """Column label in reports, e.g. ``pretrained``."""
    ref: str = Field(min_length=1)
    """Backbone reference (a checkpoint dir, native:DIR, scratch:DIR, hf:NAME; paths relative to
    the working directory); ``${VAR}`` / ``${VAR:-default}`` are read from the environment;
    ``plugformer bench --backbone NAME=REF`` replaces it."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Spec settings for this backbone only, applied after the suite's ``overrides``: its own
    learning rates, batch size, budget or maximum length, e.g.
    ``{finetune = {lr_backbone = 5e-5, max_minutes = 2}, options = {max_length = 256}}``."""
    tasks: list[str] | None = None
    """Run this backbone only on these specs (spec names or task kinds), e.g. an encoder on
    ``["sentiment", "qa"]``; default: every spec of the suite."""
    task_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Spec settings for this backbone on some specs only (keys: spec names or task kinds),
    applied after ``overrides`` (a task kind's, then a spec name's): e.g. the untrained
    control's own learning rate and batch on translation, chosen on validation, where the
    spec's were tuned for a pretrained start:
    ``{"bible-en-es" = {finetune = {lr_backbone = 6e-3, batch_size = 32}}}``."""

    @field_validator("tasks")
    @classmethod
    def _some_tasks(cls, value: list[str] | None) -> list[str] | None:
        if value == []:  # the backbone's column would be silently empty
            raise ValueError(
                "an empty list runs this backbone on nothing; leave tasks out to run every spec"
            )
        return value

    @model_validator(mode="after")
    def _overrides_name_spec_fields(self) -> SuiteBackbone:
        # the error's location (backbones.N) comes from pydantic: the key is named from here on
        _check_keys(self.overrides, TaskSpec, "overrides.")
        for name, table in self.task_overrides.items():
            _check_keys(table, TaskSpec, f"task_overrides.{name}.")
        return self

    def runs(self, spec: TaskSpec) -> bool:
        """Whether this backbone has a cell for ``spec``."""
        return self.tasks is None or spec.label in self.tasks or spec.task in self.tasks

    def overrides_for(self, spec: TaskSpec) -> dict[str, Any]:
        """This backbone's settings on ``spec``: ``overrides``, then ``task_overrides`` of its
        task kind, then of its spec name (the more specific wins)."""
        out = dict(self.overrides)
        for key in dict.fromkeys((spec.task, spec.label)):
            if key in self.task_overrides:
                out = merge_overrides(out, self.task_overrides[key])
        return out


WEIGHTS = tuple(round(0.05 * i, 2) for i in range(21))
"""The default grid of an ensemble's weight on the model: 0, 0.05, ..., 1."""


class SuiteEnsemble(StrictModel):
    """A column that pools a backbone's fine-tuned model with one of a task's baselines.

    For each spec it runs on and each seed, the model cell's and the baseline's predictions
    are pooled example by example (:meth:`~plugformer.tasks.Task.fuse`) with the weight on the
    model that scores best on the validation split (ties: the weight nearest 0.5), then
    scored on test. Both cells also predict the validation split for it; nothing is trained
    again. What a model adds to a strong lexical system shows as the column's distance from
    the baseline's."""

    name: str = Field(min_length=1)
    """Column label in reports, e.g. ``minilm+tfidf``."""
    model: str = Field(min_length=1)
    """The backbone column whose model cells are pooled (a name in ``backbones``)."""
    baseline: str = Field(min_length=1)
    """The baseline pooled with them (a name of the task's baselines, e.g. ``tfidf-logreg``)."""
    tasks: list[str] | None = None
    """Specs (names or task kinds) to pool on; default: every spec the model runs on. Each
    task must implement ``Task.fuse`` and have the baseline."""
    weights: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: list(WEIGHTS), min_length=1
    )
    """Weights on the model tried on validation (default 0, 0.05, ..., 1)."""

    @field_validator("name")
    @classmethod
    def _file_name(cls, value: str) -> str:
        # it names the pooled predictions' file: predictions/ensembles/<cell key>-<name>.jsonl
        if value in (".", "..") or not re.fullmatch(r"[\w.+-]+", value):
            raise ValueError(
                "an ensemble's name names a file: letters, digits and . _ + - only, "
                f"not . or .., got {value!r}"
            )
        return value

    @field_validator("tasks")
    @classmethod
    def _some_tasks(cls, value: list[str] | None) -> list[str] | None:
        if value == []:  # the column would be silently empty
            raise ValueError(
                "an empty list pools on nothing; leave tasks out to pool on every spec"
            )
        return value

    def runs(self, spec: TaskSpec) -> bool:
        """Whether this ensemble pools on ``spec``."""
        return self.tasks is None or spec.label in self.tasks or spec.task in self.tasks


class SuiteConfig(StrictModel):
    """A benchmark suite (``plugformer/configs/suites/<name>.toml``, or any file)."""

    name: str = Field(min_length=1)
    """Suite name (default: the file name); the default run directory is runs/bench/<name>."""
    description: str = ""
    """What the suite measures (shown in the report)."""
    tasks: list[str] = Field(min_length=1)
    """Task specs: registered spec names (``movie-reviews``; ``plugformer tasks`` lists them), or
    spec files relative to the suite file, a folder above it, or the working directory."""
    backbones: list[SuiteBackbone] = Field(min_length=1)
    """Backbone columns: ``{name = "pretrained", ref = "${PLUGFORMER_BACKBONE}"}``."""
    seeds: list[Annotated[int, Field(ge=0, le=SEED_MAX)]] = Field(
        default_factory=lambda: [0, 1, 2], min_length=1
    )
    """Seeds of every model cell: a list, or a count N meaning 0..N-1 (``--seeds N`` wins)."""
    baselines: bool = True
    """Add the tasks' baselines (majority class, copy-source, ...) as report columns."""
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Applied to every task spec, e.g. ``finetune.max_steps = 50`` or ``data.max_train = 500``."""
    workers: int = Field(1, ge=1)
    """Cells run at once, each in its own process with an equal share of the idle cores
    (:mod:`plugformer.suites.workers`); 1 runs them one by one in this process. Workers find
    plugins through entry points only."""
    budget_scale: float = Field(1.0, gt=0, allow_inf_nan=False)
    """Multiplies every model cell's ``finetune.max_minutes``: a suite that runs two cells at
    once on one thread each gives each cell more minutes for the same work."""
    keep_checkpoints: bool = False
    """Keep each model cell's task checkpoint under checkpoints/<key> (default: results only);
    a cached cell without one there runs again to keep it."""
    ensembles: list[SuiteEnsemble] = Field(default_factory=list)
    """Columns pooling a backbone's model with a baseline, the weight chosen on validation:
    ``{name = "minilm+tfidf", model = "minilm", baseline = "tfidf-logreg"}``."""
    report_metrics: list[str] = Field(default_factory=list)
    """Metrics shown in the report beside each task's main one (e.g. ``["macro_f1", "chrf"]``);
    a task that does not report one shows a dash."""

    @field_validator("name")
    @classmethod
    def _one_path_component(cls, value: str) -> str:
        # the default run directory is runs/bench/<name>: "../../x" would put it elsewhere
        if value in (".", "..") or "/" in value or "\\" in value:
            raise ValueError(
                "a suite name names its run directory runs/bench/<name>: one folder name, "
                f"without / or \\ and not . or .., got {value!r}"
            )
        return value

    @field_validator("seeds", mode="before")
    @classmethod
    def _count_means_range(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError("give at least one seed (a count >= 1 or a list)")
            return list(range(value))
        return value

    @model_validator(mode="after")
    def _distinct_labels(self) -> SuiteConfig:
        for what, names in (
            ("tasks", self.tasks),
            ("backbones", [b.name for b in self.backbones]),
            ("seeds", self.seeds),
        ):
            dupes = sorted({str(n) for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what}: duplicates {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _ensembles_name_columns(self) -> SuiteConfig:
        backbones = [b.name for b in self.backbones]
        for i, ens in enumerate(self.ensembles):
            if ens.model not in backbones:
                raise ValueError(
                    f"ensembles.{i}.model: no backbone {ens.model!r} (the suite has "
                    f"{', '.join(backbones)})"
                )
            if ens.name in backbones:
                raise ValueError(f"ensembles.{i}.name: {ens.name!r} is already a backbone column")
            if not self.baselines:
                raise ValueError(
                    f"ensembles.{i}: pools with a baseline, but the suite has baselines = false"
                )
        names = [e.name for e in self.ensembles]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"ensembles: duplicates {', '.join(dupes)}")
        return self

    @model_validator(mode="after")
    def _overrides_name_spec_fields(self) -> SuiteConfig:
        _check_keys(self.overrides, TaskSpec, "overrides.")
        return self


SUITE_OWNED = {
    "seed": "the suite sets each cell's seed (seeds = [...], or --seeds N)",
    "backbone": "a suite's backbones are its columns (backbones = [...], or --backbone NAME=REF)",
    "out_dir": "a suite writes its cells in its run directory (--out)",
    "name": "a spec's name is its report row (set it in the spec file)",
    "task": "a spec's task is its file's (list another spec in tasks)",
}
"""Spec fields a suite decides for every cell: an override of one was ignored, silently."""


def _check_keys(data: Mapping[str, Any], model: type[BaseModel], prefix: str) -> None:
    """Every key of a nested override table must be a field of ``model`` (free below ``options``),
    and none a field the suite decides (:data:`SUITE_OWNED`)."""
    for key, value in data.items():
        if model is TaskSpec and key in SUITE_OWNED:
            raise ValueError(f"spec key {prefix + key!r} cannot be overridden: {SUITE_OWNED[key]}")
        field = model.model_fields.get(key)
        if field is None:
            hint = difflib.get_close_matches(key, model.model_fields, n=1)
            raise ValueError(
                f"unknown spec key {prefix + key!r}"
                + (f" (did you mean {prefix + hint[0]!r}?)" if hint else "")
            )
        sub = field.annotation
        if isinstance(value, Mapping) and isinstance(sub, type) and issubclass(sub, BaseModel):
            _check_keys(value, sub, f"{prefix}{key}.")


def load_suite(path: str | Path, seeds: int | None = None) -> SuiteConfig:
    """Read and validate a suite file; ``seeds`` (a count) replaces its seeds."""
    path = Path(path)
    raw = load_toml(path)
    raw.setdefault("name", path.stem)
    if seeds is not None:
        raw["seeds"] = seeds
    return parse_model(SuiteConfig, raw, str(path))


def resolve_backbones(suite: SuiteConfig, given: Mapping[str, str] | None = None) -> dict[str, str]:
    """Label → reference, after ``--backbone`` replacements and ``${VAR}`` expansion."""
    given = dict(given or {})
    labels = [b.name for b in suite.backbones]
    for label in given:
        if label not in labels:
            raise ConfigError(
                f"--backbone {label}=...: the suite has no backbone {label!r} (it has {', '.join(labels)})"
            )
    return {b.name: _expand(given.get(b.name, b.ref), b.name) for b in suite.backbones}


def _expand(ref: str, label: str) -> str:
    """``${VAR}`` and ``${VAR:-default}`` from the environment, as a shell expands them."""

    def var(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name) or default
        if value is None:
            raise ConfigError(
                f"backbone {label!r}: ${{{name}}} is not set; export it or pass --backbone {label}=REF"
            )
        return value

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", var, ref)


def spec_path(suite_file: Path, entry: str) -> Path:
    """Where a suite's task spec ``entry`` lives: the file registered under that name, or a file
    next to the suite file, in a folder above it, or in the working directory."""
    if not is_path(entry):
        try:
            return resolve(entry, "task")
        except ConfigError as exc:
            raise ConfigError(f"{suite_file}: task spec {exc}") from None
    here = suite_file.resolve().parent
    for base in (here, *here.parents, Path.cwd()):
        if (base / entry).is_file():
            return base / entry
    raise ConfigError(
        f"{suite_file}: task spec {entry!r} not found next to the suite, in a folder above it, "
        "or in the working directory"
    )


def merge_overrides(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, table by table (nested keys of ``extra`` win)."""
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(value, Mapping) and isinstance(out.get(key), Mapping)
        out[key] = merge_overrides(out[key], value) if both else value
    return out


def load_spec(
    path: Path, overrides: Mapping[str, Any], seed: int, source: str | None = None
) -> TaskSpec:
    """A suite's view of one spec file: its overrides applied, this seed, no progress bars.
    ``source`` is what an invalid value is blamed on (default: the spec file)."""
    spec = resolve_spec_paths(load_toml(path), path)  # paths relative to the spec file
    raw = merge_overrides({"name": path.stem, "finetune": {"progress": False}}, spec)
    return parse_model(
        TaskSpec,
        merge_overrides(raw, {**overrides, "seed": seed}),
        source or f"{path} (in a suite)",
    )
