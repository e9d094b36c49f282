"""The stored register: versions kept, only the newest decides, nothing recorded out of order."""

import pytest

from service.access import OPERATOR
from service.domain.isp_register import VersionOutOfOrder
from service.senders import EMBEDDED
from service.store.isps import IspChange
from tests.support import examples
from tests.support.isps import bilateral
from tests.support.store_reads import audit_actions


def test_a_suspension_recorded_as_a_new_version_is_what_transfers_are_decided_on(services):
    store = services.store
    store.add_isp(bilateral())
    store.isps.record(
        [IspChange(bilateral(version=2, status="suspended"), "isp_suspended")],
        now=services.clock(),
        by=OPERATOR,
    )

    assert [(t.id, t.version, t.status) for t in store.isps.terms()] == [
        ("newham-tower-hamlets", 1, "active"),
        ("newham-tower-hamlets", 2, "suspended"),
    ]
    assert [v.document["version"] for v in store.isps.versions("newham-tower-hamlets")] == [1, 2]

    event = examples.event(examples.ROUTINE_WITHOUT_BASIS)
    assert services.relay.receive(examples.encode(event), sender=EMBEDDED).state == (
        "awaiting_judgement"
    )
    assert store.transfers.view(event["id"])["decision"]["considered"] == [
        {"isp_id": "newham-tower-hamlets", "version": 2, "finding": "suspended"}
    ]


def test_a_version_that_is_not_the_next_is_not_recorded_and_neither_are_the_others(services):
    store = services.store
    store.add_isp(bilateral())
    with pytest.raises(VersionOutOfOrder):
        store.isps.record(
            [
                IspChange(examples.pan_london_isp(), "isp_created"),
                IspChange(bilateral(version=3), "isp_amended"),
            ],
            now=services.clock(),
            by=OPERATOR,
        )
    assert list(store.isps.latest()) == ["newham-tower-hamlets"]
    assert [a for _, a, _ in audit_actions(store) if a.startswith("isp_")] == ["isp_created"]
