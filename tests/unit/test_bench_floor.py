"""The benchmark's floor calls the relay's own domain code, so it breaks when that code changes
shape; CI runs no benchmark, so this runs the floor on a few events."""

from bench import floor


def test_the_floor_measures_each_step_of_intake():
    steps = floor.measure(3)
    assert len(steps) == 3
    assert all(ms > 0 for ms in steps.values())
