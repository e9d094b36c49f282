"""SQLite writers queue for their turn across processes (an flock beside the database file)."""

import multiprocessing
import time

from service.store.write_turns import WriteTurns

HOLD_SECONDS = 0.5


def _hold_turn(url: str, holding, release) -> None:
    turns = WriteTurns(url)
    with turns:
        holding.set()
        release.wait(10)
        time.sleep(HOLD_SECONDS)
    turns.close()


def _other_process_holding(url: str):
    context = multiprocessing.get_context("fork")
    holding, release = context.Event(), context.Event()
    process = context.Process(target=_hold_turn, args=(url, holding, release))
    process.start()
    assert holding.wait(10)
    return process, release


def test_a_writer_waits_while_another_process_has_its_turn(tmp_path):
    url = f"sqlite:///{tmp_path / 'relay.sqlite3'}"
    process, release = _other_process_holding(url)
    turns = WriteTurns(url)
    release.set()
    started = time.monotonic()
    with turns:
        waited = time.monotonic() - started
    process.join(10)
    turns.close()
    assert waited >= HOLD_SECONDS * 0.8


def test_a_nested_turn_keeps_the_lock_until_the_outer_one_ends(tmp_path):
    url = f"sqlite:///{tmp_path / 'relay.sqlite3'}"
    turns = WriteTurns(url)
    context = multiprocessing.get_context("fork")
    with turns:
        with turns:
            pass
        # The inner turn has ended: another process must still wait for the outer one.
        took, asking = context.Queue(), context.Event()
        process = context.Process(target=_time_a_turn, args=(url, took, asking))
        process.start()
        assert asking.wait(10)  # its clock starts now, however long it took to start
        time.sleep(HOLD_SECONDS)
    process.join(10)
    turns.close()
    assert took.get(timeout=5) >= HOLD_SECONDS * 0.8


def _time_a_turn(url: str, took, asking) -> None:
    turns = WriteTurns(url)
    asking.set()
    started = time.monotonic()
    with turns:
        took.put(time.monotonic() - started)
    turns.close()
