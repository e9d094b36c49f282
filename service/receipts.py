"""Checks a recipient's signed receipt: proof that it holds exactly the envelope that was sent.

A receipt is a JWS (JSON serialization, Ed25519, like the envelope) whose payload names the
envelope id and the SHA-256 of the envelope text as sent. It is checked against the keys the
recipient registered (``caf-relay authority keys``); the result goes to the audit either way,
because a delivery the receiver acknowledged over HTTP stands even if its receipt does not verify.
"""

from __future__ import annotations

from typing import Any

from adapters.base import OutboundEnvelope
from service.domain.storable import storable_text
from service.signing import VerificationError, verify


def check_receipt(
    receipt: str, keys: dict[str, Any] | None, envelope: OutboundEnvelope
) -> dict[str, Any]:
    """The audit detail for ``receipt``: whether it verified, and if not, why not."""
    if not keys:
        return {"verified": False, "reason": f"{envelope.to_authority} has no receipt keys"}
    try:
        header, payload = verify(receipt, keys)
    except VerificationError as exc:  # may quote the receipt's header
        return {"verified": False, "reason": storable_text(str(exc))}
    if not isinstance(payload, dict):
        return {"verified": False, "reason": "The receipt's payload is not a JSON object."}
    digest = payload.get("sha256")
    # Hex in either case: some platforms write it in capitals (.NET's Convert.ToHexString).
    digest = digest.lower() if isinstance(digest, str) else digest
    if (payload.get("envelope_id"), digest) != (envelope.envelope_id, envelope.sha256):
        return {"verified": False, "reason": "The receipt is for another envelope or content."}
    received_at, kid = payload.get("received_at"), header.get("kid")
    # Only text goes into the audit from outside, and only text it can store: a number could be
    # re-formatted by PostgreSQL's JSONB and so break the audit record's hash. A receipt naming
    # no key (verified by the recipient's only one) is audited with none.
    return {
        "verified": True,
        "kid": storable_text(kid) if isinstance(kid, str) else None,
        "received_at": storable_text(received_at) if isinstance(received_at, str) else None,
    }
