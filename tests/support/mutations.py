"""Hypothesis strategies that bend the published examples out of shape, a few places at a time.

Where ``tests.support.malformed`` makes one seeded kind of bad input per message, these draw
any mix: a field dropped, added or given another type at any depth, strings a case system might
really send (NUL, lone surrogates, right-to-left marks, emoji, text past every limit), numbers
past every range, dates no calendar has, keys that only look like a field's, authorities no one
registered, a judgement nested where none belongs. Hypothesis shrinks whatever breaks to the
smallest document that still does.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import yaml
from hypothesis import strategies as st

from contracts.common import ORG_CODE_PATTERN
from contracts.reference import LONDON_AUTHORITIES
from tests.support import examples

# A child's identifiers in the examples: a refusal's reason, which the audit keeps for good,
# must never quote them (nor the odd names below, which stand for a child's).
CHILD_IDENTIFIERS = [
    "given_name",
    "family_name",
    "date_of_birth",
    "nhs_number",
    "unique_pupil_number",
]
ODD_NAMES = [
    "\u202eAmara Okafor",  # right-to-left override
    "Amara \U0001f467\U0001f3fd",  # emoji with a skin-tone modifier
    "A\u0301mara\u200dOkafor",  # combining accent, zero-width joiner
    "\u0623\u0645\u0627\u0631\u0627 Okafor",  # Arabic script
]


def _child_data() -> frozenset[str]:
    found = set(ODD_NAMES)
    for name in examples.ALL_EVENTS:
        case = examples.load(name)["data"]["case"]
        found.update(case["child_identity"].get(field) for field in CHILD_IDENTIFIERS)
        found.update(member["name"] for member in case.get("family_members", []))
    found.discard(None)
    return frozenset(found)


CHILD_DATA = _child_data()

ODD_TEXT = [
    "",
    " ",
    "\u00a0\u3000",
    "CAF\u0000-1",
    "\ud800",
    "x\udfffy",
    "\ufeffE09000012",
    "E09000012\n",
    "e09000012",
    "E09000099",
    "ZZZ",
    "group:london-authorities",
    "Line\u2028Separator",
    "e\u0301",
    "x" * 201,
    "y" * 8001,
    "../../etc/passwd",
    "%s%n{0}",
    "1.0",
    "true",
    *ODD_NAMES,
]
ODD_MOMENTS = [
    "2026-02-30",
    "2026-11-20",
    "2026-11-20T10:15:00",
    "2026-11-20T10:15:00+14:00",
    "2026-11-20T10:15:00-23:59",
    "2026-11-20T10:15:00.123456789Z",
    "2026-11-20t10:15:00z",
    "2026-11-20T24:00:00Z",
    "2026-11-20T10:15:60Z",
    "2026-11-20 10:15:00Z",
    "0001-01-01T00:00:00+01:00",
    "0001-01-01",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31",
    "0000-01-01T00:00:00Z",
    "2099-01-01T09:00:00Z",
    "+2026-11-20T10:15:00Z",
    "20261120T101500Z",
]
ODD_NUMBERS = [10**400, 10**40, -(10**40), 2**63, -1, 0, 0.5, -0.0, 1e308, float("nan")]
ODD_CODES = ["E09000099", "E0900001", "e09000012", "E09000012 ", "GROUP", "X" * 16, "E09000012\n"]
ORG_CODE = re.compile(ORG_CODE_PATTERN)
DATE_LIKE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ODD_KEYS = [
    "unexpected",
    "Amara Okafor",
    "9434765919",
    "0",
    "",
    " ",
    "\u0000",
    "judgement",
    "data",
    "__proto__",
]


def _leaf_values() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(ODD_TEXT),
        st.sampled_from(ODD_MOMENTS),
        st.sampled_from(ODD_NUMBERS),
        st.text(max_size=12),
        st.integers(),
        st.floats(),
        st.booleans(),
        st.none(),
    )


def odd_values() -> st.SearchStrategy[Any]:
    """Any JSON value a publisher could send, small, with the odd leaves above inside; and the
    example judgement, to land where no judgement belongs."""
    judgement = examples.load(examples.AD_HOC_WITH_JUDGEMENT)["data"]["sharing"]["judgement"]
    nested = st.recursive(
        _leaf_values(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(ODD_KEYS) | st.text(max_size=8), inner, max_size=3),
        ),
        max_leaves=6,
    )
    return st.one_of(_leaf_values(), nested, st.just(judgement).map(copy.deepcopy))


def _containers(document: Any) -> Iterator[dict | list]:
    """Every object and array in ``document``, outermost first."""
    stack = [document]
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            yield node
            stack.extend(node)


def _looks_like(key: str) -> list[str]:
    """Keys a careless or hostile writer might give for ``key``: a JSON parser tells them apart,
    a person reading the document might not."""
    return [
        key.upper(),
        key.title(),
        f"{key} ",
        f" {key}",
        f"{key}\u200b",
        key.replace("_", "-"),
        key.replace("a", "\u0430"),  # Cyrillic a
    ]


@st.composite
def mutated(draw: st.DrawFn, document: Any, *, most: int = 3) -> Any:
    """``document``, copied, with up to ``most`` changes anywhere in it; some of them (odd but
    valid text) leave it within its contract, so intake is tried past the contract too."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(0, most))):
        containers = list(_containers(document))
        target = containers[draw(st.integers(0, len(containers) - 1))]
        leaves = [key for key, value in _items(target) if not isinstance(value, dict | list)]
        change = draw(st.sampled_from(["alike", "structure", "named_for_the_child"]))
        if change == "alike" and leaves:
            key = draw(st.sampled_from(leaves))
            target[key] = draw(_alike(target[key]))
        elif change == "named_for_the_child" and isinstance(target, dict):
            target[draw(st.sampled_from(sorted(CHILD_DATA)))] = draw(odd_values())
        elif isinstance(target, list):
            _mutate_list(draw, target)
        else:
            _mutate_object(draw, target)
    return document


