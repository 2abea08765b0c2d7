"""Byte-level BPE tokenizer, trained and loaded with Hugging Face ``tokenizers``.

Reserved special tokens occupy the first ids: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2,
``<sep>`` 3, ``<mask>`` 4, then spare tokens ``<extra_0>`` .. ``<extra_7>`` that tasks can
claim by name (:meth:`Tokenizer.special`). Training is deterministic for a given corpus.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer as _HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

from plugformer.errors import CheckpointError
from plugformer.fileio import atomic_write_text

__all__ = ["SPECIAL_TOKENS", "Tokenizer", "train_tokenizer"]

SPECIAL_TOKENS = ["<pad>", "<bos>", "<eos>", "<sep>", "<mask>"] + [f"<extra_{i}>" for i in range(8)]


class Tokenizer:
    """Thin wrapper over a ``tokenizers.Tokenizer`` exposing the ids plugformer relies on."""

    def __init__(self, hf: _HFTokenizer) -> None:
        self.hf = hf
        missing = [t for t in SPECIAL_TOKENS[:5] if hf.token_to_id(t) is None]
        if missing:
            raise CheckpointError(f"tokenizer lacks reserved tokens {missing}")
        self.pad_id = self.special("<pad>")
        self.bos_id = self.special("<bos>")
        self.eos_id = self.special("<eos>")
        self.sep_id = self.special("<sep>")
        self.mask_id = self.special("<mask>")

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_file(cls, path: str | Path) -> Tokenizer:
        try:
            return cls(_HFTokenizer.from_file(str(path)))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise CheckpointError(f"{path}: not a valid tokenizer.json ({exc})") from None

    @classmethod
    def from_str(cls, text: str) -> Tokenizer:
        return cls(_HFTokenizer.from_str(text))

    def save(self, path: str | Path) -> None:
        atomic_write_text(path, self.to_str())

    def to_str(self) -> str:
        return self.hf.to_str()

    @property
    def hash(self) -> str:
        """sha256 of the serialised tokenizer: identifies it in checkpoint manifests."""
        return hashlib.sha256(self.to_str().encode()).hexdigest()

    # ---------------------------------------------------------------- use
    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def special(self, token: str) -> int:
        """Id of a reserved token (``"<sep>"``, ``"<extra_0>"``, ...)."""
        tid = self.hf.token_to_id(token)
        if tid is None:
            raise KeyError(f"{token!r} is not a special token of this tokenizer")
        return tid

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_with_offsets(self, text: str) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and (start, end) character offsets of each token in ``text``."""
        enc = self.hf.encode(text, add_special_tokens=False)
        return enc.ids, enc.offsets

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=skip_special)


def _build_empty() -> _HFTokenizer:
    tok = _HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # trim_offsets=False keeps leading spaces inside offsets; QA maps characters exactly.
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def train_tokenizer(
    texts: Iterable[str] | Iterator[str], vocab_size: int = 8192, min_frequency: int = 2
) -> Tokenizer:
    """Train a byte-level BPE on ``texts``; deterministic for the same texts in the same order."""
    tok = _build_empty()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return Tokenizer(tok)
