"""Reference systems for translation: ``copy-source`` and ``ibm1-words``.

* ``copy-source``: the hypothesis is the source sentence itself.
* ``ibm1-words`` (:class:`WordTranslation`): a word-for-word translation learned from the
  training pairs with IBM Model 1 (Brown et al. 1993):

  - words: lower-cased runs of word characters and single punctuation marks;
  - model: ``p(source word | target word)``, every source token aligned to one target token
    or to NULL, trained by EM from uniform tables (vectorised with numpy over every
    (source token, target token) link of the training pairs);
  - dictionary: each source word's translation is the target word (or NULL) it is aligned
    to most in expectation, ``argmax_f sum over links p(align e → f)``, after the last
    EM iteration;
  - decoding: each source word in source order becomes its translation; a word whose
    translation is NULL is dropped (or kept as its best non-NULL translation, see below);
    a word never seen in training is copied (names often are the same); the first word is
    capitalised, and optionally every word the source capitalised.

  Chosen on **validation BLEU** (the task's own sacrebleu metric), never on test: the EM
  iterations (2, 5, 10), whether NULL-aligned words are dropped, and whether capitals follow
  the source. Without validation examples: 5 iterations, drop, follow the source.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "ITERATIONS",
    "WordTranslation",
    "copy_source",
    "draft",
    "fit_lexicon",
    "ibm1_dictionaries",
    "tokens",
]

TOKEN = re.compile(r"\w+|[^\w\s]")
ITERATIONS = (2, 5, 10)
"""EM iterations tried (each a snapshot of one run)."""
DEFAULT = {"iterations": 5, "drop_null": True, "source_case": True}
"""The setting used without validation examples."""
NULL = ""
"""The empty target word: alignment to nothing."""
NO_SPACE_BEFORE = set(",.;:!?)]}»”’")
NO_SPACE_AFTER = set("([{«“¿¡")


def copy_source(train: Sequence[Any], test: Sequence[Any]) -> list[dict[str, str]]:
    """``Baseline``: the source sentence itself."""
    return [{"translation": ex.source} for ex in test]


copy_source.definition = "the source sentence, unchanged"  # type: ignore[attr-defined]


def tokens(text: str) -> list[str]:
    """Words and punctuation marks of ``text``, in order, case kept."""
    return TOKEN.findall(text)


def ibm1_dictionaries(
    pairs: Sequence[tuple[list[str], list[str]]], snapshots: Sequence[int]
) -> dict[int, tuple[dict[str, str], dict[str, str]]]:
    """IBM Model 1 ``p(source | target)`` trained on ``pairs`` (lower-cased token lists);
    after each iteration in ``snapshots``: ``(best, best_word)``, each source word's most
    expected alignment (NULL included) and its most expected target word (NULL excluded)."""
    src_vocab: dict[str, int] = {}
    tgt_vocab: dict[str, int] = {NULL: 0}
    link_src, link_tgt, link_token = [], [], []  # one entry per (source token, target slot)
    token = 0
    for src, tgt in pairs:
        t_ids = [0, *(tgt_vocab.setdefault(w, len(tgt_vocab)) for w in tgt)]  # NULL first
        for w in src:
            s_id = src_vocab.setdefault(w, len(src_vocab))
            link_src += [s_id] * len(t_ids)
            link_tgt += t_ids
            link_token += [token] * len(t_ids)
            token += 1
    s = np.asarray(link_src, dtype=np.int64)  # (L,)
    f = np.asarray(link_tgt, dtype=np.int64)  # (L,)
    tok = np.asarray(link_token, dtype=np.int64)  # (L,) source token of each link
    pair, pair_of_link = np.unique(s * len(tgt_vocab) + f, return_inverse=True)  # (P,), (L,)
    pair_src, pair_tgt = pair // len(tgt_vocab), pair % len(tgt_vocab)  # (P,)
    prob = np.ones(len(pair))  # p(source | target), uniform start (normalised below)
    src_words, tgt_words = list(src_vocab), list(tgt_vocab)
    out = {}
    for it in range(1, max(snapshots) + 1):
        p = prob[pair_of_link]  # (L,)
        norm = np.bincount(tok, weights=p, minlength=token)  # (T,) per source token
        posterior = p / norm[tok]  # (L,) p(source token aligned to this target slot)
        counts = np.bincount(pair_of_link, weights=posterior, minlength=len(pair))  # (P,)
        totals = np.bincount(pair_tgt, weights=counts, minlength=len(tgt_vocab))  # (V_t,)
        prob = counts / totals[pair_tgt]
        if it in snapshots:
            out[it] = (
                _argmax(pair_src, pair_tgt, counts, src_words, tgt_words, True),
                _argmax(pair_src, pair_tgt, counts, src_words, tgt_words, False),
            )
    return out


def _argmax(
    pair_src: np.ndarray,
    pair_tgt: np.ndarray,
    counts: np.ndarray,
    src_words: list[str],
    tgt_words: list[str],
    with_null: bool,
) -> dict[str, str]:
    """Per source word the target word with the largest expected count (ties: lowest id)."""
    keep = np.ones(len(counts), dtype=bool) if with_null else pair_tgt != 0
    order = np.lexsort((-counts[keep], pair_src[keep]))  # by source, then count descending
    srcs, tgts = pair_src[keep][order], pair_tgt[keep][order]
    first = np.ones(len(srcs), dtype=bool)
    first[1:] = srcs[1:] != srcs[:-1]
    return {src_words[a]: tgt_words[b] for a, b in zip(srcs[first], tgts[first], strict=True)}


def detokenize(words: list[str]) -> str:
    """Words joined by spaces, none before closing punctuation or after opening marks."""
    out = ""
    for w in words:
        if out and w not in NO_SPACE_BEFORE and out[-1] not in NO_SPACE_AFTER:
            out += " "
        out += w
    return out


def translate(
    source: str, best: dict[str, str], best_word: dict[str, str], drop_null: bool, source_case: bool
) -> str:
    """Word-by-word translation of ``source`` (see the module docstring)."""
    out = []
    for k, w in enumerate(tokens(source)):
        key = w.lower()
        if key not in best:
            out.append(w)  # unknown: passed through
            continue
        t = best[key] if drop_null else best_word.get(key, NULL)
        if t == NULL:
            continue
        if source_case and k > 0 and w[:1].isupper():
            t = t[:1].upper() + t[1:]
        out.append(t)
    text = detokenize(out)
    return text[:1].upper() + text[1:]


def word_pairs(examples: Sequence[Any]) -> list[tuple[list[str], list[str]]]:
    """Lower-cased (source words, target words) of the examples that have a target."""
    return [
        ([w.lower() for w in tokens(ex.source)], [w.lower() for w in tokens(ex.target)])
        for ex in examples
        if ex.target is not None
    ]


def fit_lexicon(train: Sequence[Any]) -> dict[str, str]:
    """The ``ibm1-words`` dictionary at its default setting (``DEFAULT``), learned from the
    training pairs alone: each source word's most expected alignment, ``""`` for NULL. A
    plain ``{word: translation}``, so it can be kept as JSON in a task checkpoint."""
    iterations = int(DEFAULT["iterations"])
    best, _ = ibm1_dictionaries(word_pairs(train), [iterations])[iterations]
    return best


def draft(source: str, lexicon: dict[str, str]) -> str:
    """``source`` translated word for word with ``fit_lexicon``'s dictionary, as the
    baseline's default setting does (NULL-aligned words dropped, capitals follow the source)."""
    return translate(source, lexicon, {}, drop_null=True, source_case=True)


