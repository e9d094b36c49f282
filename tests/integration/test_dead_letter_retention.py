"""Retention of the embedded queue's dead letters: refused input, which may hold a child's case,
goes once its period has passed since it arrived, each removal is audited without what it held,
and the chain still verifies."""

from datetime import timedelta

from service.domain.audit_chain import timestamp
from service.embedded import InProcessQueue
from service.retention import Retention
from service.store import dead_letters
from tests.support import examples
from tests.support.dead_letters import age, kept
from tests.support.store_reads import audit_actions

DAYS = 30


def _refused(event_id: str) -> bytes:
    """A whole case, refused because it names no known recipient."""
    event = examples.event(examples.ROUTINE_WITH_ISP, id=event_id)
    event["data"]["to_authority"] = "E09999999"
    return examples.encode(event)


def _refuse(services, *bodies: bytes) -> None:
    queue = InProcessQueue(services.relay, services.deliverer, services.store)
    for body in bodies:
        queue.publish(body)
    queue.drain()


def _run(services, at, *, days: int = DAYS) -> int:
    retention = Retention(
        services.store.payloads,
        services.store.dead_letters,
        judgement_days=365,
        dead_letter_days=days,
        clock=lambda: at,
    )
    return retention.run().dead_letters


def _purges(services) -> list[dict]:
    return [d for e, a, d in audit_actions(services.store) if a == "dead_letters_purged" and not e]


def test_a_refused_case_is_kept_for_the_period_then_removed_and_the_audit_says_so(services):
    body = _refused("refused-whole-case")
    _refuse(services, body)
    [(received, letter)] = kept(services.store)
    assert letter == body and b"9434765919" in letter  # the child's NHS number, as refused

    assert _run(services, received + timedelta(days=DAYS, microseconds=-1)) == 0
    assert kept(services.store) == [(received, body)] and _purges(services) == []

    assert _run(services, received + timedelta(days=DAYS)) == 1
    assert kept(services.store) == []
    assert _purges(services) == [
        {
            "dead_letters": 1,
            "received_from": timestamp(received),
            "received_until": timestamp(received),
            "retention_days": DAYS,
            "period_set_by": "CAF_RELAY_DEAD_LETTER_RETENTION_DAYS",
            "removed": ["refused input as received", "reason"],
        }
    ]
    assert _run(services, received + timedelta(days=DAYS * 2)) == 0
    assert len(_purges(services)) == 1  # a run that removes nothing records nothing

    audit = repr(audit_actions(services.store))
    assert "9434765919" not in audit and "Amara" not in audit
    refusal = [d for _, a, d in audit_actions(services.store) if a == "rejected"]
    assert [d["rejection"] for d in refusal] == ["unknown_authority"]  # why it was refused stays
    assert services.audit.verify().intact


def test_only_the_letters_past_the_period_go(services):
    older, newer = _refused("refused-older"), _refused("refused-newer")
    _refuse(services, older, newer)
    age(services.store, older, 10)
    [(older_received, _), (newer_received, _)] = kept(services.store)

    assert _run(services, newer_received + timedelta(days=DAYS - 5)) == 1
    assert kept(services.store) == [(newer_received, newer)]
    [purge] = _purges(services)
    assert purge["received_from"] == purge["received_until"] == timestamp(older_received)


def test_a_backlog_goes_in_batches_each_audited(services, monkeypatch):
    monkeypatch.setattr(dead_letters, "BATCH", 2)
    for n in range(5):
        services.store.add_dead_letter(f"not json {n}".encode(), "Not JSON")
    newest = kept(services.store)[-1][0]

    assert _run(services, newest + timedelta(days=DAYS)) == 5
    assert kept(services.store) == []
    purges = _purges(services)
    assert [p["dead_letters"] for p in purges] == [2, 2, 1]
    assert purges[-1]["received_until"] == timestamp(newest)
    assert services.audit.verify().intact


def test_a_period_reaching_back_before_year_one_keeps_every_letter(services):
    _refuse(services, _refused("refused-kept"))
    [(received, _)] = kept(services.store)
    assert _run(services, received + timedelta(days=DAYS), days=3_000_000) == 0
    assert len(kept(services.store)) == 1
