"""Seeded generator of messages the relay must refuse: broken bytes, broken JSON, and valid
events bent out of their contract in one place each."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import pytest

from service.relay import Rejection
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


def messages(count: int, seed: int) -> list[tuple[bytes, frozenset[str]]]:
    """``count`` bad messages, each with the rejections it may rightly get."""
    rng = random.Random(seed)
    made = []
    for n in range(count):
        valid = examples.routine(f"malformed-{seed}-{n}")
        mutation = rng.choice(list(MUTATIONS))
        made.append((mutation(valid, rng), MUTATIONS[mutation]))
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


NOT_JSON, CONTRACT = frozenset({"not_json"}), frozenset({"contract_violation"})
# Each mutation, with the rejections its messages may get: random bytes may happen to be JSON
# (a lone digit), which then breaks the contract.
MUTATIONS: dict[Callable[[dict, random.Random], bytes], frozenset[str]] = {
    _random_bytes: NOT_JSON | CONTRACT,
    _truncated: NOT_JSON,
    _not_an_object: CONTRACT,
    _without_required: CONTRACT,
    _with_unknown_field: CONTRACT,
    _wrong_type: CONTRACT,
    _unknown_authority: frozenset({"unknown_authority"}),
    _oversized: frozenset({"oversized"}),
    _nested_too_deeply: NOT_JSON,
    _unstorable_text: NOT_JSON,
    _blank_name: CONTRACT,
}


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


def _with_unknown_field_in_identity(document: dict) -> dict:
    document["data"]["case"]["child_identity"]["favourite_colour"] = "blue"
    return document


def _judged_in(event: dict, year: int) -> dict:
    event["data"]["sharing"]["judgement"]["decided_at"] = f"{year}-01-01T09:00:00Z"
    return event


def _routine(**changes: Any) -> bytes:
    return examples.encode(examples.event(examples.ROUTINE_WITH_ISP, **changes))


# One of each kind of bad input, with the rejection it gets and words its reason must contain;
# over AMQP, over HTTP and on the embedded queue alike.
BAD_INPUT = [
    pytest.param(b"{not json", Rejection.NOT_JSON, "Not JSON", id="not-json"),
    pytest.param(b"\xff\xfe", Rejection.NOT_JSON, "Not JSON", id="not-utf8"),
    pytest.param(b"[]", Rejection.CONTRACT, "case-transfer contract", id="not-an-object"),
    pytest.param(
        examples.encode(_with_unknown_field_in_identity(examples.event(examples.ROUTINE_WITH_ISP))),
        Rejection.CONTRACT,
        "favourite_colour",
        id="unknown-field",
    ),
    pytest.param(
        _routine(
            data={**examples.load(examples.ROUTINE_WITH_ISP)["data"], "to_authority": "E09000099"}
        ),
        Rejection.UNKNOWN_AUTHORITY,
        "E09000099",
        id="unknown-authority",
    ),
    pytest.param(
        examples.encode(_judged_in(examples.event(examples.AD_HOC_WITH_JUDGEMENT), 2099)),
        Rejection.CONTRACT,
        'decided_at": ["Later than the judgement reached the relay',
        id="judgement-dated-ahead",
    ),
    pytest.param(
        # Read as the last, the recipient would be one the sender's system did not show.
        _routine().replace(
            b'"to_authority": ', b'"to_authority": "E09000012", "to_authority": ', 1
        ),
        Rejection.NOT_JSON,
        "Not JSON we accept: 'to_authority' given twice in one object.",
        id="field-given-twice",
    ),
    pytest.param(b" " * 300_000, Rejection.OVERSIZED, "limit is 262144", id="oversized"),
    pytest.param(b"[" * 100_000, Rejection.NOT_JSON, "nested too deeply", id="nested-too-deeply"),
    pytest.param(
        _routine().replace(b'"specversion"', b'"n": ' + b"1" * 5000 + b', "specversion"', 1),
        Rejection.NOT_JSON,
        "a number has more than 4300 digits",
        id="number-too-long",
    ),
    pytest.param(
        _routine(subject="\ud800"),
        Rejection.NOT_JSON,
        "unpaired UTF-16 surrogate",
        id="lone-surrogate",
    ),
    pytest.param(
        _routine(subject="CAF\u0000"), Rejection.NOT_JSON, "NUL character", id="nul-character"
    ),
    pytest.param(
        _routine(subject="SURROGATE").replace(b"SURROGATE", b"\xed\xa0\x80"),
        Rejection.NOT_JSON,
        "unpaired UTF-16 surrogate",
        id="surrogate-as-raw-bytes",
    ),
    pytest.param(
        _routine(subject="CAF\u0000").decode().encode("utf-16"),
        Rejection.NOT_JSON,
        "NUL character",
        id="nul-character-in-utf16",
    ),
]
