"""The pretraining corpus: documents → token ids in a ``numpy.memmap`` cache → packed blocks.

Documents come from dataset recipes (their train split) and text files (.txt: one document
per blank-line-separated paragraph group... in practice one per file; .jsonl: a ``text``
field per line). Each document goes to train or validation by a hash of its id, is
tokenised, and ends with ``<eos>``. The token stream is cached under
``$PLUGFORMER_HOME/tokens/<hash of texts and tokenizer>/`` (uint16 when the vocabulary
fits), so a second run on the same corpus reuses it.

Training samples are packed blocks of ``T + 1`` tokens read straight from the memmap. The
order is a pure function of (seed, sample index): sample ``j`` is block ``perm_e[j % n]`` of
epoch ``e = j // n``. Resuming at optimiser step ``s`` restarts at sample ``s * B * accum``
(exact resume), and under DDP rank ``r`` of ``W`` takes samples ``j ≡ r (mod W)`` (no block
is seen twice per epoch, and the global batch equals the single-process batch).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from plugformer.data.recipes import split_of
from plugformer.errors import DataError
from plugformer.fileio import atomic_dir

__all__ = [
    "BlockDataset",
    "Corpus",
    "TokenCache",
    "build_token_cache",
    "encode_documents",
    "load_documents",
]


@dataclass(frozen=True)
class Document:
    id: str
    text: str


_BINARY = frozenset((".parquet", ".arrow", ".feather", ".gz", ".bz2", ".xz", ".zip", ".pdf"))
"""Suffixes of files that are not text: refused by name, not read as one long paragraph."""
_TABULAR = frozenset((".jsonl", ".ndjson", ".csv", ".tsv"))
"""Suffixes read record by record (``read_records``), each record's ``text`` a document."""


def _file_documents(path: Path) -> Iterator[Document]:
    """The documents of one corpus file: each record's ``text`` field of a JSONL, CSV or TSV
    file, or the paragraphs of any other text file."""
    suffix = path.suffix.lower()
    if path.is_dir():
        raise DataError(
            f"data.corpus: {path} is a folder; name its files (JSONL, CSV or TSV with a "
            "'text' field, or plain text)"
        )
    if suffix in _BINARY:
        raise DataError(
            f"data.corpus: {path}: {suffix} files are not read; give JSONL, CSV or TSV with "
            "a 'text' field, or plain text"
        )
    if suffix in _TABULAR:
        from plugformer.data.readers import read_records

        for where, rec in read_records(path):
            text = rec.get("text")
            if not isinstance(text, str):
                raise DataError(f"{where}: expected a string field 'text'")
            yield Document(f"{path.name}:{rec.get('id', where)}", text)
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DataError(f"{path}: no such corpus file") from None
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        # Paragraph groups as documents give the train/validation split some granularity.
        chunks = [c.strip() for c in text.split("\n\n") if c.strip()]
        for i, chunk in enumerate(chunks):
            yield Document(f"{path.name}:{i}", chunk)


def load_documents(sources: list[str]) -> list[Document]:
    """Documents of every source: a dataset recipe name (its train split) or a file path."""
    docs: list[Document] = []
    for src in sources:
        path = Path(src)
        if path.exists():
            docs.extend(_file_documents(path))
            continue
        if path.suffix.lower() in (*_TABULAR, ".txt", *_BINARY) or "/" in src or os.sep in src:
            raise DataError(f"data.corpus: {src}: no such file")  # a path, not a dataset name
        from plugformer.data.cache import load_split

        try:
            rows = load_split(src, "train")
        except DataError:
            raise
        for row in rows:
            text = row.get("text") or "\n".join(str(row.get(k, "")) for k in ("source", "target"))
            title = row.get("title")
            if title:
                text = f"{title}\n{text}"
            docs.append(Document(f"{src}:{row['id']}", text))
    if not docs:
        raise DataError(f"corpus {sources}: no documents")
    return docs


@dataclass
class TokenCache:
    """Token ids of the train and validation splits, memory-mapped."""

    dir: Path
    meta: dict[str, Any]

    def tokens(self, split: str) -> np.ndarray:
        dtype = np.dtype(self.meta["dtype"])
        n = self.meta[f"{split}_tokens"]
        return np.memmap(self.dir / f"{split}.bin", dtype=dtype, mode="r", shape=(n,))

    @property
    def bytes_per_token(self) -> float:
        """UTF-8 bytes per token on the validation split (turns nats/token into bits/byte)."""
        return self.meta["val_bytes"] / max(1, self.meta["val_tokens"])


