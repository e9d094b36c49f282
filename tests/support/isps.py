"""An ISP between two boroughs only, for tests of the register and what it decides."""

from __future__ import annotations

from typing import Any

from service.domain.model import IspTerms, isp_terms, signatory_parties
from tests.support import examples

# The parties of examples.ROUTINE_WITHOUT_BASIS, which nothing in the examples covers.
NEWHAM, TOWER_HAMLETS = "E09000025", "E09000030"


def bilateral(**changes: Any) -> dict[str, Any]:
    """The pan-London example narrowed to Newham and Tower Hamlets, for safeguarding."""
    return {
        **examples.pan_london_isp(),
        "id": "newham-tower-hamlets",
        "title": "Newham and Tower Hamlets safeguarding ISP",
        "parties": [NEWHAM, TOWER_HAMLETS],
        "purposes": ["safeguarding"],
        "signatories": [
            {
                "party": code,
                "name": "Director of Children's Services",
                "role": "DCS",
                "signed_on": "2026-03-20",
            }
            for code in (NEWHAM, TOWER_HAMLETS)
        ],
        **changes,
    }


def confirmed_terms(document: dict[str, Any]) -> IspTerms:
    """The terms of ``document`` with every signature confirmed, as a global admin records it."""
    return isp_terms(document, confirmed=signatory_parties(document))


YAML = """\
id: newham-tower-hamlets
version: 1
title: Newham and Tower Hamlets safeguarding ISP
status: active
parties: [E09000025, E09000030]
flows: [caf.case-transfer.requested]
purposes: [safeguarding]
data_categories: [child_identity, child_contact, lead_professional]
lawful_basis:
  article_6: 6(1)(e)
effective_from: 2026-04-01
review_by: 2027-03-31
expires_on: 2029-03-31
retention:
  period_days: 2555
signatories:
  - {party: E09000025, name: Director of Children's Services, role: DCS, signed_on: 2026-03-20}
  - {party: E09000030, name: Director of Children's Services, role: DCS, signed_on: 2026-03-20}
document:
  reference: Newham and Tower Hamlets ISP 2026
  sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
"""
