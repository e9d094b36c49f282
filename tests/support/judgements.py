"""Judgement records for the parked example (Newham to Tower Hamlets, routine safeguarding).

Made from the published example judgements, re-addressed, so a judgement recorded for the
parked transfer is one a practitioner of Newham could really have written.
"""

from __future__ import annotations

import copy
from typing import Any

from contracts.judgement import JudgementSchema
from tests.support import examples

NEWHAM, TOWER_HAMLETS = "E09000025", "E09000030"
SHARED = ["child_identity", "lead_professional"]


def _example(name: str) -> dict[str, Any]:
    document = copy.deepcopy(examples.load(name)["data"]["sharing"]["judgement"])
    document["practitioner"]["organisation"] = NEWHAM
    document["recipients"] = [TOWER_HAMLETS]
    return document


def share(**changes: Any) -> dict[str, Any]:
    """A decision to share the child's identity and lead professional, for safeguarding."""
    document = _example(examples.AD_HOC_WITH_JUDGEMENT)
    document.update(purpose="safeguarding", data_categories=list(SHARED))
    document.update(changes)
    return document


def not_share(**changes: Any) -> dict[str, Any]:
    document = _example(examples.JUDGEMENT_NOT_TO_SHARE)
    document.update(changes)
    return document


def as_recorded(document: dict[str, Any]) -> dict[str, Any]:
    """The judgement as the relay keeps and forwards it: in the contract's own JSON form."""
    schema = JudgementSchema()
    return schema.dump(schema.load(document))
