"""The VADER ground-truth recipes, on a tiny sdist built in the real layout."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from plugformer.errors import DataError
from plugformer_sentiment.datasets import RECIPES, parse_ground_truth

INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
MOVIES = (
    "1\t2.2666666667\tThe Rock is destined to be the 21st Century's new ''Conan''.\r\n"
    "2\t-1.8125\tHer fans walked out muttering words like horrible and terrible.\r\n"
    "3\t0.0\tA film about a film.\r\n"
    "4\t1.5\tLovely &amp; Amazing, and a clich\u00e9 done well.\r\n"
    "5\t-0.3\tAT &amp;amp; T and B &amp;#38; W are dull"  # no final line end
)
TWEETS = "1\t2.7\tSomehow I was blessed\r\n2\t-1.0\tugh &lt;3\r\n"


def _tar_gz(members: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info in extra:
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _sdist(tmp_path: Path, extra: list[tarfile.TarInfo] = ()) -> Path:
    inner = _tar_gz(
        {
            "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": MOVIES.encode(),
            "hutto_ICWSM_2014/tweets_GroundTruth.txt": TWEETS.encode(),
        }
    )
    path = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    path.write_bytes(
        _tar_gz({"vaderSentiment-3.3.2/setup.py": b"", INNER: inner}, extra=list(extra))
    )
    return path


def _recipe(name: str):
    return next(r for r in RECIPES if r.name == name)


def test_movie_reviews_from_nested_archive(tmp_path: Path) -> None:
    examples = list(_recipe("movie-review-sentences").parse([_sdist(tmp_path)]))
    assert [e["id"] for e in examples] == ["1", "2", "4", "5"]  # rating 0 dropped
    assert [e["label"] for e in examples] == ["positive", "negative", "positive", "negative"]
    assert examples[0] == {
        "id": "1",
        "text": "The Rock is destined to be the 21st Century's new ''Conan''.",
        "label": "positive",
        "rating": pytest.approx(2.2666666667),
    }
    assert examples[2]["text"] == "Lovely & Amazing, and a clich\u00e9 done well."
    assert examples[3]["text"] == "AT & T and B & W are dull"  # doubly escaped entities
    assert not any("\r" in e["text"] for e in examples)


def test_other_file_same_archive(tmp_path: Path) -> None:
    examples = list(_recipe("vader-tweets").parse([_sdist(tmp_path)]))
    assert [(e["text"], e["label"]) for e in examples] == [
        ("Somehow I was blessed", "positive"),
        ("ugh <3", "negative"),
    ]


def test_missing_member_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"amazonReviewSnippets_GroundTruth\.txt"):
        list(_recipe("vader-amazon").parse([_sdist(tmp_path)]))


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/passwd", "a/../../b"])
def test_unsafe_member_names_are_refused(tmp_path: Path, name: str) -> None:
    info = tarfile.TarInfo(name)
    with pytest.raises(DataError, match="unsafe name"):
        list(_recipe("movie-review-sentences").parse([_sdist(tmp_path, extra=[info])]))


def test_link_member_is_refused(tmp_path: Path) -> None:
    inner = _tar_gz({})
    link = tarfile.TarInfo(INNER)
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    path = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    path.write_bytes(_tar_gz({"x": inner}, extra=[link]))
    with pytest.raises(DataError, match="not a regular file"):
        list(_recipe("movie-review-sentences").parse([path]))


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    path.write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="readable"):
        list(_recipe("movie-review-sentences").parse([path]))


def test_bad_lines_name_the_line() -> None:
    with pytest.raises(DataError, match=r"x\.txt:2: expected 3"):
        list(parse_ground_truth("1\t1.0\tok\r\nbroken line\r\n", "x.txt"))
    with pytest.raises(DataError, match=r"x\.txt:1: rating"):
        list(parse_ground_truth("1\tgood\tok\r\n", "x.txt"))
    with pytest.raises(DataError, match="duplicate id"):
        list(parse_ground_truth("1\t1.0\tok\r\n1\t2.0\tagain\r\n", "x.txt"))


def test_recipes_are_pinned() -> None:
    assert {r.name for r in RECIPES} == {
        "movie-review-sentences",
        "vader-tweets",
        "vader-amazon",
        "vader-nyt",
    }
    for recipe in RECIPES:
        (source,) = recipe.sources
        assert source.sdist and source.version == "3.3.2" and len(source.sha256) == 64
        assert recipe.expected_count and recipe.license.startswith("MIT")
        assert "Hutto" in recipe.citation
    assert "Pang" in _recipe("movie-review-sentences").citation


def test_repeated_texts_share_a_split() -> None:
    recipe = _recipe("vader-nyt")
    a = {"id": "1", "text": "Same  words.", "label": "positive"}
    b = {"id": "2", "text": "same words.", "label": "negative"}
    assert recipe.split_key(a) == recipe.split_key(b)


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "counts"),
    [
        ("movie-review-sentences", {"positive": 5242, "negative": 5326}),
        ("vader-tweets", {"positive": 2897, "negative": 1299}),
        ("vader-amazon", {"positive": 2128, "negative": 1482}),
        ("vader-nyt", {"positive": 2204, "negative": 2742}),
    ],
)
def test_real_download(
    name: str, counts: dict[str, int], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from plugformer.data.sources import fetch

    recipe = _recipe(name)
    folder = tmp_path_factory.getbasetemp() / "vader-downloads"
    folder.mkdir(exist_ok=True)
    sdist = fetch(recipe.sources[0], folder, name=name)
    examples = list(recipe.parse([sdist]))
    assert len(examples) == recipe.expected_count == sum(counts.values())
    assert {k: sum(e["label"] == k for e in examples) for k in counts} == counts
    assert len({e["id"] for e in examples}) == len(examples)
