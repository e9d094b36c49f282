"""SQLite writers queue for their turn across processes (an flock beside the database file).

Each test compares when one process let the turn go with when the other got it, on
time.monotonic(): CLOCK_MONOTONIC, one clock for every process on the machine.
"""

import multiprocessing
import time

from service.store.write_turns import WriteTurns

HOLD_SECONDS = 0.5  # how long a holder keeps its turn while the other process asks for it


def _hold_turn(url: str, holding, release, released) -> None:
    turns = WriteTurns(url)
    with turns:
        holding.set()
        release.wait(10)
        time.sleep(HOLD_SECONDS)
        released.put(time.monotonic())  # just before the turn ends, so never after it
    turns.close()


def _other_process_holding(url: str):
    context = multiprocessing.get_context("fork")
    holding, release, released = context.Event(), context.Event(), context.Queue()
    process = context.Process(target=_hold_turn, args=(url, holding, release, released))
    process.start()
    assert holding.wait(10)
    return process, release, released


def test_a_writer_waits_while_another_process_has_its_turn(tmp_path):
    url = f"sqlite:///{tmp_path / 'relay.sqlite3'}"
    process, release, released = _other_process_holding(url)
    turns = WriteTurns(url)
    release.set()
    with turns:
        acquired = time.monotonic()
    turns.close()
    let_go = released.get(timeout=10)
    process.join(10)
    assert acquired >= let_go, "the writer had its turn while the other process still held it"


def test_a_nested_turn_keeps_the_lock_until_the_outer_one_ends(tmp_path):
    url = f"sqlite:///{tmp_path / 'relay.sqlite3'}"
    turns = WriteTurns(url)
    context = multiprocessing.get_context("fork")
    with turns:
        with turns:
            pass
        # The inner turn has ended: another process must still wait for the outer one.
        acquired, asking = context.Queue(), context.Event()
        process = context.Process(target=_take_a_turn, args=(url, acquired, asking))
        process.start()
        assert asking.wait(10)
        time.sleep(HOLD_SECONDS)  # time for it to get the turn, if the inner turn let it go
        released = time.monotonic()  # just before the outer turn ends, so never after it
    turns.close()
    got = acquired.get(timeout=10)
    process.join(10)
    assert got >= released, "another process had its turn before the outer turn ended"


def _take_a_turn(url: str, acquired, asking) -> None:
    turns = WriteTurns(url)
    asking.set()
    with turns:
        acquired.put(time.monotonic())
    turns.close()
