"""Subject access export: what the relay did with one child's record, for the child or family.

For every transfer of that child: who sent it to whom and when, on what basis (the ISP, or the
practitioner's judgement record in full), which data categories went and which were withheld,
and whether it was delivered. The transfers are found through the audit's child keys, so the
export holds that child's transfers and nothing of any other child; it holds no case data.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from contracts.vocabulary import TransferState
from service.access import Principal
from service.child_reads import SUBJECT_ACCESS, ChildReads
from service.domain.audit_chain import timestamp
from service.domain.child_keys import IDENTIFIER_FIELDS, ChildKeys, IdentifierError, identifier_from
from service.domain.model import basis_kind
from service.store.audit_log import SENDERS_OWN
from service.store.audit_search import AuditSearch
from service.store.transfers import SENDERS_JUDGEMENTS
from service.store.withdrawals import UNSENT

if TYPE_CHECKING:
    from jinja2 import Environment

DELIVERY_BY_STATE = {
    TransferState.DELIVERED: "delivered",
    TransferState.FAILED: "delivery failed",
    TransferState.SIGNED: "waiting for delivery",
    TransferState.AWAITING_JUDGEMENT: "not sent: waiting for a practitioner's judgement",
    TransferState.WITHHELD: "not sent: a practitioner decided not to share",
}


@functools.cache
def _templates() -> Environment:
    """The HTML templates, loaded on first use: only the web app renders an export, and every
    process (a worker's two among them) builds ``SubjectAccess``."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(
        loader=PackageLoader("service", "templates"), autoescape=select_autoescape(["html"])
    )


class SubjectAccess:
    def __init__(
        self,
        search: AuditSearch,
        child_keys: ChildKeys,
        reads: ChildReads,
        clock: Callable[[], datetime],
    ) -> None:
        self._search = search
        self._child_keys = child_keys
        self._reads = reads
        self._clock = clock

    def export(self, params: Mapping[str, str | None], reader: Principal) -> dict[str, Any]:
        """The export for the child the parameters name (see ``identifier_from``), recorded as
        ``reader``'s read of the child's record before it is given (``service.child_reads``).

        For a reader with an authority (an auditor), only the transfers that authority sent, or
        received once they were sent, the latter without their sender's own business.
        """
        identifier = identifier_from(params)
        if identifier is None or identifier.kind == "name_and_birth_date":
            # Two children can share a name and a birthday; an export must be one child's only.
            raise IdentifierError(
                "Name the child by nhs_number or unique_pupil_number: a name and date of birth "
                "can match more than one child."
            )
        authority = reader.authority
        child_key = self._child_keys.key(identifier)
        transfers = [
            transfer
            for transfer in self._search.child_transfers(child_key)
            if authority in (None, transfer["from"]["code"])
            or (authority == transfer["to"]["code"] and transfer["state"] not in UNSENT)
        ]
        self._reads.record(reader, SUBJECT_ACCESS, child_key, len(transfers))
        return {
            "generated_at": timestamp(self._clock()),
            "child": {name: params[name] for name in IDENTIFIER_FIELDS if params.get(name)},
            "transfers": [
                _transfer(t, for_sender=authority in (None, t["from"]["code"])) for t in transfers
            ],
        }


def render_html(export: dict[str, Any]) -> str:
    """A readable page of the export, laid out for printing."""
    return _templates().get_template("subject_access.html").render(export=export)


def _transfer(stored: dict[str, Any], *, for_sender: bool) -> dict[str, Any]:
    actions = {r["action"]: r for r in _since_withdrawn(stored["audit"])}  # the latest of each
    received = actions.get("received", {}).get("detail", {})
    minimised = actions.get("minimised", {}).get("detail")
    current = minimised["shared"] if minimised else []
    shared = list(dict.fromkeys([*current, *_delivered_categories(stored["audit"])]))
    withheld = minimised["withheld"] if minimised else received.get("categories_present", [])
    delivered = actions.get("delivered")
    decision = stored["decision"]
    return {
        "event_id": stored["event_id"],
        "case_reference": stored["case_reference"],
        "from": stored["from"],
        "to": stored["to"],
        "purpose": stored["purpose"],
        "mode": stored["mode"],
        "received_at": stored["received_at"],
        "basis": _basis(decision, for_sender=for_sender),
        "decision": decision["reason"],
        "categories": {
            "shared": shared,
            "withheld": [category for category in withheld if category not in shared],
        },
        "delivery": {
            "outcome": DELIVERY_BY_STATE.get(stored["state"], stored["state"]),
            "delivered_at": delivered["recorded_at"] if delivered else None,
        },
        "payload_purged_at": stored["payload_purged_at"],
        "history": [
            {"seq": r["seq"], "at": r["recorded_at"], "action": r["action"]}
            for r in stored["audit"]
            if for_sender or r["action"] not in SENDERS_OWN
        ],
    }


def _since_withdrawn(audit: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that say what the transfer shares now: its arrival, and those since its
    basis was last withdrawn (an ISP suspended before delivery), if it was and was not given
    back since (``basis_reinstated``): the minimising before that no longer holds."""
    since = None
    for i, record in enumerate(audit):
        if record["action"] == "basis_withdrawn":
            since = i
        elif record["action"] == "basis_reinstated":
            since = None  # the envelope withdrawn, and what it shared, count again
    if since is None:
        return audit
    return [r for r in audit[:since] if r["action"] == "received"] + audit[since:]


def _delivered_categories(audit: list[dict[str, Any]]) -> list[str]:
    """The categories of every envelope of the transfer that was delivered, withdrawn or not:
    one withdrawn by an ISP's ending may still have arrived before it was recorded, besides
    the envelope a judgement then signed (``service.store.withdrawals``), and its recipient
    holds both. An envelope's ``minimised`` record comes just before its ``signed`` one."""
    shared_by_envelope: dict[str, list[str]] = {}
    minimised: list[str] = []
    delivered: list[str] = []
    for record in audit:
        if record["action"] == "minimised":
            minimised = record["detail"]["shared"]
        elif record["action"] == "signed":
            shared_by_envelope[record["detail"]["envelope_id"]] = minimised
        elif record["action"] == "delivered":
            delivered += shared_by_envelope.get(record["detail"]["envelope_id"], [])
    return delivered


def _basis(decision: dict[str, Any], *, for_sender: bool) -> dict[str, Any]:
    """The basis the transfer went on. For its sender, also the judgements the relay keeps
    beside it, reasons and all, so the child's export holds them (``SENDERS_JUDGEMENTS``): one
    not to share that a late delivery overtook (``reinstated_decision``), and one sent with the
    event that was set aside (basis rule 6). Its recipient was never meant to see either."""
    kind = basis_kind(decision)
    basis = {"kind": kind}
    if kind != "none":
        basis[kind] = decision[kind]
    if for_sender:
        basis.update({name: decision[name] for name in SENDERS_JUDGEMENTS if name in decision})
    return basis
