"""Task-aware pretraining: task plugins' training examples, as documents, mixed into the corpus.

A pretraining config names tasks beside its text corpora (``data.tasks``: a spec file and a
token share each). For every task this module reads the spec's **train** split — never
validation or test — through the task's own reader, and asks the task to write its examples as
language-model documents in its own format (``Task.pretrain_documents``: ``source <sep>
target``, ``article <sep> headline``, ...). The documents are tokenised like the text (each
ends with ``<eos>``) and repeated or sampled, in a seeded order, until the task holds its share
of the training tokens::

    text tokens = (1 - Σ shares) · total        task i tokens ≈ share_i · total

Training reads the stream as blocks on a fixed grid of ``T`` tokens (``T + 1`` with the next
block's first as the last target), so a document placed at a random offset is cut in two
whenever it crosses a grid line: a 110-token translation pair would be whole in one block of
128 only 14% of the time, its target mostly cut off from its source. Task documents are
therefore packed whole into blocks of the training context: each starts at a grid line or
right after another in its block (best-fit, in the seeded order), and the rest of a block is
filled with text, which thus still appears exactly once (as Ding et al. 2024, "Fewer
Truncations Improve Language Modeling", pack whole documents). A task may shorten its
documents to the block beforehand (``Task.pretrain_max_tokens``); a longer one starts at a
grid line and runs on into the next blocks.

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


def task_sources(
    mixes: Sequence[Any], tokenizer: Any = None, max_tokens: int | None = None
) -> list[TaskSource]:
    """Read each ``TaskMix``'s spec, its train split, and the task's documents.

    A spec is read as ``plugformer finetune`` reads it (:func:`plugformer.specs.load_task_spec`):
    its data paths relative to the spec file, its options checked against the task's. With the
    pretraining tokenizer and context (``max_tokens``: a document's tokens, its ``<eos>`` not
    counted), each task is built with that tokenizer and told the length
    (``Task.pretrain_max_tokens``), so that it can shorten its documents to what fine-tuning
    reads; without them (to train the tokenizer itself), the documents are whole."""
    from plugformer.specs import load_task_spec, resolve
    from plugformer.training.finetune import build_task, load_examples

    sources = []
    for mix in mixes:
        path = resolve(mix.spec, "task")  # a registered spec name or a file
        spec = load_task_spec(path)
        if mix.max_examples:
            spec.data.max_train = mix.max_examples
        task = build_task(spec.task, spec.options, tokenizer)
        if tokenizer is not None:
            task.pretrain_max_tokens = max_tokens
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


def _pack(docs: Sequence[np.ndarray], block: int) -> list[tuple[int, int]]:
    """Best-fit packing of documents into blocks of ``block`` tokens: a list of ``(document
    index, 0)`` and ``(-1, n)`` items in stream order, ``n`` tokens of text filling out a block.
    Each document (in the given order) goes into the open block with the least room that
    holds it, else starts a new block; one longer than a block starts a block and runs on,
    and the room left in its last block stays open. Every document that fits a block is thus
    never cut, and the text that fills the gaps (cut into pieces without their context) is
    kept small. The layout ends at a multiple of ``block``."""
    members: list[list[int]] = []  # per unit (from a block's start): its documents
    used: list[int] = []  # per unit: its tokens
    open_by_room: list[list[int]] = [[] for _ in range(block)]  # room → units with that room
    for i, d in enumerate(docs):
        n = len(d)
        room = next((r for r in range(n, block) if open_by_room[r]), None) if n < block else None
        if room is None:  # a new unit, at a block's start
            members.append([i])
            used.append(n)
            u, left = len(members) - 1, -n % block
        else:
            u, left = open_by_room[room].pop(), room - n
            members[u].append(i)
            used[u] += n
        if left:
            open_by_room[left].append(u)
    layout: list[tuple[int, int]] = []
    for unit, tokens in zip(members, used, strict=True):
        layout.extend((i, 0) for i in unit)
        if tokens % block:
            layout.append((-1, -tokens % block))
    return layout


def _packed(
    text: np.ndarray, docs: Sequence[np.ndarray], layout: list[tuple[int, int]]
) -> np.ndarray:
    """The stream: the packed task region (its fillers taken from the start of ``text``, in
    order), then the rest of the text. Every text token appears once; if the fillers need more
    text than there is (a tiny corpus), the text is read again from its start."""
    need = sum(n for i, n in layout if i < 0)
    filler = np.resize(text, need) if need > text.size else text[:need]
    parts, at = [], 0
    for i, n in layout:
        if i >= 0:
            parts.append(docs[i])
        else:
            parts.append(filler[at : at + n])
            at += n
    parts.append(text[need:])
    return np.concatenate(parts)


def _built(cdir: Path) -> bool:
    """A mixture cache is complete once its ``meta.json`` is written (then published)."""
    return (cdir / "meta.json").is_file()


def mix_tasks(
    text_cache: Any,
    sources: Sequence[TaskSource],
    tokenizer: Any,
    home: Path,
    seed: int,
    block: int,
) -> tuple[Any, dict[str, Any]]:
    """A token cache whose training stream is the text's plus every task at its share.

    ``block``: the training context (``model.max_seq_len``); task documents are packed whole
    into its blocks (the module's docstring).
    Returns the new :class:`~plugformer.data.corpus.TokenCache` and the provenance
    (per source: task, spec, split, examples, documents, tokens, target and actual share).
    """
    from plugformer.data.corpus import TokenCache, encode_documents

    h = hashlib.sha256()
    h.update(text_cache.meta["key"].encode())
    h.update(f"{seed}\0{block}".encode())
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
    task_docs: list[np.ndarray] = []
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
        task_docs.extend(encoded[j] for j in order)
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
    # all sources in one seeded order (not one task after another), so that a block may hold
    # documents of two tasks; the seed differs from each source's own ([seed, i])
    shuffle = np.random.default_rng([seed, len(sources)]).permutation(len(task_docs))
    task_docs = [task_docs[j] for j in shuffle]
    stream = _packed(np.asarray(text), task_docs, _pack(task_docs, block))
    # text read again to fill blocks (only where a tiny corpus runs out) counts as text
    provenance["text"]["tokens"] = int(stream.size) - sum(
        v["tokens"] for k, v in provenance.items() if k != "text"
    )
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
