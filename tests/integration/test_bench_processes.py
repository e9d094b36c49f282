"""The benchmark reads RabbitMQ's CPU time from its Erlang VM; CI runs no benchmark, so this
checks, against the real broker, that the VM it reads is the broker's alone."""

import shutil
import subprocess
import time

import pytest

from bench.processes import broker_pids, cpu_seconds

pytestmark = pytest.mark.broker


@pytest.mark.skipif(shutil.which("erl") is None, reason="needs Erlang's erl beside RabbitMQ")
def test_the_broker_is_told_from_an_erlang_vm_that_comes_and_goes_beside_it():
    # As RabbitMQ's CLI tools start one to make sure epmd runs, every minute on some machines:
    # taken for the broker, it failed a run when it had ended by the time it was read again.
    passer_by = subprocess.Popen(
        ["erl", "-noshell", "-noinput", "-eval", "timer:sleep(20000), halt()."],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _is_beam(passer_by.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _is_beam(passer_by.pid), "the passing VM never started"

        (broker,) = broker_pids()

        assert broker != passer_by.pid
        assert cpu_seconds(broker) > 0
    finally:
        passer_by.kill()
        passer_by.wait()


def _is_beam(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip() == "beam.smp"
    except OSError:
        return False
