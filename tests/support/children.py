"""Many distinct children, for tests that must tell one child's transfers from everyone else's."""

from __future__ import annotations

from typing import Any

from service.senders import EMBEDDED
from tests.support import examples

GIVEN = ["Amara", "Ben", "Chloe", "Dev", "Ella", "Femi", "Grace", "Hamza", "Isla", "Jay"]
FAMILY = ["Okafor", "Smith", "Nowak", "Patel", "Jones", "Adeyemi", "Khan", "Murphy"]


def child(n: int) -> dict[str, Any]:
    """Child number ``n``: its own name, birth date, NHS number and UPN."""
    return {
        "given_name": GIVEN[n % len(GIVEN)],
        "family_name": f"{FAMILY[n % len(FAMILY)]}-{n}",
        "date_of_birth": f"20{10 + n % 8:02d}-0{1 + n % 9}-{10 + n % 18:02d}",
        "nhs_number": f"{9000000000 + n}",
        "unique_pupil_number": f"A{n:011d}K",
    }


def transfer_of(
    template: str, event_id: str, identity: dict[str, Any], *, case: str | None = None
) -> dict[str, Any]:
    """An example event for another child: a fresh id and case reference, the same flow."""
    document = examples.event(template, id=event_id, subject=case or f"CAF-{event_id}")
    document["data"]["case"]["child_identity"] = {"sex": "not_stated", **identity}
    return document


def shared_under_the_isp(services: Any, prefix: str, count: int) -> None:
    """Children 0 to ``count - 1``, each sent from Hackney to Islington under the pan-London
    ISP (added here), as events ``<prefix>-<n>``."""
    services.store.add_isp(examples.pan_london_isp())
    for n in range(count):
        event = transfer_of(examples.ROUTINE_WITH_ISP, f"{prefix}-{n}", child(n))
        assert services.relay.receive(examples.encode(event), sender=EMBEDDED).state == "signed"
