"""An output directory belongs to one run at a time.

``claim(out, "finetune")`` creates ``out`` (one line if it cannot: a file in the way, no
permission), then holds an exclusive ``flock`` on ``out/.plugformer.lock`` for the run. A
second run into the same directory is refused with a line naming the holder. The lock is a
kernel lock, so a run killed even with SIGKILL never leaves a stale one behind.

Only the process of global rank 0 claims: the other processes of a distributed run
(Lightning's subprocess launcher, torchrun) share their launcher's directory.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Collection, Iterator
from pathlib import Path

from plugformer.errors import PlugformerError
from plugformer.fileio import ensure_dir

__all__ = ["LOCK_NAME", "claim"]

LOCK_NAME = ".plugformer.lock"
LOG_SUFFIX = "logs"
"""The Trainer's CSV logs (``finetune_logs/``, pretraining's ``logs/``): all a run that failed
early may have written, removed with the directory it created."""


def _is_rank_zero() -> bool:
    if "RANK" in os.environ:  # torchrun
        return os.environ["RANK"] == "0"
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']}, {info['command']}, since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


@contextlib.contextmanager
def claim(
    out: str | os.PathLike[str], command: str, disposable: Collection[str] = ()
) -> Iterator[Path]:
    """Hold ``out`` for this run (creating it); refuse with one line if another run holds it.

    A run that fails in a directory it created, having written nothing but its logs and the
    entries named in ``disposable`` (a suite's ``suite.json`` and empty ``work/``), leaves no
    directory behind."""
    import fcntl

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PlugformerError(f"{out}: exists and is not a directory; choose another output path")
    created = not out.exists()
    ensure_dir(out)
    if not _is_rank_zero():
        yield out
        return
    path = out / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise PlugformerError(
            f"{out}: cannot write here ({exc.strerror or exc}); choose another output directory"
        ) from None
    held = failed = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise PlugformerError(
                f"{out}: in use by another run ({_holder(path)}); wait for it to finish or "
                "choose another output directory"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": command,
            "argv": sys.argv,
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        try:
            yield out
        except Exception:
            failed = True
            raise
    finally:
        # A run that failed before writing anything but its logs leaves no directory behind
        # (an interrupted run keeps its checkpoint to resume, and pretraining its tokenizer);
        # cleaned while the lock is still held, so no other run can have claimed it since.
        if created and held:
            with contextlib.suppress(OSError):
                left = [p for p in out.iterdir() if p.name != LOCK_NAME]
                if all(
                    failed
                    and (p.name in disposable or (p.is_dir() and p.name.endswith(LOG_SUFFIX)))
                    for p in left
                ):
                    for entry in left:
                        if entry.is_dir():
                            shutil.rmtree(entry)
                        else:
                            entry.unlink()
                    path.unlink()
                    out.rmdir()
        os.close(fd)  # releases the flock
