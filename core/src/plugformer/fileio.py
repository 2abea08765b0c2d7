"""Atomic file writes: a temporary file in the same directory, fsync, then rename.

A run killed at any moment leaves either the old file or the new one, never half of
one. Directories (checkpoints, caches) are built under a temporary name and renamed. A
symlink is written through (its target is replaced, the link stays), and a path that is not a
regular file (``/dev/null``, ``/dev/stdout``, a FIFO) is written in place: a rename would put
a file where the device was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from plugformer.errors import PlugformerError

__all__ = [
    "atomic_dir",
    "atomic_open",
    "atomic_write_json",
    "atomic_write_text",
    "ensure_dir",
    "remove_temporaries",
    "sha256_file",
]


def _explain(exc: OSError, path: Path) -> PlugformerError:
    if exc.errno == errno.ENOSPC:
        return PlugformerError(f"{path}: no space left on device")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PlugformerError(f"{path}: permission denied (cannot write here)")
    return PlugformerError(f"{path}: cannot write ({exc.strerror or exc})")


def _umask() -> int:
    """The process umask (read by setting and restoring it: POSIX has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(fd_or_path: int | Path, directory: bool = False) -> None:
    """Give a temporary file (0600) or directory (0700) the mode a plain ``open``/``mkdir``
    would: readable by others under a normal umask (issue 20: results were private)."""
    mode = (0o777 if directory else 0o666) & ~_umask()
    if isinstance(fd_or_path, int):
        os.fchmod(fd_or_path, mode)
    else:
        os.chmod(fd_or_path, mode)


def ensure_dir(path: str | os.PathLike[str]) -> Path:
    """``mkdir -p path``; failures (read-only, a file in the way, disk full) are one line."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _explain(exc, path) from None
    return path


def _tmp_prefix(path: Path) -> str:
    """A temporary sibling's name prefix: ``path``'s name, cut so that the prefix, mkstemp's
    random part and ``.tmp`` fit a 255-byte file name whatever the name's length."""
    name = path.name.encode("utf-8", "surrogateescape")[:64].decode("utf-8", "ignore")
    return f".{name}."


def remove_temporaries(folder: str | os.PathLike[str]) -> None:
    """Delete the temporary files that writes killed mid-way (SIGKILL: no cleanup ran) left
    in ``folder``: ``atomic_open``'s ``.<name>.<random>.tmp`` siblings. Call it only while no
    write into ``folder`` is under way (a run holding its directory)."""
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kw: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; rename it over ``path`` on success.
    A symlink's target is what gets replaced; a path that exists and is not a regular file
    (a device, a FIFO) is written in place."""
    path = Path(path)
    if path.exists() and not path.is_file():  # /dev/null, /dev/stdout, a FIFO (links followed)
        try:
            with open(path, mode, **kw) as f:
                yield f
        except OSError as exc:
            raise _explain(exc, path) from exc
        return
    if path.is_symlink():  # write through the link, as open() would; the link stays
        path = Path(os.path.realpath(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent)
        _publish_mode(fd)
    except OSError as exc:
        raise _explain(exc, path) from exc
    try:
        with os.fdopen(fd, mode, **kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _explain(exc, path) from exc
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike[str],
    overwrite: bool = True,
    keep: Callable[[Path], bool] | None = None,
) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` once the block succeeds.

    :param overwrite: replace a directory already at ``path``; ``False`` refuses to.
    :param keep: for a cache that several processes may build at once (two suite workers
        fetching the same model): a test of a directory found at ``path`` when ours is ready.
        If it passes (another process published a complete copy first), that copy stays and
        ours is discarded; otherwise ``overwrite`` decides, as without ``keep``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(path), suffix=".tmp", dir=path.parent))
        _publish_mode(tmp, directory=True)
    except OSError as exc:
        raise _explain(exc, path) from exc
    try:
        yield tmp
        for f in tmp.iterdir():  # make the contents durable before the rename publishes them
            if f.is_file():
                # Writers that create their own files privately (safetensors' save_file
                # makes 0600 files) get the mode a plain open would give, as atomic_open does.
                _publish_mode(f)
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        _publish_dir(tmp, path, overwrite, keep)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _explain(exc, path) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _publish_dir(
    tmp: Path, path: Path, overwrite: bool, keep: Callable[[Path], bool] | None
) -> None:
    """Rename ``tmp`` to ``path``. Another process may publish ``path`` between our look and
    our rename (the rename then fails: a directory is in the way), or move it away: look
    again, a few times, rather than fail a run over a copy that someone else just made."""
    for _ in range(3):
        old: Path | None = None
        if path.exists():
            if keep is not None and keep(path):
                shutil.rmtree(tmp, ignore_errors=True)
                return
            if not overwrite:
                raise PlugformerError(f"{path}: already exists")
            # a name of our own: two processes replacing one directory must not share it
            old = path.with_name(f".{path.name}.{os.getpid()}.old")
            shutil.rmtree(old, ignore_errors=True)
            try:
                os.replace(path, old)
            except FileNotFoundError:  # moved away meanwhile: look again
                continue
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if old is not None:  # put the original back, unless another copy took its place
                with contextlib.suppress(OSError):
                    os.replace(old, path)
                shutil.rmtree(old, ignore_errors=True)
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            continue  # published meanwhile: look again
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return
    raise PlugformerError(f"{path}: other processes kept replacing it; run again")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
