"""The checkpoint manifest (``plugformer.json``) as a pydantic model, checked before any load.

A manifest is trusted only after it validates here and its hashes match the files beside it:
:func:`validate_manifest` checks every field the loaders read (types included), and
:func:`verify_files` checks the tokenizer and weights hashes (both mandatory) and — for a
native backbone — that the shapes in ``model.safetensors``' header are the ones
``model_config`` would build, all before a single parameter is allocated. The entries that
change what a checkpoint computes without changing a file — ``model_config`` (``n_heads``
changes no tensor's shape) and a task checkpoint's ``task`` (its labels' order, its options) —
are hashed too (``model_config_sha256``, ``task_sha256``; :func:`check_entries`), so a
manifest edited by hand is refused rather than loaded into a different model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from plugformer.errors import CheckpointError

__all__ = [
    "Manifest",
    "TaskInfo",
    "check_entries",
    "check_shapes",
    "entry_hashes",
    "native_shapes",
    "validate_manifest",
    "verify_files",
]

_SHA256 = r"^[0-9a-f]{64}$"


FORMAT_VERSION = 1
"""The checkpoint format this plugformer writes and reads (newer ones are refused by name)."""


class TaskInfo(BaseModel):
    """The ``task`` entry of a task checkpoint's manifest."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True, populate_by_name=True)

    name: str = Field(min_length=1)
    """The task kind (a registered task name)."""
    version: str = Field(min_length=1)
    """The task plugin's version that saved the checkpoint."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The task's options."""
    state: dict[str, Any] = Field(default_factory=dict)
    """What the task learned from its training data (``Task.state_dict``)."""
    class_: str = Field("", alias="class")
    """``module:Class`` of the task (informative)."""


class Manifest(BaseModel):
    """A checkpoint manifest; extra fields (metrics, versions, spec, ...) are kept as they are."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True, populate_by_name=True)

    format_version: int = Field(ge=1, strict=True)
    """Checkpoint format version; newer than this plugformer reads is refused."""
    kind: Literal["backbone", "task"]
    """A backbone checkpoint, or a task checkpoint (backbone + head)."""
    architecture: str = "plugformer-gpt"
    """``plugformer-gpt`` (native) or ``hf`` (a transformers backbone)."""
    model_config_: dict[str, Any] = Field(alias="model_config")
    """The backbone's configuration (``ModelConfig`` for native backbones)."""
    tokenizer_sha256: str = Field(pattern=_SHA256)
    """sha256 of the serialised tokenizer.json (mandatory)."""
    weights_sha256: str = Field(pattern=_SHA256)
    """sha256 of model.safetensors (mandatory)."""
    head_sha256: str | None = Field(None, pattern=_SHA256)
    """sha256 of head.safetensors (task checkpoints; verified when present)."""
    model_config_sha256: str | None = Field(None, pattern=_SHA256)
    """sha256 of ``model_config`` as sorted JSON (verified when present)."""
    task_sha256: str | None = Field(None, pattern=_SHA256)
    """sha256 of ``task`` as sorted JSON (task checkpoints; verified when present)."""
    task: TaskInfo | None = None
    """The task of a task checkpoint."""

    @model_validator(mode="after")
    def _task_checkpoints_name_their_task(self) -> Manifest:
        if self.kind == "task" and self.task is None:
            raise ValueError("a task checkpoint needs a 'task' entry")
        return self


def validate_manifest(raw: Any, where: str | Path) -> Manifest:
    """The validated manifest, or one CheckpointError line naming the first bad field."""
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        # Checked first: a newer format may describe itself with fields this version lacks.
        raise CheckpointError(
            f"{where}: checkpoint format {version} is newer than this plugformer reads "
            f"({FORMAT_VERSION}); upgrade plugformer"
        )
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise CheckpointError(f"{where}: invalid manifest field {field!r}: {err['msg']}") from None


def verify_files(path: Path, manifest: Manifest, tokenizer_hash: str) -> None:
    """The tokenizer and weights are the ones the manifest names (hashes are mandatory)."""
    from plugformer.fileio import sha256_file

    if tokenizer_hash != manifest.tokenizer_sha256:
        raise CheckpointError(
            f"{path}: tokenizer.json does not match the manifest's tokenizer_sha256 "
            "(a tokenizer from another checkpoint?)"
        )
    if sha256_file(path / "model.safetensors") != manifest.weights_sha256:
        raise CheckpointError(
            f"{path}: corrupt weights: model.safetensors does not match the manifest's "
            "weights_sha256 (damaged, or weights from another checkpoint)"
        )


HASHED_ENTRIES = {"model_config": "model_config_sha256", "task": "task_sha256"}
"""Manifest entries whose content is hashed into the manifest (entry → its hash's key)."""


def _entry_sha256(value: Any) -> str:
    """sha256 of an entry as JSON (keys sorted; what the manifest's writer makes of values JSON
    lacks, so the entry hashes the same before writing and after reading)."""
    import hashlib

    text = json.dumps(json.loads(json.dumps(value, default=str)), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_hashes(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The hashes of the manifest's :data:`HASHED_ENTRIES` it has, for the writer to add."""
    return {
        key: _entry_sha256(manifest[entry])
        for entry, key in HASHED_ENTRIES.items()
        if entry in manifest
    }


def check_entries(manifest: Mapping[str, Any], where: str | Path) -> None:
    """Each hashed entry matches its hash (a manifest written before they were hashed has none:
    it passes)."""
    for entry, key in HASHED_ENTRIES.items():
        want = manifest.get(key)
        if want is not None and entry in manifest and _entry_sha256(manifest[entry]) != want:
            raise CheckpointError(
                f"{where}: '{entry}' does not match the manifest's {key}: it was edited (or "
                "comes from another checkpoint), and would load the weights into another model"
            )


def check_shapes(file: Path, expected: dict[str, tuple[int, ...]], ignore: set[str]) -> None:
    """The tensors named in ``file``'s safetensors header have the ``expected`` shapes (read
    from the header alone: nothing is loaded or allocated)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(file), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{file}: corrupt weights ({exc})") from None
    want = {k: v for k, v in expected.items() if k not in ignore}
    missing = sorted(set(want) - set(found))
    extra = sorted(set(found) - set(want) - ignore)
    if missing or extra:
        what = f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}"
        raise CheckpointError(f"{file}: weights do not match the manifest's model_config ({what})")
    for name, shape in want.items():
        if found[name] != shape:
            raise CheckpointError(
                f"{file}: weights do not match the manifest's model_config ({name}: "
                f"{list(found[name])} in the file, {list(shape)} in model_config)"
            )


def native_shapes(cfg: Any) -> dict[str, tuple[int, ...]]:
    """Parameter shapes of the native GPT for ``cfg``, built on the meta device (no memory)."""
    import torch

    from plugformer.models.gpt import GPT

    with torch.device("meta"):
        model = GPT(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}
