"""Encoding pieces shared by task bases: longest-first truncation, field joining, pad-collate.

``encode_fields`` turns one or more texts into ``a <sep> b <sep> c <eos>`` within a token
budget, trimming the longest segment first (Hugging Face's ``longest_first``), so a pair
task never loses its short hypothesis to a long premise. ``pad_collate`` right-pads any
list-valued feature and stacks scalar ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from plugformer.errors import DataError

__all__ = [
    "IGNORE",
    "after_sep",
    "encode_fields",
    "first_tokens",
    "pad_collate",
    "truncate_longest_first",
]

IGNORE = -100
"""Label value that losses ignore (padding, special tokens, sub-word continuations)."""


def truncate_longest_first(segments: Sequence[Sequence[int]], budget: int) -> list[list[int]]:
    """Trim the currently longest segment one token at a time until all fit in ``budget``."""
    out = [list(s) for s in segments]
    excess = sum(map(len, out)) - budget
    while excess > 0:
        longest = max(range(len(out)), key=lambda i: len(out[i]))
        if not out[longest]:
            break
        out[longest].pop()
        excess -= 1
    return out


def first_tokens(tokenizer: Any, text: str, n: int) -> str:
    """The prefix of ``text`` that its first ``n`` tokens cover (cut where a token ends): a
    document cut as ``encode`` cuts the token list (``encode(text)[:n]``), kept as text."""
    if n <= 0:
        return ""
    ids, offsets = tokenizer.encode_with_offsets(text)
    return text if len(ids) <= n else text[: offsets[n - 1][1]]


def after_sep(tokenizer: Any, text: str) -> list[int]:
    """The tokens of ``text`` where it follows ``<sep>`` in a generated sequence: with the
    space a word has inside a sentence, so its first word is the same token as everywhere
    else in the text. A byte-level BPE splits a word with no space before it into other,
    rarer pieces (``El`` → ``E l``, against `` El``): a translation or headline then began
    with pieces the pretrained model seldom saw and a pointer could not copy from the
    prompt. Documents write the same space: ``f"{source}<sep> {target}"``. A tokenizer that
    marks word starts itself (SentencePiece's ``▁``) already gives a text's first word its
    in-sentence form, and a space would add a token: it gets the text as it is."""
    return tokenizer.encode(" " + text if _space_is_literal(tokenizer) else text)


def _space_is_literal(tokenizer: Any) -> bool:
    """Whether ``" b"`` encodes as ``b`` does inside ``"a b"`` (byte-level BPE: ``Ġb``;
    WordPiece drops the space), not as an extra word-start mark (SentencePiece's ``▁▁b``).
    Probed once per tokenizer object and kept on it."""
    known = getattr(tokenizer, "_plugformer_space_is_literal", None)
    if known is None:
        head = tokenizer.encode("a")
        known = tokenizer.encode("a b")[len(head) :] == tokenizer.encode(" b")
        try:
            tokenizer._plugformer_space_is_literal = known
        except AttributeError:  # a tokenizer with __slots__: probe again next time
            pass
    return bool(known)


def encode_fields(
    tokenizer: Any, texts: Sequence[str], budget: int, *, end: bool = True
) -> list[int]:
    """``t1 <sep> t2 … <eos>`` in at most ``budget`` tokens (longest-first truncation)."""
    specials = (len(texts) - 1) + (1 if end else 0)
    if budget <= specials:
        raise DataError(f"length budget {budget} cannot hold {len(texts)} field(s)")
    segments = truncate_longest_first([tokenizer.encode(t) for t in texts], budget - specials)
    ids: list[int] = []
    for i, seg in enumerate(segments):
        ids += ([tokenizer.sep_id] if i else []) + seg
    return ids + ([tokenizer.eos_id] if end else [])


def pad_collate(
    features: Sequence[Mapping[str, Any]], pad_values: Mapping[str, int]
) -> dict[str, Any]:
    """Right-pad list-valued features to the longest (value from ``pad_values``, default 0),
    stack scalar ones; ``attention_mask`` (B, T) marks ``input_ids``' real tokens.

    A key missing from some features is left out of the batch (e.g. labels at predict time).
    """
    import torch

    batch: dict[str, Any] = {}
    keys = [k for k in features[0] if all(k in f for f in features)]
    for key in keys:
        values = [f[key] for f in features]
        if isinstance(values[0], list | tuple):
            width = max(len(v) for v in values)
            out = torch.full((len(values), width), pad_values.get(key, 0), dtype=torch.long)
            for i, v in enumerate(values):
                out[i, : len(v)] = torch.tensor(v, dtype=torch.long)
            batch[key] = out  # (B, T)
        else:
            batch[key] = torch.tensor(values)  # (B,)
    if "input_ids" in batch:
        lengths = torch.tensor([len(f["input_ids"]) for f in features])  # (B,)
        width = batch["input_ids"].size(1)
        batch["attention_mask"] = (torch.arange(width) < lengths[:, None]).long()  # (B, T)
    return batch
