"""The relay keeps no more of a child's case than it sends: a parked transfer keeps its event
whole for the judgement to choose from; once decided, only what was forwarded stays."""

from datetime import UTC, datetime

import sqlalchemy as sa

from service.access import Principal, Role
from service.senders import EMBEDDED
from service.signing import verify
from service.store.tables import Transfer
from tests.support import examples, judgements
from tests.support.migrations import down_and_up_again
from tests.support.store_reads import outbound

NEWHAM = "E09000025"
NEWHAM_PRACTITIONER = Principal("Ada Newham", Role.PRACTITIONER, NEWHAM, "tok-newham")


def _stored(services, event_id: str) -> dict:
    """The event as stored, read straight from the table."""
    engine = sa.create_engine(services.store.url)
    with engine.connect() as connection:
        event = connection.scalar(sa.select(Transfer.event).where(Transfer.event_id == event_id))
    engine.dispose()
    return event


def _forwarded(services, event_id: str) -> dict:
    _, payload = verify(outbound(services.store, event_id).jws, services.keyring.jwks())
    return payload["event"]


def test_a_transfer_shared_under_an_isp_keeps_only_the_categories_it_sent(services):
    services.store.add_isp(examples.pan_london_isp())
    event = examples.event(examples.ROUTINE_WITH_ISP)
    assert services.relay.receive(examples.encode(event), sender=EMBEDDED).state == "signed"

    stored = _stored(services, event["id"])
    assert "family_and_environment" in event["data"]["case"]
    assert "family_and_environment" not in stored["data"]["case"]  # the ISP does not allow it
    assert stored == _forwarded(services, event["id"])


def test_a_parked_transfer_keeps_its_event_whole_until_a_judgement_shares_part_of_it(services):
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS)
    services.relay.receive(examples.encode(event), sender=EMBEDDED)
    assert _stored(services, event["id"]) == event

    services.judgements.record(event["id"], judgements.share(), by=NEWHAM_PRACTITIONER)

    stored = _stored(services, event["id"])
    assert set(stored["data"]["case"]) == {"child_identity", "lead_professional"}
    assert stored == _forwarded(services, event["id"])


def test_a_transfer_withheld_on_a_judgement_keeps_no_case_only_the_decision_and_why(services):
    withheld = examples.event(examples.JUDGEMENT_NOT_TO_SHARE)
    assert services.relay.receive(examples.encode(withheld), sender=EMBEDDED).state == "withheld"

    assert _stored(services, withheld["id"])["data"]["case"] == {}
    view = services.store.transfers.view(withheld["id"])
    assert view["decision"]["judgement"]["decision"] == "not_share"
    assert view["decision"]["judgement"]["reasons"]


def test_the_migration_minimises_the_shared_events_stored_whole_before_it(services):
    services.store.add_isp(examples.pan_london_isp())
    shared = examples.event(examples.ROUTINE_WITH_ISP)
    purged = examples.event(examples.AD_HOC_WITH_JUDGEMENT)
    withheld = examples.event(examples.JUDGEMENT_NOT_TO_SHARE)
    parked = examples.event(examples.ROUTINE_WITHOUT_BASIS)
    for event in (shared, purged, withheld, parked):
        services.relay.receive(examples.encode(event), sender=EMBEDDED)
    engine = sa.create_engine(services.store.url)
    with engine.begin() as connection:  # as the relay stored them before 0006
        for event in (shared, purged, withheld):
            connection.execute(
                sa.update(Transfer).where(Transfer.event_id == event["id"]).values(event=event)
            )
        connection.execute(  # what a purge by an earlier release's worker might race with
            sa.update(Transfer)
            .where(Transfer.event_id == purged["id"])
            .values(payload_purged_at=datetime.now(UTC))
        )
    down_and_up_again(engine, "0005")
    engine.dispose()

    assert _stored(services, shared["id"]) == _forwarded(services, shared["id"])
    assert _stored(services, purged["id"]) == purged  # a purged row is retention's alone
    assert _stored(services, withheld["id"]) == withheld  # retention's, audited, in its time
    assert _stored(services, parked["id"]) == parked


def test_the_migration_minimises_every_shared_event_not_only_a_lone_one(services):
    """Two or more shared transfers are rewritten in one statement (executemany), which an
    expanding ``IN`` in its ``WHERE`` clause made SQLAlchemy refuse: the upgrade failed."""
    services.store.add_isp(examples.pan_london_isp())
    shared = [examples.event(examples.ROUTINE_WITH_ISP, id=f"0006-{n}") for n in range(3)]
    for event in shared:
        assert services.relay.receive(examples.encode(event), sender=EMBEDDED).state == "signed"
    engine = sa.create_engine(services.store.url)
    with engine.begin() as connection:  # as the relay stored them before 0006
        for event in shared:
            connection.execute(
                sa.update(Transfer).where(Transfer.event_id == event["id"]).values(event=event)
            )
    down_and_up_again(engine, "0005")
    engine.dispose()

    for event in shared:
        assert _stored(services, event["id"]) == _forwarded(services, event["id"])
