"""Stop signals: Ctrl-C (SIGINT), SIGTERM (``timeout``, ``docker stop``, Kubernetes, SLURM) and
SIGHUP (a closed terminal or SSH session) all stop a sweep the same way.

Python's default for SIGTERM and SIGHUP is to die on the spot, and once Ray is connected its
C++ core dumps a stack on SIGTERM and the process dies with the study's trials left RUNNING.
While a ``StopSignals`` block is active the three are handled alike: outside Tune's loop they
raise ``StopRequested`` (a ``KeyboardInterrupt``); inside it (``graceful``) the first one ends
the loop between two steps through ``StopOnSignal``. Then the sweep's trials in flight are
marked FAIL, Ray is shut down, the resume command is printed, and the process exits with
128 + the signal number (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP). A second signal stops at once.

A signal can land while Python runs a finalizer or a weakref callback (the garbage collector
runs them between any two bytecodes); an exception raised there is only printed ("Exception
ignored in ...") and lost. ``StopSignals`` catches its own ``StopRequested`` lost that way
(``sys.unraisablehook``, for the block only) and delivers it again to the main thread, where it
is raised at the next bytecode outside the finalizer.

A stop is bounded: when the signal went to the whole process group (``timeout``, SLURM),
Ray's own processes died with it and Ray calls can block for a minute, so a watchdog says the
last words (``last_words``: the study's bookkeeping and the resume line) and exits after
``STOP_GRACE_S``.
"""
from __future__ import annotations

import _thread
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator

from ray.tune.stopper import Stopper

from search.study.storage import give_up_retrying

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# How long a stop may take before it is forced: when the signal went to the whole process
# group (`timeout`, SLURM), Ray's own processes are gone and Ray calls can block for a minute.
STOP_GRACE_S = 15.0


