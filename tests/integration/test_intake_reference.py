"""Intake keeps the authorities, ISPs and broker publishers in memory between batches; a change
made anywhere (another process, plain SQL) is in force from the next event stored after it."""

import base64
import json

import pytest
import sqlalchemy as sa

from service.access import OPERATOR, Principal, Role
from service.relay import Rejection
from service.senders import EMBEDDED, Sender
from service.store import tables as t
from service.store.isps import IspChange
from service.store.store import Store
from tests.conftest import fixed_clock
from tests.support import examples
from tests.support.store_reads import audit_actions, outbound

ISLINGTON = "E09000019"
HACKNEY = "E09000012"
NOW = fixed_clock()


@pytest.fixture
def elsewhere(services):
    """The database as another process sees it: a store of its own, with its own connections."""
    store = Store(services.store.url, services.settings.secret_box())
    yield store
    store.close()


@pytest.fixture
def by_hand(services):
    """Plain SQL on the database, as an operator at a psql prompt."""
    engine = sa.create_engine(services.store.url)
    yield engine
    engine.dispose()


def _receive(services, event_id, sender=EMBEDDED):
    event = examples.event(examples.ROUTINE_WITH_ISP, id=event_id)
    return services.relay.receive(examples.encode(event), sender=sender)


def _actions(services, event_id):
    return [action for _, action, _ in audit_actions(services.store, event_id)]


def test_an_isp_recorded_by_another_process_applies_to_the_next_event(services, elsewhere):
    assert _receive(services, "before-isp").state == "awaiting_judgement"

    elsewhere.add_isp(examples.pan_london_isp())

    assert _receive(services, "after-isp").state == "signed"
    decision = services.store.transfers.view("after-isp")["decision"]
    assert decision["isp"] == {"id": "pan-london-caf", "version": 1}
    # Decided again on the new ISP, and audited once, as decided.
    assert _actions(services, "after-isp") == ["received", "basis_decided", "minimised", "signed"]


def test_a_signature_confirmed_by_another_process_binds_from_the_next_event(services, elsewhere):
    hackney_admin = Principal("Hackney admin", Role.ADMIN, HACKNEY)
    pan_london = examples.pan_london_isp()
    elsewhere.isps.record([IspChange(pan_london, "isp_created")], now=NOW, by=hackney_admin)
    assert _receive(services, "islington-unconfirmed").state == "awaiting_judgement"

    islington_admin = Principal("Islington admin", Role.ADMIN, ISLINGTON)
    elsewhere.isps.confirm("pan-london-caf", 1, [ISLINGTON], now=NOW, by=islington_admin)

    assert _receive(services, "islington-confirmed").state == "signed"


def test_an_authority_renamed_by_hand_is_named_so_in_the_next_envelope(services, by_hand):
    services.store.add_isp(examples.pan_london_isp())
    assert _receive(services, "before-rename").state == "signed"

    with by_hand.begin() as connection:
        connection.execute(
            sa.update(t.Authority).where(t.Authority.code == ISLINGTON).values(name="Islington LBC")
        )

    assert _receive(services, "after-rename").state == "signed"
    jws = json.loads(outbound(services.store, "after-rename").jws)
    payload = json.loads(_b64decode(jws["payload"]))
    assert payload["to"] == {"code": ISLINGTON, "name": "Islington LBC"}


def test_an_authority_added_by_hand_is_known_to_the_next_event(services, by_hand):
    services.store.add_isp(examples.pan_london_isp())
    to_hartlepool = examples.routine("to-hartlepool", to="E06000001")
    refused = services.relay.receive(examples.encode(to_hartlepool), sender=EMBEDDED)
    assert refused.rejection == Rejection.UNKNOWN_AUTHORITY

    with by_hand.begin() as connection:
        connection.execute(
            sa.insert(t.Authority).values(
                code="E06000001", name="Hartlepool", kind="local_authority"
            )
        )
    again = examples.routine("to-hartlepool-again", to="E06000001")
    received = services.relay.receive(examples.encode(again), sender=EMBEDDED)

    # Known now, and outside the pan-London ISP: parked for a judgement, not refused.
    assert (received.rejection, received.state) == (None, "awaiting_judgement")


def test_a_broker_publisher_removed_by_another_process_sends_for_no_authority(services, elsewhere):
    services.store.add_isp(examples.pan_london_isp())
    services.store.access.set_broker_publisher("hackney-mosaic", HACKNEY, by=OPERATOR)
    account = Sender("Broker user 'hackney-mosaic'", broker_user="hackney-mosaic")
    assert _receive(services, "while-registered", account).state == "signed"

    elsewhere.access.remove_broker_publisher("hackney-mosaic", HACKNEY, by=OPERATOR)

    refused = _receive(services, "after-removal", account)
    assert refused.rejection == Rejection.FORGED_SENDER
    assert "(it sends for no authority)" in refused.reason


def test_the_reference_survives_its_version_row_being_deleted(services, by_hand):
    """As when a test or an operator empties the tables: intake starts a new version row."""
    assert _receive(services, "before-delete").state == "awaiting_judgement"
    with by_hand.begin() as connection:
        connection.execute(sa.delete(t.ReferenceVersion))

    services.store.add_isp(examples.pan_london_isp())

    assert _receive(services, "after-delete").state == "signed"
    assert _receive(services, "next").state == "signed"


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
