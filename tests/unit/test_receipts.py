"""A recipient's signed receipt, checked against its keys and the envelope as sent."""

import hashlib

from adapters.base import OutboundEnvelope
from service.receipts import check_receipt
from service.signing import KeyRing


def test_a_receipt_giving_the_digest_in_capital_hex_verifies(tmp_path):
    # Before, refused as "for another envelope or content": the same digest, written as some
    # platforms write hex.
    recipient = KeyRing.from_file(tmp_path / "recipient.pem", create=True)
    jws = '{"payload":"e30","signatures":[]}'
    envelope = OutboundEnvelope(
        "env-1", "event-1", "E09000019", jws, hashlib.sha256(jws.encode()).hexdigest()
    )
    for digest, verified in ((envelope.sha256.upper(), True), ("0" * 64, False)):
        receipt = recipient.sign({"envelope_id": "env-1", "sha256": digest})
        assert check_receipt(receipt, recipient.jwks(), envelope)["verified"] is verified
