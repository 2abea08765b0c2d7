"""How many intra-op threads the CLI gives torch: all cores when idle, the idle ones when busy.

Measured with ``benchmarks/perf/threads.py`` on 2 cores (bf16 pretraining step, batch-1
decoding):

* quiet machine: 2 threads trained at 6,122 tok/s against 3,569 for 1 thread, and
  ``OMP_WAIT_POLICY=PASSIVE`` cost ~8 % (5,624), so torch's defaults stay;
* beside two busy processes: 2 threads fell to 1,824 tok/s and 68 decoded tok/s (OpenMP
  barriers wait for a descheduled thread), 1 thread gave 2,159 and 148.

So ``auto`` counts the other runnable processes at start-up (``/proc/loadavg``, sampled a
few times) and uses the cores they leave idle, at least one. Two DDP processes on two cores
thus get one thread each. An explicit ``OMP_NUM_THREADS`` or ``--threads N`` wins, and
``--threads default`` keeps torch's choice.

The load at start-up can be gone a minute later: a quickstart started while another job
was still exiting saw one busy process, and pretrained its whole trunk on one of the two
cores (585 steps at 7,520 tok/s, against 958 at 12,341 when started seconds later). So an
``auto`` count is picked again as each training run starts (:func:`refresh_threads`, from
:func:`plugformer.signals.fit`): a long job's later stages follow the load of their own
time. Matmul results can depend on the thread count, so a run resumed under a different
load is exact only with a fixed count. This module does not import torch: it sets
``OMP_NUM_THREADS`` before torch is loaded.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

__all__ = ["apply_threads", "other_runnable", "pick_threads", "refresh_threads", "steady_runnable"]

_auto = False
"""Whether this process's count came from ``auto`` (so :func:`refresh_threads` may re-pick it)."""


def _own_running() -> int:
    """This process's threads that are running or runnable now (at least the caller's)."""
    n = 0
    for stat in Path("/proc/self/task").glob("*/stat"):
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]  # after "pid (comm)"
        except (OSError, IndexError):
            continue
        n += state == "R"
    return max(1, n)


def other_runnable(samples: int = 3, interval: float = 0.003) -> float:
    """Runnable threads of other processes (median of ``samples`` reads); 0 where unknown.

    ``/proc/loadavg`` counts every runnable thread of the machine, this process's too: its
    own threads still spinning after a parallel region (OpenMP waits busy for a while) would
    otherwise read as another job. Measured on an idle 2-core machine, right after 2-thread
    matmuls: "runnable - 1" read one other job in 30 reads of 30, this count none. A suite
    run after pretraining in the same process had thus shared out one core too few."""
    counts = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                running = f.read().split()[3].split("/")[0]  # "running/total"
            counts.append(int(running) - _own_running())
        except (OSError, IndexError, ValueError):
            return 0.0
        if i < samples - 1:
            time.sleep(interval)
    return max(0.0, statistics.median(counts))


def steady_runnable(reads: int = 5, interval: float = 0.1) -> float:
    """Runnable threads of other processes that stay: the fewest of ``reads`` reads
    ``interval`` seconds apart. A CPU-bound competitor is runnable at every read; a kernel
    thread writing back the checkpoint or token cache just saved, or a process exiting, is
    not, and must not cost a training run of minutes half its cores."""
    counts = []
    for i in range(reads):
        counts.append(other_runnable(samples=1, interval=0.0))
        if i < reads - 1:
            time.sleep(interval)
    return min(counts)


def pick_threads(
    setting: str | int | None, cpus: int | None = None, busy: float | None = None
) -> int | None:
    """Threads for ``setting``: ``"auto"``, a number, or ``"default"``/None (torch's choice,
    whatever the load: what runs that must be bit-reproducible across restarts want).
    ``busy``: the other runnable threads, when the caller has counted them."""
    if setting is None or setting in ("", "default"):
        return None
    if str(setting) != "auto":
        n = int(setting) if str(setting).isdigit() else 0
        if n < 1:
            raise ValueError(f"threads must be a positive number or 'auto', not {setting!r}")
        return n
    cpus = cpus or os.cpu_count() or 1
    busy = other_runnable() if busy is None else busy
    if busy < 1:
        return None  # idle: torch's default (all cores) measured fastest
    return max(1, cpus - round(busy))


def apply_threads(setting: str | int | None) -> int | None:
    """Set the thread count for this process (unless ``OMP_NUM_THREADS`` is set); returns it.
    A bad ``setting`` is refused (ValueError) either way: the environment overriding it is no
    reason to accept ``--threads none``."""
    global _auto
    if os.environ.get("OMP_NUM_THREADS"):
        if str(setting) not in ("", "None", "default", "auto"):
            pick_threads(setting)  # raises on a bad setting; the environment's count stands
        return None
    n = pick_threads(setting)
    _auto = str(setting) == "auto"
    if n is None:
        return None
    os.environ["OMP_NUM_THREADS"] = str(n)  # read by torch when it is imported
    if "torch" in sys.modules:  # already imported (Python API): tell it directly
        sys.modules["torch"].set_num_threads(n)
    return n


def refresh_threads(cpus: int | None = None) -> int | None:
    """Pick an ``auto`` count again for the load of now, where this process's count came from
    ``auto`` and torch is loaded; returns the count in force, or None where it is not auto's.

    An idle machine gets all ``cpus`` (``os.cpu_count()``), a busy one the idle cores; the
    load is what stays over half a second (:func:`steady_runnable`), as a run is long.
    """
    torch = sys.modules.get("torch")
    if not _auto or torch is None:
        return None
    cpus = cpus or os.cpu_count() or 1
    picked = pick_threads("auto", cpus, steady_runnable())  # None: the machine is idle
    n = picked or cpus
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    # What a process started from here inherits, as apply_threads leaves it: unset when idle,
    # so that Lightning gives each DDP process its share of the cores.
    if picked is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = str(n)
    return n