def build_token_cache(
    docs: list[Document], tokenizer: Any, val_fraction: float, home: Path
) -> TokenCache:
    """Tokenise documents into train/val memmaps, or reuse the cache of an identical corpus."""
    h = hashlib.sha256()
    for d in docs:
        h.update(d.id.encode())
        h.update(b"\0")
        h.update(d.text.encode())
        h.update(b"\1")
    h.update(tokenizer.hash.encode())
    h.update(repr(val_fraction).encode())
    key = h.hexdigest()[:20]
    cdir = home / "tokens" / key
    if (cdir / "meta.json").is_file():
        cached, problem = _read_cache(cdir, tokenizer.vocab_size)
        if cached is not None:
            return cached
        # derived data: rebuilt from the documents, as if it had never been written
        print(f"plugformer: warning: token cache {cdir}: {problem}; rebuilding it", file=sys.stderr)
    dtype = np.uint16 if tokenizer.vocab_size <= 65535 else np.uint32
    fr = (1.0 - val_fraction, val_fraction, 0.0)
    splits: dict[str, list[Document]] = {"train": [], "val": []}
    for d in docs:
        splits["train" if split_of(d.id, fr) == "train" else "val"].append(d)
    if not splits["val"]:  # tiny corpora: hold out the last document
        splits["val"].append(splits["train"].pop())
    if not splits["train"]:
        raise DataError(
            f"corpus too small: {len(docs)} document(s), none left for training after the "
            f"validation split (data.val_fraction = {val_fraction})"
        )
    meta: dict[str, Any] = {
        "dtype": np.dtype(dtype).name,
        "tokenizer_sha256": tokenizer.hash,
        "key": key,
    }
    # another process may build the same cache at once: a valid copy of theirs stays
    with atomic_dir(
        cdir, keep=lambda d: _read_cache(d, tokenizer.vocab_size)[0] is not None
    ) as tmp:
        for split, items in splits.items():
            ids = encode_documents([d.text for d in items], tokenizer, dtype)
            arr = np.concatenate(ids) if ids else np.zeros(0, dtype=dtype)
            arr.tofile(tmp / f"{split}.bin")
            meta[f"{split}_tokens"] = int(arr.size)
            meta[f"{split}_docs"] = len(items)
            meta[f"{split}_bytes"] = sum(
                len(d.text.encode()) + 1 for d in items
            )  # +1: the eos stands for "\n"
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
    return TokenCache(cdir, meta)


def _read_cache(cdir: Path, vocab_size: int) -> tuple[TokenCache | None, str]:
    """A cached token stream whose meta.json parses, whose .bin files hold the number of
    tokens it records and no id past the vocabulary; else ``(None, why not)`` (truncated,
    edited, half-deleted, overwritten). The id check reads every token once (milliseconds
    for millions): a bad id would otherwise surface as an IndexError deep in the model."""
    try:
        meta = json.loads((cdir / "meta.json").read_text("utf-8"))
        itemsize = np.dtype(meta["dtype"]).itemsize
        for split in ("train", "val"):
            size, n = (cdir / f"{split}.bin").stat().st_size, int(meta[f"{split}_tokens"])
            if size != n * itemsize:
                return None, f"{split}.bin holds {size} bytes, its meta.json says {n * itemsize}"
            tokens = np.memmap(cdir / f"{split}.bin", dtype=meta["dtype"], mode="r", shape=(n,))
            top = int(tokens.max()) if n else 0
            if top >= vocab_size:
                return None, f"{split}.bin holds token id {top}, past the vocabulary's {vocab_size}"
        float(meta["val_bytes"])
    except (OSError, ValueError, TypeError, KeyError) as exc:  # JSONDecodeError is a ValueError
        return None, f"unreadable ({type(exc).__name__}: {exc})"
    return TokenCache(cdir, meta), ""


def encode_documents(texts: list[str], tokenizer: Any, dtype: Any) -> list[np.ndarray]:
    """Each text's token ids followed by ``<eos>``, tokenised in batches of 512."""
    out = []
    for start in range(0, len(texts), 512):
        for ids in tokenizer.encode_batch(texts[start : start + 512]):
            out.append(np.asarray([*ids, tokenizer.eos_id], dtype=dtype))
    return out


class BlockDataset(IterableDataset):
    """Endless stream of (T+1)-token blocks in a seeded order, resumable and shardable."""

    def __init__(
        self,
        tokens: np.ndarray,
        block: int,
        seed: int,
        start: int = 0,
        rank: int = 0,
        world: int = 1,
    ):
        super().__init__()
        self.tokens, self.block, self.seed = tokens, block, seed
        self.start, self.rank, self.world = start, rank, world
        self.n_blocks = (len(tokens) - 1) // block
        if self.n_blocks < 1:
            raise DataError(
                f"corpus has {len(tokens)} training tokens; need more than one block of {block + 1}"
            )

    def _perm(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_blocks)

    def __iter__(self) -> Iterator[torch.Tensor]:
        j = self.start
        # advance to this rank's first sample
        j += (self.rank - j) % self.world
        epoch, perm = -1, None
        while True:
            e = j // self.n_blocks
            if e != epoch:
                epoch, perm = e, self._perm(e)
            b = int(perm[j % self.n_blocks])
            chunk = self.tokens[b * self.block : b * self.block + self.block + 1]
            yield torch.from_numpy(chunk.astype(np.int64))
            j += self.world


class ValBlocks(Dataset):
    """The first ``limit`` non-overlapping blocks of the validation split, in order."""

    def __init__(self, tokens: np.ndarray, block: int, limit: int | None = None):
        self.tokens, self.block = tokens, block
        n = (len(tokens) - 1) // block
        self.n = min(n, limit) if limit else n
        if self.n < 1:
            raise DataError(
                f"validation split has {len(tokens)} tokens; need more than {block + 1}"
            )

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(
            self.tokens[i * self.block : i * self.block + self.block + 1].astype(np.int64)
        )


class Corpus:
    """Namespace for helpers that need both splits (kept for symmetry with recipes)."""

    @staticmethod
    def unigram_bits_per_byte(cache: TokenCache, vocab_size: int) -> float:
        """Held-out bits/byte of an add-one unigram model of the training tokens (a baseline)."""
        counts = (
            np.bincount(np.asarray(cache.tokens("train")), minlength=vocab_size).astype(np.float64)
            + 1.0
        )
        logp = np.log(counts / counts.sum())
        val = np.asarray(cache.tokens("val"))
        nats = -logp[val].sum()
        return float(nats / math.log(2) / cache.meta["val_bytes"])
