"""`caf-relay worker` as its own process, configured only by its environment, as deployed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import pika

from service.bootstrap import Services
from service.worker import TRANSFERS_QUEUE
from tests.support.amqp import wait_until
from tests.support.cli import environment

CAF_RELAY = str(Path(sys.executable).with_name("caf-relay"))


class RelayProcess:
    """Starts, kills and stops one worker process on the test's database and vhost."""

    def __init__(self, services: Services, broker_url: str, **settings: str) -> None:
        self._broker_url = broker_url
        self._env = {
            **os.environ,
            **environment(services),
            "CAF_RELAY_BROKER_URL": broker_url,
            "CAF_RELAY_WORKER_NAME": "test-worker",
            "CAF_RELAY_TRUSTED_BROKER_USERS": ",".join(services.settings.trusted_broker_users),
            **{f"CAF_RELAY_{name.upper()}": value for name, value in settings.items()},
        }
        self.process: subprocess.Popen | None = None

    def start(self, stderr: IO | None = None) -> RelayProcess:
        """Start consuming; the process logs to ``stderr`` if given, else to the test's."""
        self.process = subprocess.Popen([CAF_RELAY, "worker"], env=self._env, stderr=stderr)
        wait_until(lambda: consumers(self._broker_url) == 1 or self.process.poll() is not None)
        assert self.process.poll() is None, "the worker exited before consuming"
        return self

    def kill(self) -> None:
        """SIGKILL: no clean-up, no acknowledgement, as a crash or an OOM kill."""
        self.process.kill()
        self.process.wait(20)
        wait_until(lambda: consumers(self._broker_url) == 0)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def delivery_process(self) -> int:
        """The pid of the worker's delivery process, its one child."""
        wait_until(lambda: len(children(self.process.pid)) == 1)
        (child,) = children(self.process.pid)
        return child


def children(pid: int) -> list[int]:
    """The live (not zombie) processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            state, ppid = _state_and_parent(int(entry.name))
            if ppid == pid and state not in ("Z", None):
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie has ended)."""
    return _state_and_parent(pid)[0] not in ("Z", None)


def _state_and_parent(pid: int) -> tuple[str | None, int | None]:
    """The process's state letter and parent pid from /proc; (None, None) once it has gone."""
    try:
        state, ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
    except (OSError, ValueError):
        return None, None
    return state, int(ppid)


def consumers(broker_url: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        declared = connection.channel().queue_declare(TRANSFERS_QUEUE, passive=True)
        return declared.method.consumer_count
    finally:
        connection.close()
