"""SIGINT and SIGTERM: a clean stop, a resumable checkpoint, one line and exit 130 / 143.

Outside training a signal ends the command at once (:class:`Interrupted`, or Python's
``KeyboardInterrupt`` for SIGINT). Inside ``trainer.fit`` it uses Lightning's own
fault-tolerance path: the signal sets the flag Lightning's SIGTERM handler sets, the loops
raise ``SIGTERMException`` at the next step boundary (after any validation due at that step
has finished), and ``CheckpointOnSignal`` (:func:`checkpoint_on_signal`) — Lightning's ``OnExceptionCheckpoint`` —
writes the checkpoint that ``--resume`` continues from. A second SIGINT stops at once.

:func:`fit` wraps ``trainer.fit`` and turns the interruption into :class:`Interrupted`.
"""

from __future__ import annotations

import contextlib
import signal
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from plugformer.errors import Interrupted

__all__ = ["Interrupted", "checkpoint_on_signal", "fit", "install_default_handlers"]

_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(signum, f"interrupted by {_NAMES.get(signum, signum)}")


def install_default_handlers() -> None:
    """SIGTERM outside training ends the command with one line and exit 143 (the CLI's
    start-up calls this; Python's default for SIGTERM is to die silently)."""
    with contextlib.suppress(ValueError):  # not the main thread
        signal.signal(signal.SIGTERM, _raise_interrupted)


class _Graceful:
    """The signal handlers in force while a Trainer fits."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.signum: int | None = None
        self._deferred = False

    def handle(self, signum: int, frame: Any) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signum = self.signum or signum
        self.trainer._signal_connector.received_sigterm = True

    # Lightning's evaluation loop stops mid-validation on the flag, leaving a checkpoint that
    # would redo half a validation; keep the flag down until the validation has finished.
    def defer(self) -> None:
        if self.trainer._signal_connector.received_sigterm and self.signum is not None:
            self.trainer._signal_connector.received_sigterm = False
            self._deferred = True

    def restore(self) -> None:
        if self._deferred:
            self.trainer._signal_connector.received_sigterm = True
            self._deferred = False


def _checkpoint_class() -> type:
    from lightning.pytorch.callbacks import OnExceptionCheckpoint
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    class CheckpointOnSignal(OnExceptionCheckpoint):
        """Lightning's ``OnExceptionCheckpoint``, for the graceful stop of a signal only (a
        crash mid-step must not overwrite the last good checkpoint), kept after teardown."""

        def __init__(self, path: str | Path) -> None:
            path = Path(path)
            super().__init__(path.parent, path.stem)
            self.graceful: _Graceful | None = None
            self.saved = False

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            if isinstance(exception, SIGTERMException) and trainer.global_step > 0:
                super().on_exception(trainer, pl_module, exception)
                self.saved = True

        def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
            pass  # keep the file: it is what --resume reads

        def on_validation_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
            if self.graceful is not None and trainer.state.fn == "fit":
                self.graceful.defer()

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            if self.graceful is not None:
                self.graceful.restore()

    return CheckpointOnSignal


def checkpoint_on_signal(path: str | Path) -> Any:
    """A ``CheckpointOnSignal`` callback writing ``path`` (Lightning is imported only here)."""
    return _checkpoint_class()(path)


@contextlib.contextmanager
def _handlers(handler: Callable[[int, Any], None]) -> Iterator[None]:
    old: dict[int, Any] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            old[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for signum, h in old.items():
            signal.signal(signum, h)


def fit(trainer: Any, checkpoint: Any, *args: Any, **kwargs: Any) -> None:
    """``trainer.fit(*args, **kwargs)``; a signal stops it at a step boundary with a checkpoint
    (``checkpoint``, a :func:`checkpoint_on_signal` callback among the trainer's callbacks) and raises
    :class:`Interrupted` naming the step and the checkpoint."""
    from plugformer.threads import refresh_threads

    refresh_threads()  # an ``auto`` thread count follows the load of now, not of start-up
    graceful = _Graceful(trainer)
    checkpoint.graceful = graceful
    try:
        with _handlers(graceful.handle), warnings.catch_warnings():
            # ``checkpoint`` is an OnExceptionCheckpoint, so Lightning turns a fresh run's
            # ckpt_path=None into "last" and warns twice that there is none to load: noise
            # on every run that is not a resume (a resume passes the path it means).
            warnings.filterwarnings("ignore", message=r".*ckpt_path=None\)` was called without")
            warnings.filterwarnings("ignore", message=r".*there is no last checkpoint available")
            # A fine-tune without validation data says so itself, in one line.
            warnings.filterwarnings("ignore", message=r".*`validation_step` but have no `val_")
            # Our loaders resume mid-epoch by themselves (the order is a function of seed and
            # step: PretrainData, finetune_data.loaders), which Lightning cannot see.
            warnings.filterwarnings("ignore", message=r".*your dataloader is not resumable")
            trainer.fit(*args, **kwargs)
    except (SystemExit, KeyboardInterrupt) as exc:  # SIGTERMException is a SystemExit
        signum = graceful.signum or (signal.SIGINT if isinstance(exc, KeyboardInterrupt) else None)
        if signum is None:
            raise
        where = (
            f"; resume with --resume (checkpoint {checkpoint.ckpt_path})"
            if checkpoint.saved
            else "; no checkpoint was written"
        )
        raise Interrupted(
            signum,
            f"interrupted by {_NAMES.get(signum, signum)} at step {trainer.global_step}{where}",
        ) from None