class WordTranslation:
    """``Baseline`` ``ibm1-words``: IBM Model 1 word-for-word translation (module docstring)."""

    definition = (
        "word-for-word: each source word becomes its most expected IBM Model 1 alignment "
        "(trained on train; NULL drops it, unknown words pass through); EM iterations, NULL "
        "dropping and casing chosen on validation BLEU"
    )

    def __init__(
        self,
        score: Callable[[list[dict[str, str]], Sequence[Any]], float],
        iterations: Sequence[int] = ITERATIONS,
    ) -> None:
        self.score, self.iterations = score, list(iterations)
        self.chosen: dict[str, Any] = {}

    def __call__(
        self, train: Sequence[Any], test: Sequence[Any], validation: Sequence[Any] = ()
    ) -> list[dict[str, str]]:
        pairs = word_pairs(train)
        snapshots = self.iterations if validation else [DEFAULT["iterations"]]
        tables = ibm1_dictionaries(pairs, snapshots)
        setting = dict(DEFAULT)
        if validation:
            best_value = None
            for it in self.iterations:
                for drop_null in (True, False):
                    for source_case in (True, False):
                        hyps = [
                            {
                                "translation": translate(
                                    ex.source, *tables[it], drop_null, source_case
                                )
                            }
                            for ex in validation
                        ]
                        value = self.score(hyps, validation)
                        if best_value is None or value > best_value:  # ties: the earlier
                            best_value = value
                            setting = {
                                "iterations": it,
                                "drop_null": drop_null,
                                "source_case": source_case,
                            }
            setting["validation_score"] = round(float(best_value or 0.0), 4)
        self.chosen = setting
        table = tables[setting["iterations"]]
        return [
            {
                "translation": translate(
                    ex.source, *table, setting["drop_null"], setting["source_case"]
                )
            }
            for ex in test
        ]
