"""A PostgreSQL store at the scale of years of use, to read the plans and times of the store's
reads over it: ``/metrics``' aggregates and the audit search.

    .venv/bin/python bench/store_scale.py build     # 200,000 transfers, 1M audit records
    .venv/bin/python bench/store_scale.py time      # EXPLAIN ANALYZE of each read, and its time

A few real transfers (one of each outcome, from the published examples) are taken in by the
relay; SQL then copies them, with their envelopes, delivery attempts and audit records, into a
year of traffic: mostly delivered, some parked, withheld, waiting or failed, about one event in
a hundred rejected. The audit's ``recorded_at`` runs slightly backwards along ``seq`` now and
then, as it does when transactions commit in another order than they took the time. The copied
records are not chained (their hashes are not real): only reads are measured here.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.bootstrap import build_services  # noqa: E402
from service.config import Settings  # noqa: E402
from service.metrics import registry_for  # noqa: E402
from service.senders import EMBEDDED  # noqa: E402
from service.store.audit_search import AuditQuery  # noqa: E402
from tests.support import examples  # noqa: E402
from tests.support.store_reads import selects  # noqa: E402

SERVER = os.environ.get(
    "CAF_RELAY_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DATABASE = "caf_relay_store_scale"
TRANSFERS = 200_000
START = datetime(2026, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=365)
# Per hundred transfers: delivered, signed (waiting), failed, parked, withheld.
OUTCOMES = (
    ("delivered", 88),
    ("signed", 2),
    ("failed", 2),
    ("awaiting_judgement", 5),
    ("withheld", 3),
)


def _url() -> str:
    return make_url(SERVER).set(database=DATABASE).render_as_string(hide_password=False)


def build() -> None:
    admin = sa.create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{DATABASE}"'))
    admin.dispose()
    instance = Path("/tmp") / f"{DATABASE}-instance"
    settings = Settings.from_env(
        {
            "CAF_RELAY_INSTANCE_DIR": str(instance),
            "CAF_RELAY_DATABASE_URL": _url(),
            "CAF_RELAY_SECRETS_KEYS": Fernet.generate_key().decode(),
        }
    )
    services = build_services(settings)
    services.store.initialise()
    services.store.add_isp(examples.pan_london_isp())
    templates = {
        "delivered": examples.routine("template-delivered"),
        "signed": examples.routine("template-signed"),
        "failed": examples.routine("template-failed"),
        "awaiting_judgement": examples.event(examples.ROUTINE_WITHOUT_BASIS, id="template-parked"),
        "withheld": examples.event(examples.JUDGEMENT_NOT_TO_SHARE, id="template-withheld"),
    }
    for event in templates.values():
        services.relay.receive(examples.encode(event), sender=EMBEDDED)
    services.close()
    engine = sa.create_engine(_url())
    with engine.begin() as conn:
        _copy(conn, {state: event["id"] for state, event in templates.items()})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()


def _copy(conn: sa.Connection, template_of: dict[str, str]) -> None:
    """Copy the template transfers into a year of them, with what each outcome leaves."""
    cases = " ".join(
        f"WHEN g % 100 < {sum(n for _, n in OUTCOMES[: i + 1])} THEN '{state}'"
        for i, (state, _) in enumerate(OUTCOMES)
    )
    seconds = SPAN.total_seconds() / TRANSFERS
    conn.execute(
        sa.text(
            f"""
            CREATE TEMP TABLE plan AS
            SELECT g, 'scale-' || g AS event_id, CASE {cases} END AS state,
                   :start + make_interval(secs => g * {seconds}) AS at
            FROM generate_series(1, {TRANSFERS}) g
            """
        ),
        {"start": START},
    )
    conn.execute(sa.text("CREATE TEMP TABLE templates (state text, event_id text)"))
    conn.execute(
        sa.text("INSERT INTO templates VALUES (:state, :event_id)"),
        [{"state": s, "event_id": e} for s, e in template_of.items()],
    )
    conn.execute(
        sa.text(
            """
            INSERT INTO transfers (event_id, case_reference, from_authority, to_authority, mode,
                purpose, state, decision, event, received_at, updated_at, payload_purged_at)
            SELECT p.event_id, 'CAF-SCALE-' || (p.g % 50000), t.from_authority,
                   'E090000' || lpad(((p.g % 33) + 1)::text, 2, '0'), t.mode, t.purpose, p.state,
                   t.decision, t.event, p.at, p.at + interval '5 minutes', NULL
            FROM plan p JOIN templates s USING (state) JOIN transfers t ON t.event_id = s.event_id
            """
        )
    )
    conn.execute(
        sa.text(
            """
            INSERT INTO envelopes (envelope_id, event_id, kid, jws, sha256, issued_at, withdrawn_at)
            SELECT gen_random_uuid()::text, p.event_id, e.kid, e.jws, e.sha256, p.at, NULL
            FROM plan p JOIN templates s USING (state)
            JOIN envelopes e ON e.event_id = s.event_id
            """
        )
    )
    # A delivered envelope went at the first attempt, or (one in ten) after a failed one; a
    # failed one failed five times.
    conn.execute(
        sa.text(
            """
            INSERT INTO delivery_attempts (envelope_id, attempted_at, adapter_type, succeeded,
                retryable, detail, duration_ms, receipt)
            SELECT e.envelope_id, p.at + make_interval(secs => n * 30 + (p.g % 7)), 'https',
                   p.state = 'delivered' AND n = CASE WHEN p.g % 10 = 0 THEN 1 ELSE 0 END,
                   p.state <> 'delivered', 'HTTP 503', 40 + p.g % 200, NULL
            FROM plan p JOIN envelopes e ON e.event_id = p.event_id
            CROSS JOIN generate_series(0, 4) n
            WHERE p.state = 'failed'
               OR (p.state = 'delivered' AND n <= CASE WHEN p.g % 10 = 0 THEN 1 ELSE 0 END)
            """
        )
    )
    conn.execute(
        sa.text(
            """
            INSERT INTO outbox (event_id, to_authority, case_reference, enqueued_at,
                next_attempt_at, attempts, claimed_by, claimed_until)
            SELECT t.event_id, t.to_authority, t.case_reference, t.received_at,
                   t.received_at, 0, NULL, NULL
            FROM transfers t JOIN plan p ON p.event_id = t.event_id WHERE p.state = 'signed'
            """
        )
    )
    conn.execute(
        sa.text(
            """
            INSERT INTO audit_subjects (event_id, case_reference, from_authority, to_authority,
                basis_kind)
            SELECT t.event_id, t.case_reference, t.from_authority, t.to_authority, s.basis_kind
            FROM transfers t JOIN plan p ON p.event_id = t.event_id
            JOIN templates m ON m.state = p.state
            JOIN audit_subjects s ON s.event_id = m.event_id
            """
        )
    )
    # Each transfer's records as its template's (a delivered one gets a delivered record), and
    # one rejection per hundred transfers; seq in order of the plan, recorded_at now and then a
    # second before the record ahead of it.
    conn.execute(
        sa.text(
            """
            CREATE TEMP TABLE records AS
            SELECT p.g, p.at, p.event_id, r.action, r.detail, r.seq AS template_seq
            FROM plan p JOIN templates m ON m.state = p.state
            JOIN audit_records r ON r.event_id = m.event_id
            UNION ALL
            SELECT p.g, p.at + interval '2 minutes', p.event_id, 'delivered',
                   '{"adapter": "https", "attempt": 1}'::jsonb, 1000000
            FROM plan p WHERE p.state = 'delivered'
            UNION ALL
            SELECT p.g, p.at + interval '1 second', 'rejected-' || p.g, 'rejected',
                   jsonb_build_object('rejection',
                       (ARRAY['contract_violation', 'forged_sender', 'id_conflict'])[p.g % 3 + 1],
                       'reason', 'the event does not meet the contract'), 2000000
            FROM plan p WHERE p.g % 100 = 50
            """
        )
    )
    head = conn.execute(sa.text("SELECT seq FROM audit_chain_head")).scalar_one()
    conn.execute(
        sa.text(
            """
            INSERT INTO audit_records (seq, recorded_at, event_id, action, detail, prev_hash, hash)
            SELECT :head + row_number() OVER (ORDER BY g, template_seq),
                   at + make_interval(secs => template_seq % 5)
                      - CASE WHEN g % 97 = 0 THEN interval '1 second' ELSE interval '0' END,
                   event_id, action, detail, repeat('0', 64), repeat('0', 64)
            FROM records
            """
        ),
        {"head": head},
    )
    # The templates' own records, taken in today, come first in the year's order.
    conn.execute(
        sa.text("UPDATE audit_records SET recorded_at = :before WHERE seq <= :head"),
        {"before": START - timedelta(days=1), "head": head},
    )
    conn.execute(
        sa.text(
            """
            UPDATE audit_chain_head SET seq = (SELECT max(seq) FROM audit_records),
                latest_recorded_at = (SELECT max(recorded_at) FROM audit_records),
                max_lag_us = (
                    SELECT COALESCE(max(round(extract(epoch FROM (latest - recorded_at)) * 1e6)), 0)
                    FROM (SELECT recorded_at, max(recorded_at) OVER (ORDER BY seq ROWS
                            BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS latest
                          FROM audit_records) behind
                    WHERE latest > recorded_at)
            """
        )
    )


def _scrape(services) -> None:
    registry = registry_for(services.store, lambda: datetime.now(UTC))
    list(registry.collect())


def measure() -> None:
    settings = Settings.from_env(
        {
            "CAF_RELAY_INSTANCE_DIR": str(Path("/tmp") / f"{DATABASE}-instance"),
            "CAF_RELAY_DATABASE_URL": _url(),
            "CAF_RELAY_SECRETS_KEYS": Fernet.generate_key().decode(),
        }
    )
    services = build_services(settings)
    store = services.store
    engine = store._engine
    mid_year = START + timedelta(days=182)
    with engine.connect() as conn:
        last = conn.execute(sa.text("SELECT max(recorded_at) FROM audit_records")).scalar_one()
        mid_year_seq = conn.execute(
            sa.text("SELECT max(seq) FROM audit_records WHERE recorded_at < :until"),
            {"until": mid_year},
        ).scalar_one()
    reads = {
        "scrape": lambda: _scrape(services),
        "audit since last day": lambda: store.audit_search.search(
            AuditQuery(since=last - timedelta(days=1))
        ),
        "audit since last 90 days": lambda: store.audit_search.search(
            AuditQuery(since=last - timedelta(days=90))
        ),
        "audit since, last page": lambda: store.audit_search.search(
            AuditQuery(since=last - timedelta(hours=1), after=0)
        ),
        "audit in one day mid-year": lambda: store.audit_search.search(
            AuditQuery(since=START + timedelta(days=180), until=START + timedelta(days=181))
        ),
        "audit until, last page": lambda: store.audit_search.search(
            AuditQuery(until=mid_year, after=mid_year_seq - 10)
        ),
        "audit since, an authority": lambda: store.audit_search.search(
            AuditQuery(since=last - timedelta(days=1), authority="E09000019")
        ),
        "audit by action, none there": lambda: store.audit_search.search(
            AuditQuery(action="child_record_read")
        ),
    }
    for name, call in reads.items():
        times = []
        for _ in range(3):
            began = time.perf_counter()
            call()
            times.append(time.perf_counter() - began)
        print(f"== {name}: median {statistics.median(times) * 1000:.0f} ms of {len(times)} runs")
        for statement, parameters in selects(store, call):
            with engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters
                ).all()
                conn.rollback()
            lines = [row[0] for row in rows]
            took = next((line for line in lines if line.startswith("Execution Time")), "")
            flat = re.sub(r"\s+", " ", statement)
            print(f"-- {flat[:160]}\n   {took}")
            for line in lines:
                print("   " + line)
    services.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("build", "time"))
    arguments = parser.parse_args()
    build() if arguments.what == "build" else measure()
