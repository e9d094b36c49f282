"""The published example events, ISP and envelope, as the tests' shared fixtures of record."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[2] / "contracts" / "examples"

ROUTINE_WITH_ISP = "event-routine-with-isp.json"
AD_HOC_WITH_JUDGEMENT = "event-ad-hoc-with-judgement.json"
ROUTINE_WITHOUT_BASIS = "event-routine-without-basis.json"
JUDGEMENT_NOT_TO_SHARE = "event-judgement-not-to-share.json"
ALL_EVENTS = (
    ROUTINE_WITH_ISP,
    AD_HOC_WITH_JUDGEMENT,
    ROUTINE_WITHOUT_BASIS,
    JUDGEMENT_NOT_TO_SHARE,
)


ENVELOPE_ROUTINE_WITH_ISP = "envelope-routine-with-isp.json"


def load(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


def pan_london_isp() -> dict[str, Any]:
    return load("isp-pan-london-caf.json")


def event(name: str, **changes: Any) -> dict[str, Any]:
    """An example event, copied, with top-level attributes replaced (e.g. a fresh id)."""
    document = copy.deepcopy(load(name))
    document.update(changes)
    return document


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def routine(event_id: str, *, case: str = "CAF-HK-2026-0001", to: str = "E09000019") -> dict:
    """A routine transfer under the pan-London ISP, for the given case and recipient."""
    document = event(ROUTINE_WITH_ISP, id=event_id, subject=case)
    document["data"]["to_authority"] = to
    return document
