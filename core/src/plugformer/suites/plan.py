"""Planning a benchmark suite: its cells, and the key that names each.

:func:`plan_cells` turns a suite (:class:`~plugformer.suites.config.SuiteConfig`) and its
backbone references into :class:`Cell` s, task by task (baselines first, then seed by seed
each backbone), checking every spec, override and backbone ``tasks`` entry before any cell
runs. A cell's key (:func:`cell_key`) hashes everything that decides its result: the
resolved spec without presentation fields, the backbone's weights and tokenizer hashes, the
data version, the task plugin's and the core's versions and source hashes, the seed. Running
the cells is :mod:`plugformer.suites.bench`'s job.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal

from plugformer.config import TaskSpec
from plugformer.errors import ConfigError, PlugformerError
from plugformer.suites.config import (
    SuiteConfig,
    SuiteEnsemble,
    load_spec,
    merge_overrides,
    spec_path,
)

__all__ = [
    "Cell",
    "backbone_identity",
    "cell_key",
    "code_identity",
    "data_version",
    "plan_cells",
    "source_hash",
]

# Spec fields that name or display a cell but do not change its result: left out of the key.
PRESENTATION_FIELDS = {
    "name": None,
    "out_dir": None,
    "backbone": None,
    "finetune": {"progress": None},
}

# Core modules that only present results, as paths in the package (a trailing / is a whole
# subpackage): editing them does not re-run cells.
PRESENTATION_MODULES = (
    "suites/report.py",
    "suites/report_compute.py",
    "suites/compare.py",
    "suites/quickstart.py",
    "cli/",
    "default_plugins/commands.py",
)


@dataclass(frozen=True)
class Cell:
    """One unit of suite work: a model cell (spec × backbone × seed) or a baseline cell."""

    kind: Literal["model", "baseline"]
    spec: TaskSpec
    spec_path: str
    column: str
    """Backbone label (model cells) or baseline name."""
    seed: int | None
    ref: str | None
    backbone: dict[str, Any]
    """Identity of the backbone (hashes); for baselines, of the backbone lending its tokenizer."""
    data: dict[str, Any]
    code: dict[str, str]
    """Versions and source hashes of the task plugin and the core."""
    validation: bool = False
    """Also predict the validation split (for an ensemble that pools this cell)."""

    @cached_property
    def key(self) -> str:
        return cell_key(
            self.kind,
            self.spec,
            self.column,
            self.backbone,
            self.data,
            self.code,
            self.seed,
            self.validation,
        )

    def describe(self) -> str:
        what = (
            f"{self.column} · seed {self.seed}"
            if self.kind == "model"
            else f"baseline {self.column}"
        )
        return f"{self.spec.label} · {what}"


def _strip(data: dict[str, Any], drop: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for key, sub in drop.items():
        if sub is None:
            out.pop(key, None)
        elif isinstance(out.get(key), dict):
            out[key] = _strip(out[key], sub)
    return out


def cell_key(
    kind: str,
    spec: TaskSpec,
    column: str,
    backbone: Mapping[str, Any],
    data: Mapping[str, Any],
    code: Mapping[str, str],
    seed: int | None,
    validation: bool = False,
) -> str:
    """sha256 (16 hex) of what decides a cell's result: the resolved spec (presentation fields
    left out), the backbone's weights and tokenizer hashes, the data version, the task plugin's
    and the core's versions and source hashes (:func:`code_identity`), the seed, which
    baseline (baseline cells), and whether it also predicts the validation split."""
    spec_json = _strip(spec.model_dump(mode="json"), PRESENTATION_FIELDS)
    if kind == "baseline":  # a baseline neither trains nor depends on the seed
        spec_json = _strip(spec_json, {"finetune": None, "seed": None})
    material = {
        "kind": kind,
        "spec": spec_json,
        "baseline": column if kind == "baseline" else None,
        "backbone": dict(backbone),
        "data": dict(data),
        "code": dict(code),
        "seed": seed,
    }
    if validation:  # only then: the keys of cells without it stay what they were
        material["validation"] = True
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


@cache
def source_hash(module_name: str) -> str:
    """sha256 (16 hex) of the Python sources of the top-level package holding ``module_name``
    (the core's reporting and command-line modules left out: they cannot change a result)."""
    top = importlib.import_module(module_name.partition(".")[0])
    roots = [Path(p) for p in getattr(top, "__path__", [])]
    files = (
        sorted(
            f
            for root in roots
            for f in root.rglob("*.py")
            if not f.relative_to(root).as_posix().startswith(PRESENTATION_MODULES)
        )
        if roots
        else [Path(str(top.__file__))]
    )
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def code_identity(task_class: type) -> dict[str, str]:
    """Versions and source hashes of the task plugin and the core: an edited (editable-installed)
    plugin or core re-runs its cells even when nobody bumped a version, as ``datasets``
    fingerprints its transforms."""
    from plugformer import __version__

    return {
        "task_plugin": str(getattr(task_class, "version", "0")),
        "task_plugin_source": source_hash(task_class.__module__),
        "plugformer": __version__,
        "plugformer_source": source_hash("plugformer"),
    }


def backbone_identity(ref: str) -> dict[str, Any]:
    """What identifies a backbone: weights and tokenizer hashes (``scratch`` marks re-initialised
    weights); a family outside the core is identified by its reference, and by the files of
    the directory it names (:func:`_other_family`)."""
    from plugformer.checkpoint import read_manifest, weights_hash
    from plugformer.models.backbones import split_ref

    family, rest = split_ref(ref)
    if family == "scratch":
        inner, inner_rest = split_ref(rest)
        if inner != "native":
            # An untrained twin of another family's model (``scratch:hf:minilm-l6``):
            # identified, like that family's models, by its reference.
            return {**_other_family(inner, inner_rest), "scratch": True}
    if family not in ("native", "scratch"):
        return _other_family(family, rest)
    manifest = read_manifest(rest)
    return {
        "weights_sha256": weights_hash(rest),
        "tokenizer_sha256": manifest.get("tokenizer_sha256"),
        "scratch": family == "scratch",
    }


def _other_family(family: str, ref: str) -> dict[str, Any]:
    """A model of a family outside the core: its reference, and when that is a directory
    (``hf:path/to/model``) the sha256 of its files, so a model rewritten in place re-runs its
    cells (it had been identified by its path alone, and its cells' cached results reused)."""
    from plugformer.fileio import sha256_file

    identity: dict[str, Any] = {"family": family, "ref": ref}
    folder = Path(ref).expanduser()
    if folder.is_dir():
        digest = hashlib.sha256()
        for file in sorted(f for f in folder.rglob("*") if f.is_file()):
            digest.update(f"{file.relative_to(folder).as_posix()}:{sha256_file(file)}\n".encode())
        identity["directory_sha256"] = digest.hexdigest()
    return identity


def _check_ref(label: str, ref: str, suite_file: Path) -> None:
    """Refuse, before any cell runs, a reference whose family is unknown, whose ``hf:`` recipe
    is misspelt, or that names nothing (``scratch:``, which read as the current directory);
    what ``plugformer config validate`` checks of a backbone too (its checkpoint may be made
    later)."""
    from plugformer.models.backbones import split_ref
    from plugformer.models.families import get_family

    try:
        family, rest = split_ref(ref)
        if family == "scratch":
            family, rest = split_ref(rest)
        if not rest.strip():
            raise PlugformerError(f"{ref!r} names no checkpoint or model after the family")
        get_family(family)
        if family == "hf":  # a misspelt recipe was found when its first cell ran
            from plugformer.hf.recipes import check_model_ref

            check_model_ref(rest)
    except PlugformerError as exc:
        raise _blamed(exc, label, suite_file) from None


def _blamed(exc: Exception, label: str, suite_file: Path) -> PlugformerError:
    return PlugformerError(f"{suite_file}: backbone {label!r}: {exc} (pass --backbone {label}=REF)")


def _identity(label: str, ref: str, suite_file: Path) -> dict[str, Any]:
    _check_ref(label, ref, suite_file)
    try:
        return backbone_identity(ref)
    except PlugformerError as exc:
        raise _blamed(exc, label, suite_file) from None


def data_version(spec: TaskSpec) -> dict[str, Any]:
    """The recipe's name, version and data sha256, and the sha256 of every data file named."""
    from plugformer.data.cache import SPLITS, get_dataset
    from plugformer.errors import DataError
    from plugformer.fileio import sha256_file

    out: dict[str, Any] = {}
    if spec.data.dataset:
        info = get_dataset(spec.data.dataset)
        out["dataset"] = {
            "name": info.name,
            "version": info.version,
            "sha256": info.manifest.get("data_sha256"),
        }
    for split in SPLITS:
        file = getattr(spec.data, split)
        if file:
            if not Path(file).is_file():
                raise DataError(f"{spec.label}: data.{split} file {file!r} not found")
            out[split] = sha256_file(file)
    return out


def plan_cells(
    suite: SuiteConfig, suite_file: Path, refs: Mapping[str, str], *, check_only: bool = False
) -> list[Cell]:
    """Every cell of the suite, task by task: baselines first, then seed by seed each backbone.

    Every spec, override and backbone ``tasks`` entry is checked here, before any cell runs.
    ``check_only`` (``plugformer config validate``): the same checks, but the cells carry no
    identity of their backbones, data or code, so no checkpoint need exist (the references'
    families and recipes are checked) and no dataset is fetched (each spec's recipe is looked
    up and its data files looked at instead)."""
    from plugformer.config import check_task_options
    from plugformer.plugin_registries import get_task_class
    from plugformer.specs import check_task_data

    if check_only:  # the families and recipes, not the checkpoints (made later, perhaps)
        for label, ref in refs.items():
            _check_ref(label, ref, suite_file)
    ids: dict[str, dict[str, Any]] = {
        label: {} if check_only else _identity(label, ref, suite_file)
        for label, ref in refs.items()
    }
    first = next(iter(refs))
    cells: list[Cell] = []
    specs: list[TaskSpec] = []
    for entry in suite.tasks:
        path = spec_path(suite_file, entry)
        # before any cell runs, each error blamed on the file that brought it in
        check_task_options(load_spec(path, {}, suite.seeds[0]), str(path))
        blame = f"{suite_file}: its overrides on {path.name}"
        spec = load_spec(path, suite.overrides, suite.seeds[0], blame)
        _check_new_label(suite, suite_file, specs, spec, entry)
        specs.append(spec)
        if suite.overrides.get("options"):
            check_task_options(spec, f"{suite_file}: its overrides on {path.name}")
        cls = get_task_class(spec.task)
        where = str(path)
        if check_only:  # no identities, but the data a cell would read must be there
            check_task_data(spec, where)
        data, code = ({}, {}) if check_only else (data_version(spec), code_identity(cls))
        pooled = _ensembles_on(suite, suite_file, spec, cls)
        if suite.baselines:  # a baseline borrows the first backbone's tokenizer
            cells += [
                Cell(
                    "baseline",
                    spec,
                    where,
                    name,
                    None,
                    refs[first],
                    ids[first],
                    data,
                    code,
                    validation=name in {e.baseline for e in pooled},
                )
                for name in cls(spec.options, None).baselines()
            ]
        entries = {b.name: b for b in suite.backbones}
        for seed in suite.seeds:
            for label, ref in refs.items():
                entry = entries[label]
                if not entry.runs(spec):
                    continue
                # A backbone's own settings (learning rates, budget, length) win over the suite's.
                own = entry.overrides_for(spec)
                overrides = merge_overrides(suite.overrides, own)
                blame = f"{suite_file}: backbone {label!r}'s overrides on {path.name}"
                seeded = _scale_budget(load_spec(path, overrides, seed, blame), suite.budget_scale)
                if own.get("options"):
                    check_task_options(seeded, blame)
                keep_val = label in {e.model for e in pooled}
                cells.append(
                    Cell(
                        "model",
                        seeded,
                        where,
                        label,
                        seed,
                        ref,
                        ids[label],
                        data,
                        code,
                        validation=keep_val,
                    )
                )
    _check_backbone_tasks(suite, suite_file, specs)
    for ens in suite.ensembles:  # a misspelt task kind or spec name would pool on nothing
        _check_task_names(suite_file, f"ensemble {ens.name!r}", "tasks", ens.tasks or [], specs)
        if not any(
            c.kind == "model" and c.column == ens.model and c.validation and ens.runs(c.spec)
            for c in cells
        ):
            raise ConfigError(
                f"{suite_file}: ensemble {ens.name!r} pools on no spec: its model "
                f"{ens.model!r} runs on none of {ens.tasks or 'the specs'}"
            )
    return cells


def _ensembles_on(
    suite: SuiteConfig, suite_file: Path, spec: TaskSpec, cls: type
) -> list[SuiteEnsemble]:
    """The suite's ensembles that pool on ``spec`` (whose model backbone runs on it); each
    checked: the task implements ``Task.fuse`` and has the baseline."""
    from plugformer.tasks import Task

    entries = {b.name: b for b in suite.backbones}
    out = []
    for ens in suite.ensembles:
        if not (ens.runs(spec) and entries[ens.model].runs(spec)):
            continue
        if cls.fuse is Task.fuse:
            raise ConfigError(
                f"{suite_file}: ensemble {ens.name!r}: task {spec.task!r} ({spec.label}) cannot "
                "pool predictions (its plugin does not implement Task.fuse); list the specs "
                "it should pool on in the ensemble's tasks"
            )
        own = entries[ens.model].overrides_for(spec)
        if own.get("data"):  # the model would predict other examples than the baseline
            raise ConfigError(
                f"{suite_file}: ensemble {ens.name!r}: backbone {ens.model!r} changes the data "
                f"of {spec.label} ({', '.join(sorted(own['data']))}), so its predictions are "
                "not of the baseline's examples; set the data for every column in the suite's "
                "overrides"
            )
        names = list(cls(spec.options, None).baselines())
        if ens.baseline not in names:
            raise ConfigError(
                f"{suite_file}: ensemble {ens.name!r}: {spec.label} has no baseline "
                f"{ens.baseline!r} (it has {', '.join(names) or 'none'})"
            )
        out.append(ens)
    return out


def _check_new_label(
    suite: SuiteConfig, suite_file: Path, specs: list[TaskSpec], spec: TaskSpec, entry: str
) -> None:
    """A report's row is a spec's label: two entries of ``tasks`` naming specs of one label (a
    registered name and a file of the same name) would be pooled as one spec's seeds."""
    for earlier, other in zip(suite.tasks, specs, strict=False):
        if other.label == spec.label:
            raise ConfigError(
                f"{suite_file}: tasks {earlier!r} and {entry!r} are both spec {spec.label!r}; "
                "give one another name (name = ... in its file)"
            )


def _check_backbone_tasks(suite: SuiteConfig, suite_file: Path, specs: list[TaskSpec]) -> None:
    """A backbone's ``tasks`` must each name a spec or task kind of the suite: a typo would
    silently drop the backbone's cells."""
    for entry in suite.backbones:
        owner = f"backbone {entry.name!r}"
        _check_task_names(suite_file, owner, "tasks", entry.tasks or [], specs)
        _check_task_names(suite_file, owner, "task_overrides", entry.task_overrides, specs)


def _check_task_names(
    suite_file: Path, owner: str, field: str, listed: Any, specs: list[TaskSpec]
) -> None:
    """Every name ``listed`` is a spec or task kind of the suite, or one line naming the first
    that is not."""
    names = {s.label for s in specs} | {s.task for s in specs}
    unknown = [t for t in listed if t not in names]
    if unknown:
        have = ", ".join(f"{s.label} ({s.task})" for s in specs)
        raise ConfigError(
            f"{suite_file}: {owner}: {field} names {unknown[0]!r}, which is no spec or task of "
            f"the suite (its specs: {have})"
        )


def _scale_budget(spec: TaskSpec, scale: float) -> TaskSpec:
    """``spec`` with its fine-tuning minutes times the suite's ``budget_scale``."""
    minutes = spec.finetune.max_minutes
    if scale == 1.0 or minutes is None:
        return spec
    finetune = spec.finetune.model_copy(update={"max_minutes": round(minutes * scale, 4)})
    return spec.model_copy(update={"finetune": finetune})
