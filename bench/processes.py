"""The processes under measurement, and what /proc says about them and about the machine.

Figures come from /proc rather than psutil so that the benchmark adds no dependency: CPU time is
utime + stime of the whole process (all its threads), peak memory is the kernel's high-water
mark of resident memory (VmHWM), which catches a peak between two samples.
"""

from __future__ import annotations

import os
import signal
import subprocess
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
    """User plus system CPU time the process has used so far, all threads included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    return _status_kb(Path(f"/proc/{pid}/status"), "VmHWM") / 1024


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
