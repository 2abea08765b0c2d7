"""The checkpoint format: a pickle-free, self-describing directory.

::

    plugformer.json     manifest: format version, kind (backbone | task), model config,
                        tokenizer hash, task name/options/state and plugin version,
                        library versions, metrics, parent checkpoint hash
    model.safetensors   backbone weights
    head.safetensors    task head weights (task checkpoints)
    tokenizer.json

Written atomically (a temporary directory renamed into place). Loading verifies the manifest
and the tokenizer hash and refuses anything else with a one-line :class:`CheckpointError`.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from plugformer.errors import CheckpointError, ConfigError
from plugformer.fileio import atomic_dir
from plugformer.manifest import FORMAT_VERSION, entry_hashes

__all__ = [
    "FORMAT_VERSION",
    "load_backbone",
    "read_manifest",
    "save_backbone",
    "verify_checkpoint",
    "weights_hash",
]

MANIFEST = "plugformer.json"


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("plugformer", "torch", "lightning", "tokenizers", "safetensors"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def weights_hash(path: str | Path) -> str:
    """sha256 of a checkpoint's model.safetensors: the identity of a backbone."""
    from plugformer.fileio import sha256_file

    return sha256_file(Path(path) / "model.safetensors")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a checkpoint directory, checked for format and completeness."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    if not path.is_dir():
        raise CheckpointError(f"{path}: a checkpoint is a directory (with {MANIFEST}), not a file")
    mpath = path / MANIFEST
    if not mpath.is_file():
        final = path / "final"  # a run directory (pretrain/finetune --out) holds its checkpoint
        hint = (
            f"; this is a run directory: its checkpoint is {final}"
            if (final / MANIFEST).is_file()
            else ""
        )
        raise CheckpointError(f"{path}: not a plugformer checkpoint (no {MANIFEST}{hint})")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{mpath}: corrupt manifest ({exc})") from None
    if not isinstance(manifest, dict) or "format_version" not in manifest or "kind" not in manifest:
        raise CheckpointError(f"{mpath}: manifest lacks format_version/kind")
    from plugformer.manifest import check_entries, validate_manifest

    validate_manifest(manifest, mpath)  # every field the loaders read, typed (plugformer.manifest)
    check_entries(manifest, mpath)  # model_config and task, as saved
    for needed in ("model.safetensors", "tokenizer.json"):
        if not (path / needed).is_file():
            raise CheckpointError(f"{path}: missing {needed}")
    if manifest["kind"] == "task" and not (path / "head.safetensors").is_file():
        raise CheckpointError(f"{path}: task checkpoint missing head.safetensors")
    return manifest


def _state_dict_for_save(module: Any) -> dict[str, Any]:
    # safetensors refuses shared storage (tied embeddings): keep one name per tensor.
    raw = module.state_dict()
    sd = {k: v.detach().contiguous().cpu() for k, v in raw.items()}
    head, emb = raw.get("lm_head.weight"), raw.get("wte.weight")
    if head is not None and emb is not None and head.data_ptr() == emb.data_ptr():  # tied
        sd.pop("lm_head.weight")
    for name in getattr(module, "tied_weights", ()):  # other architectures name their tied weights
        sd.pop(name, None)
    return sd


def save_backbone(
    path: str | Path, model: Any, tokenizer: Any, extra: dict[str, Any] | None = None
) -> Path:
    """Write a backbone checkpoint directory atomically; returns its path."""
    from safetensors.torch import save_file

    path = Path(path)
    with atomic_dir(path) as tmp:
        save_file(
            _state_dict_for_save(model),
            str(tmp / "model.safetensors"),
            metadata={"format": "pt"},
        )
        tokenizer.save(tmp / "tokenizer.json")
        from plugformer.fileio import sha256_file

        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": "backbone",
            "family": getattr(model, "family", "native"),
            "architecture": getattr(model, "architecture", "plugformer-gpt"),
            "model_config": model.config.model_dump(),
            "tokenizer_sha256": tokenizer.hash,
            "weights_sha256": sha256_file(tmp / "model.safetensors"),
            "n_params": sum(p.numel() for p in model.parameters()),
            "versions": library_versions(),
            **(extra or {}),
        }
        manifest.update(entry_hashes(manifest))
        (tmp / MANIFEST).write_text(
            json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8"
        )
    return path