class StopRequested(KeyboardInterrupt):
    """A stop signal arrived; ``signum`` says which."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def signal_name(signum: int | None) -> str:
    return "Ctrl-C" if signum in (None, signal.SIGINT) else signal.Signals(signum).name


class StopSignals:
    """Context manager: SIGINT, SIGTERM and SIGHUP raise ``StopRequested`` while it is active
    (see ``graceful`` and ``deferred``); the previous handlers come back on exit. ``received``
    is the first signal seen.

    ``ray.init`` replaces the SIGTERM handler (and Ray's core adds a stack-dumping one): call
    ``install()`` again once Ray is connected. Only the main thread can handle signals; in
    another thread this does nothing."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._deferring = 0
        self._pending: int | None = None
        self._graceful = False
        self._watchdog: threading.Timer | None = None
        self._redelivering: int | None = None
        self._in_hook = False
        self._resent_until = 0.0
        self._unraisable_before: Any = None
        # Called from the watchdog thread when a stop overruns STOP_GRACE_S, just before the
        # process exits: the study's bookkeeping and the one line the user needs.
        self.last_words: Callable[[int], int] = _say_stopped

    def __enter__(self) -> "StopSignals":
        global _active
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
            self.install()
            self._unraisable_before = sys.unraisablehook
            sys.unraisablehook = self._unraisable
        _active = self
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            # A stop lost in a finalizer and resent (``_unraisable``) is raised here, not
            # left to the handlers put back below.
            deadline = time.monotonic() + 1.0
            while self._redelivering is not None and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            self._restore()

    def _restore(self) -> None:
        global _active
        _active = None
        if self.received is not None:
            give_up_retrying(False)
        if self._watchdog is not None:
            self._watchdog.cancel()
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        if self._unraisable_before is not None:
            if sys.unraisablehook == self._unraisable:
                sys.unraisablehook = self._unraisable_before
            self._unraisable_before = None

    def install(self) -> None:
        """(Re)install the handlers, over whatever Ray put there."""
        for sig in self._previous:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        again = self._redelivering == signum  # our stop, lost in a finalizer: raise it now
        if again and self._in_hook:
            return  # still inside the hook: the resender sends it again a moment later
        self._redelivering = None
        if not again and time.monotonic() < self._resent_until and signum == self.received:
            return  # a resend that crossed the one that raised
        first = self.received is None
        if first:
            self.received = signum
            give_up_retrying(True)  # a storage being retried does not hold the stop
            self._watchdog = threading.Timer(STOP_GRACE_S, self._force, (signum,))
            self._watchdog.daemon = True
            self._watchdog.start()
        if (first or again) and self._graceful:  # the loop in ``graceful`` ends at its next step
            return
        if self._deferring and self._pending is None:
            self._pending = signum  # acted on when the deferred block ends
            return
        raise StopRequested(signum)

    def _unraisable(self, unraisable: Any) -> None:
        """``sys.unraisablehook`` while the block is active. A ``StopRequested`` raised by
        ``_handle`` inside a finalizer or a weakref callback cannot propagate (Python prints
        "Exception ignored in ..." and carries on): send the same signal to the main thread
        again, from another thread, so that it lands once this hook has returned (a blocking
        call is interrupted by it, as by the first one); should it land in a finalizer again,
        it comes back here. Anything else goes to the hook that was there before."""
        stopped = unraisable.exc_value
        if not (isinstance(stopped, StopRequested) and self.received is not None):
            (self._unraisable_before or sys.__unraisablehook__)(unraisable)
            return
        self._in_hook = True
        try:
            if self._redelivering is None:  # else a resender is already at work
                self._resend(stopped.signum)
        finally:
            self._in_hook = False

    def _resend(self, signum: int) -> None:
        self._redelivering = signum
        # Not threading.Thread: its start() waits for the thread, inside this hook.
        _thread.start_new_thread(self._resender, (threading.main_thread().ident, signum))

    def _resender(self, main: int, signum: int) -> None:
        """Send ``signum`` to the main thread until ``_handle`` raised it (a signal that
        arrives while the main thread is inside the hook, or in a finalizer again, is not
        raised there: it is sent again 50 ms later)."""
        while self._redelivering == signum:
            self._resent_until = time.monotonic() + 0.5
            signal.pthread_kill(main, signum)
            time.sleep(0.05)

    @contextlib.contextmanager
    def deferred(self, raise_after: bool = True) -> Iterator[None]:
        """A block a first stop signal does not cut short (creating a study, marking trials
        FAIL, shutting Ray down); a second one still stops at once. With ``raise_after`` a
        signal that arrived inside is raised when the block ends."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if not self._deferring and self._pending is not None:
            signum, self._pending = self._pending, None
            if raise_after:
                raise StopRequested(signum)

    def _force(self, signum: int) -> None:
        """The stop overran STOP_GRACE_S (the main thread is stuck in a Ray call): say the last
        words (given STOP_GRACE_S too: they write to the study) and exit. Ray's local
        processes die with this one (Ray binds them to it); a remote cluster ends this
        driver's actors when it disconnects."""
        def say() -> None:
            with contextlib.suppress(BaseException):  # exiting regardless
                self.last_words(signum)

        words = threading.Thread(target=say, daemon=True)
        words.start()
        words.join(STOP_GRACE_S)
        if words.is_alive():  # the bookkeeping hangs (a storage that does not answer)
            with contextlib.suppress(BaseException):
                logging.getLogger("tradetune").warning(
                    "stopped by %s; the study could not be updated in time: trials in flight "
                    "stay RUNNING until the next resume marks them FAIL", signal_name(signum))
        sys.stdout.flush()
        _end_descendants()
        os._exit(128 + signum)

    @contextlib.contextmanager
    def graceful(self) -> Iterator[None]:
        """A block with its own way to stop between steps (Tune's loop, through
        ``StopOnSignal``): a first stop signal only sets ``received``; a second one raises
        ``StopRequested``."""
        self._graceful = True
        try:
            yield
        finally:
            self._graceful = False


def _end_descendants() -> None:
    """Before a forced exit: end every process this one started, down the tree. Ray binds
    the processes it starts to the driver, but not their children (the raylet's
    DashboardAgent and RuntimeEnvAgent, which ignore SIGTERM): they would stay under PID 1."""
    try:
        import psutil

        tree = psutil.Process().children(recursive=True)
    except Exception:  # noqa: BLE001 - exiting regardless
        return
    for proc in tree:
        with contextlib.suppress(Exception):
            proc.kill()


def _say_stopped(signum: int) -> int:
    logging.getLogger("tradetune").warning("stopped by %s", signal_name(signum))
    return 128 + signum


_active: StopSignals | None = None


class StopOnSignal(Stopper):
    """Tune stopper: ends the whole run between two steps once the active ``StopSignals`` saw
    a stop signal. Holds no state, so Tune can pickle it with the run's config."""

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return _active is not None and _active.received is not None
