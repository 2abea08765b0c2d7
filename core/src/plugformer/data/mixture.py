"""Task-aware pretraining: task plugins' training examples, as documents, mixed into the corpus.

A pretraining config names tasks beside its text corpora (``data.tasks``: a spec file and a
token share each). For every task this module reads the spec's **train** split — never
validation or test — through the task's own reader, and asks the task to write its examples as
language-model documents in its own format (``Task.pretrain_documents``: ``source <sep>
target``, ``article <sep> headline``, ...). The documents are tokenised like the text (each
ends with ``<eos>``) and repeated or sampled, in a seeded order, until the task holds its share
of the training tokens::

    text tokens = (1 - Σ shares) · total        task i tokens ≈ share_i · total

The mixed training stream is cached beside the text cache (``tokens/<key>/``); the
validation stream stays the text's, so held-out bits per byte mean the same with or without
tasks. What went in — tasks, splits, examples, documents and tokens per source — is returned
as provenance for the checkpoint manifest.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plugformer.errors import DataError
from plugformer.fileio import atomic_dir

__all__ = ["TaskSource", "mix_tasks", "task_sources"]


@dataclass(frozen=True)
class TaskSource:
    """One task's pretraining documents and the token share they must take."""

    name: str
    """The spec's label (``bible-en-es``)."""
    task: str
    """The task kind (``translation``)."""
    spec: str
    """The spec file it came from."""
    share: float
    examples: int
    """Training examples read."""
    documents: tuple[str, ...]


def task_sources(mixes: Sequence[Any]) -> list[TaskSource]:
    """Read each ``TaskMix``'s spec, its train split, and the task's documents.

    A spec is read as ``plugformer finetune`` reads it (:func:`plugformer.specs.load_task_spec`):
    its data paths relative to the spec file, its options checked against the task's."""
    from plugformer.specs import load_task_spec, resolve
    from plugformer.training.finetune import build_task, load_examples

    sources = []
    for mix in mixes:
        path = resolve(mix.spec, "task")  # a registered spec name or a file
        spec = load_task_spec(path)
        if mix.max_examples:
            spec.data.max_train = mix.max_examples
        task = build_task(spec.task, spec.options, None)
        examples = load_examples(task, spec, "train")  # the train split only, by construction
        docs = tuple(_documents(task, examples, path))
        if not docs:
            raise DataError(
                f"{path}: task {spec.task!r} made no pretraining documents "
                f"from {len(examples)} training examples"
            )
        sources.append(TaskSource(spec.label, spec.task, mix.spec, mix.share, len(examples), docs))
    return sources


def _documents(task: Any, examples: Sequence[Any], path: Path) -> Iterator[str]:
    """The task's non-empty documents; anything but a string is the plugin's mistake, named."""
    for doc in task.pretrain_documents(examples):
        if not isinstance(doc, str):
            raise DataError(
                f"{path}: task {task.name!r} ({type(task).__module__}.{type(task).__qualname__}"
                f".pretrain_documents) yielded a {type(doc).__name__}, expected str"
            )
        if doc:
            yield doc


def _fill(docs: list[np.ndarray], target: int, rng: np.random.Generator) -> tuple[list[int], int]:
    """Document indices, whole passes in fresh seeded orders then part of one more, until
    ``target`` tokens are reached (the last document may overshoot by less than its length)."""
    lengths = np.array([len(d) for d in docs])
    order: list[int] = []
    tokens = 0
    while tokens < target:
        perm = rng.permutation(len(docs))
        cum = np.cumsum(lengths[perm])
        need = target - tokens
        if cum[-1] <= need:
            order.extend(perm.tolist())
            tokens += int(cum[-1])
        else:
            k = int(np.searchsorted(cum, need)) + 1  # first prefix reaching the target
            order.extend(perm[:k].tolist())
            tokens += int(cum[k - 1])
    return order, tokens


def _built(cdir: Path) -> bool:
    """A mixture cache is complete once its ``meta.json`` is written (then published)."""
    return (cdir / "meta.json").is_file()


def mix_tasks(
    text_cache: Any, sources: Sequence[TaskSource], tokenizer: Any, home: Path, seed: int
) -> tuple[Any, dict[str, Any]]:
    """A token cache whose training stream is the text's plus every task at its share.

    Returns the new :class:`~plugformer.data.corpus.TokenCache` and the provenance
    (per source: task, spec, split, examples, documents, tokens, target and actual share).
    """
    from plugformer.data.corpus import TokenCache, encode_documents

    h = hashlib.sha256()
    h.update(text_cache.meta["key"].encode())
    h.update(str(seed).encode())
    for src in sources:
        h.update(f"{src.task}\0{src.share!r}\0".encode())
        for d in src.documents:
            h.update(d.encode())
            h.update(b"\1")
    key = "mix-" + h.hexdigest()[:20]
    cdir = home / "tokens" / key
    if _built(cdir):
        meta = json.loads((cdir / "meta.json").read_text())
        return TokenCache(cdir, meta), meta["mixture"]

    dtype = np.dtype(text_cache.meta["dtype"])
    text = text_cache.tokens("train")
    n_text = int(text.size)
    total = n_text / (1.0 - sum(s.share for s in sources))
    parts: list[np.ndarray] = [np.asarray(text)]
    provenance: dict[str, Any] = {
        "text": {
            "split": "train",
            "documents": text_cache.meta["train_docs"],
            "tokens": n_text,
            "share": None,
        }
    }
    for i, src in enumerate(sources):
        encoded = encode_documents(list(src.documents), tokenizer, dtype)
        target = round(src.share * total)
        order, tokens = _fill(encoded, target, np.random.default_rng([seed, i]))
        parts.extend(encoded[j] for j in order)
        provenance[f"task:{src.name}"] = {
            "task": src.task,
            "spec": src.spec,
            "split": "train",
            "examples": src.examples,
            "documents": len(order),
            "unique_documents": len(encoded),
            "tokens": tokens,
            "share_target": src.share,
        }
    stream = np.concatenate(parts)
    for info in provenance.values():
        info["share"] = round(info["tokens"] / stream.size, 4)
    meta = {
        **text_cache.meta,
        "key": key,
        "text_key": text_cache.meta["key"],
        "train_tokens": int(stream.size),
        "train_docs": text_cache.meta["train_docs"]
        + sum(v["documents"] for k, v in provenance.items() if k != "text"),
        "mixture": provenance,
    }
    # another process may build the same cache at once: a copy of theirs stays
    with atomic_dir(cdir, keep=_built) as tmp:
        stream.tofile(tmp / "train.bin")
        shutil.copyfile(text_cache.dir / "val.bin", tmp / "val.bin")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    return TokenCache(cdir, meta), provenance