def load_weights(module: Any, file: Path) -> None:
    """Load safetensors weights into ``module`` strictly (missing/unexpected keys are errors)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        sd = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{file}: corrupt weights ({exc})") from None
    tied = getattr(getattr(module, "config", None), "tie_embeddings", False)
    if tied and "wte.weight" in sd and "lm_head.weight" in module.state_dict():
        sd.setdefault("lm_head.weight", sd["wte.weight"])
    try:
        # not strict=True: its error's first line is only "Error(s) in loading state_dict for
        # Module:"; the keys are named below instead (a module that raises is discarded)
        result = module.load_state_dict(sd, strict=False)
    except RuntimeError as exc:  # a tensor of another shape
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0]
        raise CheckpointError(
            f"{file}: weights do not match the manifest's model ({detail.rstrip('.')})"
        ) from None
    problems = []
    if result.missing_keys:
        problems.append(f"{len(result.missing_keys)} missing, e.g. {result.missing_keys[0]!r}")
    if result.unexpected_keys:
        problems.append(
            f"{len(result.unexpected_keys)} unexpected, e.g. {result.unexpected_keys[0]!r}"
        )
    if problems:
        raise CheckpointError(
            f"{file}: weights do not match the manifest's model (tensors: {'; '.join(problems)})"
        )


def verify_checkpoint(path: str | Path) -> dict[str, Any]:
    """The manifest of a checkpoint whose every part was checked as loading checks it: its
    files, their hashes, and weights that load into the model the manifest describes (the
    backbone family's loader); a task checkpoint's head against its ``head_sha256``. Needs
    the backbone family's plugin, not the task's."""
    from plugformer.fileio import sha256_file

    path = Path(path)
    manifest = read_manifest(path)
    load_backbone(path)
    saved = manifest.get("head_sha256")
    if manifest["kind"] == "task" and saved and sha256_file(path / "head.safetensors") != saved:
        raise CheckpointError(
            f"{path}: corrupt weights: head.safetensors does not match the manifest's head_sha256"
        )
    return manifest


def manifest_family(manifest: dict[str, Any]) -> str:
    """The backbone family a manifest names (older manifests: ``hf`` or ``native``)."""
    if manifest.get("family"):
        return str(manifest["family"])
    return "hf" if manifest.get("architecture") == "hf" else "native"


def load_backbone(path: str | Path) -> Any:
    """The backbone of a checkpoint (backbone or task), loaded by the family its manifest
    names, as registered through ``register_backbones``; a ``LoadedBackbone``."""
    from plugformer.plugin_registries import backbones

    path = Path(path)
    manifest = read_manifest(path)
    family = manifest_family(manifest)
    registry = backbones()
    if family not in registry:
        raise CheckpointError(
            f"{path}: made on backbone family {family!r}, which no installed plugin provides "
            f"(installed: {', '.join(registry.names())})"
        )
    loader = getattr(registry.get(family), "load", None)
    if loader is None:
        raise CheckpointError(f"{path}: backbone family {family!r} cannot load checkpoints")
    return loader(path, manifest)


# --------------------------------------------------------------------------- task checkpoints


def save_task(
    path: str | Path,
    loaded: Any,
    head: Any,
    task: Any,
    spec: Any,
    summary: dict[str, Any],
) -> Path:
    """Write a task checkpoint: fine-tuned backbone + head + a manifest naming the task."""
    from safetensors.torch import save_file

    from plugformer.fileio import sha256_file

    path = Path(path)
    model = loaded.model
    with atomic_dir(path) as tmp:
        save_file(
            _state_dict_for_save(model),
            str(tmp / "model.safetensors"),
            metadata={"format": "pt"},
        )
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in head.state_dict().items()},
            str(tmp / "head.safetensors"),
            metadata={"format": "pt"},
        )
        loaded.tokenizer.save(tmp / "tokenizer.json")
        manifest = {
            "format_version": FORMAT_VERSION,
            "kind": "task",
            "family": getattr(model, "family", "native"),
            "architecture": getattr(model, "architecture", "plugformer-gpt"),
            "model_config": model.config.model_dump(),
            "tokenizer_sha256": loaded.tokenizer.hash,
            "weights_sha256": sha256_file(tmp / "model.safetensors"),
            "head_sha256": sha256_file(tmp / "head.safetensors"),
            "task": {
                "name": task.name,
                "version": task.version,
                "options": task.options.model_dump(),
                "state": task.state_dict(),
                "class": f"{type(task).__module__}:{type(task).__qualname__}",
            },
            "spec": spec.model_dump(),
            "backbone_ref": summary.get("backbone"),
            "parent_weights_sha256": loaded.manifest.get("weights_sha256"),
            "metrics": {"validation": summary.get("val_metrics", {})},
            "versions": library_versions(),
        }
        manifest.update(entry_hashes(manifest))
        (tmp / MANIFEST).write_text(
            json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8"
        )
    return path


def _check_task_version(path: Path, cls: type, saved: str) -> None:
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    spec = getattr(cls, "compatible_versions", "") or ""
    try:
        v = Version(saved)
        if not spec:
            major = Version(cls.version).major
            spec = f">={major},<{major + 1}"
        ok = v in SpecifierSet(spec)
    except InvalidVersion:
        ok = False
    if not ok:
        raise CheckpointError(
            f"{path}: saved by task {cls.name!r} version {saved}, but the installed plugin "
            f"(version {cls.version}) loads {spec or 'its own major version'}; install a matching plugin version"
        )


def load_task(
    path: str | Path, options: Mapping[str, Any] | None = None
) -> tuple[Any, Any, Any, dict[str, Any]]:
    """(task, backbone model, head, manifest) of a task checkpoint.

    ``options`` change task options of the saved ones for this load only: decoding settings
    (``beam_size``, ``no_repeat_ngram_size``, ``answer_candidates``, ...). An option that
    shapes the head (``pointer``) no longer fits the saved weights and is refused."""
    from plugformer.errors import PluginError
    from plugformer.plugin_registries import get_task_class

    path = Path(path)
    manifest = read_manifest(path)
    if manifest["kind"] != "task":
        raise CheckpointError(
            f"{path}: a backbone checkpoint, not a task checkpoint (fine-tune it first)"
        )
    from plugformer.manifest import validate_manifest

    task_info = validate_manifest(manifest, path / MANIFEST).task
    assert task_info is not None  # validated: a task checkpoint names its task
    info = task_info.model_dump(by_alias=True)
    try:
        cls = get_task_class(info["name"])
    except PluginError as exc:
        raise CheckpointError(
            f"{path}: needs the plugin for task {info.get('name')!r}: {exc}"
        ) from None
    _check_task_version(path, cls, str(info.get("version", "0")))
    loaded = load_backbone(path)
    if options:
        _check_option_overrides(path, cls, info["options"], options)
    try:
        task = cls({**info["options"], **options} if options else info["options"], loaded.tokenizer)
        task.check_backbone(loaded.model)  # hands the task its length budget before any encode
        task.load_state_dict(info["state"])
    except CheckpointError:
        raise
    except Exception as exc:  # options or state the task refuses
        raise CheckpointError(
            f"{path}: the manifest's task options/state do not fit task {info['name']!r} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None
    head = task.build_head(loaded.model)
    saved = manifest.get("head_sha256")  # absent in checkpoints written before it was recorded
    if saved is not None:
        from plugformer.fileio import sha256_file

        if sha256_file(path / "head.safetensors") != saved:
            raise CheckpointError(
                f"{path}: corrupt weights: head.safetensors does not match the manifest's "
                "head_sha256 (damaged, or a head from another checkpoint)"
            )
    try:
        load_weights(head, path / "head.safetensors")
    except CheckpointError as exc:
        if not options:
            raise
        raise CheckpointError(
            f"{path}: the head saved with the checkpoint does not fit options "
            f"{sorted(options)} ({exc})"
        ) from None
    return task, loaded.model, head, manifest


def _check_option_overrides(
    path: Path, cls: Any, saved: Mapping[str, Any], options: Mapping[str, Any]
) -> None:
    """One line naming the option when an override is unknown to the task or invalid."""
    from pydantic import ValidationError

    from plugformer.config import format_validation_error

    known = getattr(cls, "Options", None)
    fields = getattr(known, "model_fields", None)
    if fields is None:
        return
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ConfigError(
            f"task {cls.name!r} has no option {unknown[0]!r}; its options: {', '.join(fields)}"
        )
    if "labels" in options and options["labels"] != saved.get("labels"):
        # the label set is the trained head's output layer (restored from the checkpoint's
        # state), so an override would be silently ignored
        raise ConfigError(
            f"{path}: option 'labels' cannot change at load time: the trained head predicts "
            "the checkpoint's own labels (fine-tune again to change them)"
        )
    try:
        known.model_validate({**saved, **options})
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, known, f"{path}: options overridden")
        ) from None
