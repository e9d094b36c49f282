"""The least CPU caf-relay must spend on one event before storing or sending anything.

    .venv/bin/python bench/floor.py            # about 10 s

Parses and validates each of the bench's routine events against the contract, decides its
basis, minimises it, builds its envelope and signs it, in one process with no store and no
broker: the steps no relay that keeps the contract may skip. Compared with what RabbitMQ and a
raw relay spend per event (``bench/relay.py``, "broker CPU ms/event"), it says how close to the
raw relay's rate caf-relay could come on this machine even if storing cost nothing.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script: the imports below need the repo root, not bench/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from bench.traffic import SENDER, routine_events
from contracts.event import CaseTransferEventSchema
from contracts.reference import LONDON_AUTHORITIES
from service.domain.basis import decide_basis
from service.domain.envelope import Organisation, build_envelope
from service.domain.minimise import minimise
from service.domain.model import isp_terms, signatory_parties, transfer_request
from service.signing import KeyRing
from tests.support import examples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    options = parser.parse_args(argv)
    steps = measure(options.events)
    print(f"CPU ms per event over {options.events} routine events, one process, no store:")
    for name, ms in steps.items():
        print(f"  {name:42s} {ms:6.3f}")
    print(f"  {'floor: all of them':42s} {sum(steps.values()):6.3f}")
    return 0


def measure(events: int) -> dict[str, float]:
    """CPU ms per event of each step over ``events`` routine events, each timed after a warm
    run; their sum is the floor. ``bench/relay.py`` also takes it, as the machine's speed."""
    bodies = list(routine_events("floor", events).values())
    schema = CaseTransferEventSchema()
    isp = examples.pan_london_isp()
    terms = [isp_terms(isp, confirmed=signatory_parties(isp))]
    with tempfile.TemporaryDirectory() as folder:
        keyring = KeyRing.from_file(Path(folder) / "key.pem", create=True)
    now = datetime.now(UTC)

    documents: list = []
    envelopes: list = []

    def parse_and_validate() -> None:
        documents.clear()
        for body in bodies:
            document = json.loads(body)
            schema.load(document)
            documents.append(document)

    def decide_minimise_build() -> None:
        envelopes.clear()
        for event in documents:
            decision = decide_basis(transfer_request(event), terms, now.date())
            data = event["data"]
            envelopes.append(
                build_envelope(
                    envelope_id=str(uuid.uuid4()),
                    issued_at=now,
                    event=event,
                    decision=decision,
                    minimised=minimise(data["case"], decision.permitted_categories),
                    sender=Organisation(SENDER, LONDON_AUTHORITIES[SENDER]),
                    recipient=Organisation(data["to_authority"], "recipient"),
                )
            )

    def sign() -> None:
        for envelope in envelopes:
            keyring.sign(envelope)

    steps: list[tuple[str, Callable[[], None]]] = [
        ("parse and validate (json, marshmallow)", parse_and_validate),
        ("decide, minimise, build the envelope", decide_minimise_build),
        ("sign (canonical JSON, Ed25519 JWS)", sign),
    ]
    spent = {}
    for name, step in steps:
        step()  # warm
        started = time.process_time()
        step()
        spent[name] = (time.process_time() - started) * 1000 / len(bodies)
    return spent


if __name__ == "__main__":
    sys.exit(main())