def _alike(value: Any) -> st.SearchStrategy[Any]:
    """Another value of the kind ``value`` is, valid or not: a moment for a moment, a code for a
    code, a number for a number; an odd name for any other text, which keeps most valid."""
    if isinstance(value, bool) or value is None:
        return st.sampled_from([not value, 0, 1, "true", None])
    if isinstance(value, int | float):
        return st.sampled_from(ODD_NUMBERS) | st.integers() | st.floats()
    if DATE_LIKE.match(value):
        return st.sampled_from(ODD_MOMENTS)
    if ORG_CODE.fullmatch(value):
        return st.sampled_from(ODD_CODES) | st.sampled_from(sorted(LONDON_AUTHORITIES))
    return st.sampled_from(ODD_NAMES) | st.sampled_from(ODD_TEXT)


def _items(container: dict | list) -> list[tuple[Any, Any]]:
    return list(container.items() if isinstance(container, dict) else enumerate(container))


def _mutate_list(draw: st.DrawFn, target: list) -> None:
    action = draw(st.sampled_from(["drop", "replace", "append", "repeat", "empty"]))
    if action == "append" or not target:
        target.append(draw(odd_values()))
    elif action == "drop":
        target.pop(draw(st.integers(0, len(target) - 1)))
    elif action == "replace":
        target[draw(st.integers(0, len(target) - 1))] = draw(odd_values())
    elif action == "repeat":
        target.append(copy.deepcopy(target[0]))
    else:
        target.clear()


def _mutate_object(draw: st.DrawFn, target: dict) -> None:
    action = draw(st.sampled_from(["drop", "replace", "retype", "add", "look_alike"]))
    if action == "add" or not target:
        target[draw(st.sampled_from(ODD_KEYS) | st.text(max_size=8))] = draw(odd_values())
        return
    key = draw(st.sampled_from(sorted(target)))
    if action == "drop":
        del target[key]
    elif action == "replace":
        target[key] = draw(odd_values())
    elif action == "retype":
        target[key] = _retyped(draw, target[key])
    else:
        target[draw(st.sampled_from(_looks_like(key)))] = copy.deepcopy(target[key])


def _retyped(draw: st.DrawFn, value: Any) -> Any:
    """``value`` as the same thing in another JSON type: a list of it, its text, an object."""
    choices = [[value], {"value": value}, json.dumps(value), None]
    if isinstance(value, bool):
        choices += [int(value), str(value).lower()]
    elif isinstance(value, int | float):
        choices += [bool(value), float(value), str(value)]
    elif isinstance(value, str) and value.isdigit():
        choices += [int(value)]
    return draw(st.sampled_from(choices))


def encoded(document: Any) -> st.SearchStrategy[bytes]:
    """``document`` as bytes a publisher might send it as: plain JSON, or with a key given twice,
    a byte-order mark, another encoding, or cut short."""
    text = json.dumps(document)
    first_key = text.find('": ')
    variants = [
        text.encode(),
        json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass"),
        text.encode("utf-16"),
        b"\xef\xbb\xbf" + text.encode(),
        text.encode()[: len(text) // 2],
    ]
    if isinstance(document, dict) and first_key > 0:
        key = text[1:first_key]
        variants.append(text.replace(f'"{key}": ', f'"{key}": null, "{key}": ', 1).encode())
        named = json.dumps(sorted(CHILD_DATA)[0])
        variants.append(text.replace("{", f"{{{named}: 1, {named}: 2, ", 1).encode())
    return st.sampled_from(variants)


@st.composite
def mutated_events(draw: st.DrawFn) -> tuple[str, bytes]:
    """(the example it was made from, the body) for a published example event, under an id of
    its own (most of the time: a repeated id is a duplicate), mutated."""
    name = draw(st.sampled_from(examples.ALL_EVENTS))
    event_id = draw(st.sampled_from(["repeated"]) | st.uuids().map(str))
    document = draw(mutated(examples.event(name, id=event_id)))
    return name, draw(encoded(document))


def as_yaml(document: Any) -> st.SearchStrategy[bytes]:
    """``document`` as YAML, or YAML that only a careless or hostile writer would send."""
    try:
        plain = yaml.safe_dump(document, allow_unicode=True).encode("utf-8", "surrogatepass")
    except yaml.YAMLError:
        plain = b"{}"
    return st.sampled_from(
        [
            plain,
            plain + b"\n---\n" + plain,
            b"!!python/object/apply:os.system ['true']\n",
            b"id: &a [*a]\n",
            b"a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
            b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c]\n",
            b"? [1, 2]\n: x\n",
            b"id: pan-london-caf\nid: other\n",
            b"version: !!binary aGVsbG8=\n",
            b"effective_from: 2026-04-01T10:00:00+01:00\n",
            b"\x00\xff",
        ]
    )
