"""Seeded generator of messages the relay must refuse: broken bytes, broken JSON, and valid
events bent out of their contract in one place each."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from tests.support import examples

# Paths of fields the contract requires, so removing one always breaks it.
REQUIRED = [
    ("id",),
    ("source",),
    ("type",),
    ("specversion",),
    ("subject",),
    ("data",),
    ("data", "from_authority"),
    ("data", "to_authority"),
    ("data", "sharing"),
    ("data", "sharing", "mode"),
    ("data", "case"),
    ("data", "case", "child_identity"),
]


def messages(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    made = []
    for n in range(count):
        valid = examples.routine(f"malformed-{seed}-{n}")
        mutation = rng.choice(MUTATIONS)
        made.append(mutation(valid, rng))
    return made


def _random_bytes(_: dict, rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))


def _truncated(valid: dict, rng: random.Random) -> bytes:
    text = examples.encode(valid)
    return text[: rng.randrange(1, len(text) - 1)]


def _not_an_object(_: dict, rng: random.Random) -> bytes:
    return json.dumps(rng.choice([42, "event", None, True, [1, 2], 3.5])).encode()


def _without_required(valid: dict, rng: random.Random) -> bytes:
    *parents, last = rng.choice(REQUIRED)
    _at(valid, parents).pop(last)
    return examples.encode(valid)


def _with_unknown_field(valid: dict, rng: random.Random) -> bytes:
    target = rng.choice(_objects(valid))
    target[f"unexpected_{rng.randrange(10**6)}"] = rng.choice([1, "x", None, [], {}])
    return examples.encode(valid)


def _wrong_type(valid: dict, rng: random.Random) -> bytes:
    target = rng.choice(_objects(valid))
    key = rng.choice(sorted(target))
    value = target[key]
    target[key] = [value] if not isinstance(value, list) else {"was": "a list"}
    return examples.encode(valid)


def _unknown_authority(valid: dict, rng: random.Random) -> bytes:
    valid["data"][rng.choice(["from_authority", "to_authority"])] = (
        f"E09{rng.randrange(100, 999)}99"
    )
    return examples.encode(valid)


def _oversized(valid: dict, rng: random.Random) -> bytes:
    valid["data"]["case"]["plan"] = {"padding": "x" * rng.randrange(300_000, 400_000)}
    return examples.encode(valid)


def _unstorable_text(valid: dict, rng: random.Random) -> bytes:
    """Valid JSON the relay could not sign or store: a NUL, or an unpaired surrogate."""
    valid["subject"] = rng.choice(["CAF\u0000-1", "CAF-\ud800"])
    return examples.encode(valid)


def _blank_name(valid: dict, rng: random.Random) -> bytes:
    identity = valid["data"]["case"]["child_identity"]
    identity[rng.choice(["given_name", "family_name"])] = " " * rng.randrange(1, 5)
    return examples.encode(valid)


def _nested_too_deeply(_: dict, rng: random.Random) -> bytes:
    depth = rng.randrange(50_000, 100_000)
    return b"[" * depth + b"]" * depth


MUTATIONS: list[Callable[[dict, random.Random], bytes]] = [
    _random_bytes,
    _truncated,
    _not_an_object,
    _without_required,
    _with_unknown_field,
    _wrong_type,
    _unknown_authority,
    _oversized,
    _nested_too_deeply,
    _unstorable_text,
    _blank_name,
]


def _at(document: dict, path: list[str]) -> Any:
    for key in path:
        document = document[key]
    return document


def _objects(document: Any) -> list[dict]:
    """Every JSON object in the document, the top level included."""
    found = []
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found
