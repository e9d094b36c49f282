"""The rules of sharing, as pure functions over plain dataclasses: no I/O, no frameworks."""
