"""``bench/intake.py --instructions`` takes the difference between two counted runs as intake's
cost; making the bench's events costs about as much as an eighth of intake, so both runs must
make the same events, or the difference counts making them too. CI runs no benchmark, so this
runs the measured function itself on a small SQLite store."""

from bench import intake
from bench.traffic import routine_events


def test_the_counted_runs_make_the_same_events_whatever_their_count():
    made = []

    def make(prefix: str, count: int):
        made.append(count)
        return routine_events(prefix, count).values()

    for events in (intake.FEWER, intake.MORE):
        assert intake._cpu_ms_per_event(events, 32, make) > 0
    assert made[0] == made[1]
