"""The worker's delivery loop in a process of its own, beside intake.

Intake (parse, validate, decide, sign, store) and delivery (publish, record) both need the CPU,
and in one Python process their threads take turns at one interpreter lock: profiled at 200
events/s, an intake batch took about twice its CPU time in wall time while delivery threads ran,
and events queued behind it. So ``caf-relay worker`` runs intake in its main process and the
same ``DeliveryLoop`` in a child process, and hands each new envelope over a pipe rather than in
memory. Only the hand-over lives here; what is delivered, how and when is still the loop's.

The child is forked at start-up, before the worker opens any connection or starts a thread, so
the two share the memory of the code they imported; it builds services of its own (its own
database and adapter connections, its own SQLite write-turn file). Intake holds nothing under
the worker's lease until the child says it has taken back the claims of the worker's previous
run, as with a loop in one process. The child dies with the worker (``PR_SET_PDEATHSIG`` on
Linux; elsewhere it stops when the pipe closes), so a killed worker leaves nothing delivering
behind it that a restarted one would take back and send again. Asked to stop, it finishes the
deliveries in hand and gives back what it was handed and had not sent.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from multiprocessing.connection import Connection

from service.bootstrap import build_services
from service.config import Settings
from service.store.outbox import Claimed, Lease

log = logging.getLogger(__name__)

TAKE, WAKE, STOP, READY = "take", "wake", "stop", "ready"
_PR_SET_PDEATHSIG = 1


class DeliveryProcess:
    """``worker.Delivery`` for a ``DeliveryLoop`` run in a child process (``run``)."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime]) -> None:
        self._settings = settings
        self._clock = clock
        context = multiprocessing.get_context("fork")
        self._pipe, self._child_end = context.Pipe()
        self._process = context.Process(
            target=_child,
            args=(settings, self._child_end, os.getpid()),
            name="caf-relay-delivery",
        )
        self._send_lock = threading.Lock()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._ended = threading.Event()

    def start(self) -> None:
        """Fork the child: call before opening any connection or starting any thread."""
        self._process.start()
        self._child_end.close()

    def run(self) -> None:
        """Return when the child has ended; raise if it ended unasked."""
        with contextlib.suppress(EOFError, OSError):
            while self._pipe.recv() != READY:
                pass
            self._ready.set()
            self._pipe.recv()  # the child sends nothing more: this returns when it has gone
        self._process.join()
        self._ended.set()
        if not self._stopping.is_set():
            raise RuntimeError(f"the delivery process ended (exit code {self._process.exitcode})")

    def lease(self) -> Lease | None:
        if not self._ready.is_set() or self._stopping.is_set():
            return None
        return Lease(self._settings.worker_name, self._clock() + self._settings.delivery_lease)

    def take(self, held: Sequence[Claimed]) -> None:
        if held:
            self._send((TAKE, list(held)))

    def wake(self) -> None:
        self._send((WAKE,))

    def stop(self) -> None:
        """Let the child finish the deliveries in hand and exit; safe from any thread."""
        self._stopping.set()
        if not self._ended.is_set():
            self._send((STOP,))

    def _send(self, message: tuple) -> None:
        try:
            with self._send_lock:
                self._pipe.send(message)
        except (OSError, ValueError):
            # The child has gone: what it was sent stays leased to this worker, taken back when
            # it restarts (or by any worker when the lease ends); run() reports the exit.
            log.warning("delivery process gone; %s not handed over", message[0])


def _child(settings: Settings, pipe: Connection, parent: int) -> None:
    """The child's whole life (logging as the worker set it up before the fork): the delivery
    loop, fed from the pipe until told to stop."""
    _die_with(parent)
    # A terminal's Ctrl-C, and a supervisor's SIGTERM, may reach the whole process group; the
    # worker decides when this stops (STOP on the pipe, or the pipe closing), and the kernel
    # kills it if the worker dies.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    services = build_services(settings)
    loop = services.delivery_loop()

    def announce() -> None:
        loop.taken_back.wait()
        pipe.send(READY)

    def feed() -> None:
        while True:
            try:
                message = pipe.recv()
            except (EOFError, OSError):
                message = (STOP,)  # the worker has gone
            if message[0] == TAKE:
                loop.take(message[1])
            elif message[0] == WAKE:
                loop.wake()
            else:
                loop.stop()
                return

    threading.Thread(target=announce, name="announce", daemon=True).start()
    threading.Thread(target=feed, name="handover", daemon=True).start()
    try:
        loop.run()
    finally:
        services.close()


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when the worker that started it dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)
