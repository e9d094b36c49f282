"""The processes under measurement, and what /proc says about them and about the machine.

Figures come from /proc rather than psutil so that the benchmark adds no dependency: CPU time is
utime + stime of the whole process tree (all threads; a worker and its delivery process), peak
RSS is the kernel's high-water mark of resident memory (VmHWM) added up over the tree, which
catches a peak between two samples but counts shared pages once per process; peak PSS is
sampled (``PeakPss``) and counts them once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STOP_SECONDS = 30


class Child:
    """A process the benchmark starts and stops, with its output kept in a file to read later."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self._argv = argv
        self._env = env
        self._log = log
        self._process: subprocess.Popen | None = None

    def start(self) -> Child:
        with self._log.open("ab") as out:
            self._process = subprocess.Popen(
                self._argv, env=self._env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        return self._process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it has not finished within STOP_SECONDS; its exit code."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                return self._process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
        return self._process.wait()

    def output(self) -> list[str]:
        """What it wrote: at log level WARNING, every line is worth a look."""
        if not self._log.exists():
            return []
        return [line for line in self._log.read_text(errors="replace").splitlines() if line]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process and its live descendants (``caf-relay worker``'s
    delivery process) have used so far, all threads included."""
    return _over_tree(pid, lambda p: sum(_stat_numbers(p)[10:12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of the process and its live descendants, added up: an upper bound
    for the tree, as pages they share (the interpreter, libraries) count in each."""
    return _over_tree(pid, _proc_kb("status", "VmHWM")) / 1024


# What the broker's VM is told to run on its command line (`-s rabbit boot`), and no other.
_BROKER_BOOT = [b"-s", b"rabbit", b"boot"]


def broker_pids() -> list[int]:
    """RabbitMQ's Erlang VM on this machine (beam.smp), whose CPU time is the broker's.

    Other Erlang VMs come and go beside it: RabbitMQ's CLI tools (``rabbitmqctl`` and the like,
    run by anyone on the machine) start one as an escript, and one more (``-sname
    epmd-starter-...``) to make sure epmd runs. Each is gone moments later, so one taken for
    the broker failed runs with ``FileNotFoundError`` when read again (on 2026-12-03 an escript;
    on 2026-12-06 an epmd starter). The broker's VM is the one that boots the ``rabbit``
    application."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() != "beam.smp":
                    continue
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                if _runs(argv, _BROKER_BOOT):
                    found.append(int(entry.name))
    return found


def _runs(argv: list[bytes], words: list[bytes]) -> bool:
    """Whether ``words`` appear in ``argv`` one after another."""
    return any(argv[i : i + len(words)] == words for i in range(len(argv)))


class PeakPss:
    """The highest proportional set size (PSS) seen of each process tree, sampled while in use.

    PSS divides each page shared between processes among them, so the PSS of a tree is what it
    costs the machine: ``caf-relay worker``'s delivery process is forked from it and shares the
    code both imported, which its RSS counts twice. The kernel keeps no peak of PSS, hence the
    sampling.
    """

    def __init__(self, pids: list[int], interval: float = 0.2) -> None:
        self._pids = pids
        self._interval = interval
        self.peaks_mb = [0.0] * len(pids)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="pss", daemon=True)

    def __enter__(self) -> PeakPss:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            for i, pid in enumerate(self._pids):
                with contextlib.suppress(OSError, ValueError):
                    kb = _over_tree(pid, _proc_kb("smaps_rollup", "Pss"))
                    self.peaks_mb[i] = max(self.peaks_mb[i], kb / 1024)
            if self._done.wait(self._interval):
                return


def _over_tree(pid: int, read: Callable[[int], float]) -> float:
    """``read`` of ``pid``, which must still be running, plus that of each live descendant.

    RabbitMQ's VM starts short-lived helpers (its disk monitor runs ``df``), so a descendant
    found by ``_tree`` may be gone, or a zombie with no memory figures, by the time it is read:
    it then counts for nothing.
    """
    root, *descendants = _tree(pid)
    total = read(root)
    for p in descendants:
        with contextlib.suppress(OSError, ValueError):
            total += read(p)
    return total


def _proc_kb(file: str, field: str) -> Callable[[int], float]:
    """Reads a process's ``field`` in kB from ``/proc/<pid>/<file>``."""
    return lambda pid: _status_kb(Path(f"/proc/{pid}/{file}"), field)


def _tree(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = _stat_numbers(int(entry.name))[0]
                parents.setdefault(ppid, []).append(int(entry.name))
            except (OSError, ValueError):
                continue  # it ended while we looked
    tree, queue = [], [pid]
    while queue:
        current = queue.pop()
        tree.append(current)
        queue += parents.get(current, [])
    return tree


def _stat_numbers(pid: int) -> list[int]:
    """The fields of /proc/<pid>/stat after the name and the state: ppid is [0], utime [10],
    stime [11] (proc(5) numbers them 4, 14 and 15)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return [int(field) for field in fields[1:]]


@dataclass(frozen=True)
class HostCpu:
    """The machine's CPU time so far, to tell how busy all cores were over a window."""

    busy: float
    total: float

    @classmethod
    def now(cls) -> HostCpu:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        idle = values[3] + values[4]  # idle + iowait
        return cls(busy=sum(values) - idle, total=sum(values))

    def busy_since(self, earlier: HostCpu) -> float:
        """Fraction (0-1) of all cores' time spent busy since ``earlier``."""
        total = self.total - earlier.total
        return (self.busy - earlier.busy) / total if total else 0.0


def _status_kb(path: Path, field: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise ValueError(f"{path} has no {field}")


def machine() -> dict[str, object]:
    """The hardware the figures were measured on, as the issue asks the README to state."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    return {
        "cpu_model": models[0] if models else "unknown",
        "cpuinfo_processors": sum(line.startswith("processor") for line in cpuinfo),
        "os_cpu_count": os.cpu_count(),
        "ram_gb": round(_status_kb(Path("/proc/meminfo"), "MemTotal") / 1024**2, 1),
        "kernel": os.uname().release,
    }
