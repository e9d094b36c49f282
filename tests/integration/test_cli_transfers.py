"""``caf-relay transfer list|show|redeliver`` and ``caf-relay judgement record``."""

from __future__ import annotations

import json

import pytest
import yaml

from service.senders import EMBEDDED
from tests.support import examples, judgements
from tests.support.cli import runner

PARKED = examples.load(examples.ROUTINE_WITHOUT_BASIS)["id"]  # Newham -> Tower Hamlets


@pytest.fixture
def run(services):
    """Runs a caf-relay command on the test database, after two routine transfers and a parked
    one have come in."""
    services.store.add_isp(examples.pan_london_isp())
    for event in (examples.routine("hk-0"), examples.routine("hk-1", case="CAF-HK-2")):
        services.relay.receive(examples.encode(event), sender=EMBEDDED)
    services.relay.receive(
        examples.encode(examples.event(examples.ROUTINE_WITHOUT_BASIS)), sender=EMBEDDED
    )
    return runner(services)


def test_list_prints_a_table_and_json_filtered_and_paged(run):
    table = run("transfer", "list")
    assert table.exit_code == 0, table.output
    header, *rows = table.output.splitlines()
    assert header.split() == [
        "EVENT_ID",
        "STATE",
        "BASIS",
        "FROM_AUTHORITY",
        "TO_AUTHORITY",
        "RECEIVED_AT",
    ]
    assert [row.split()[:3] for row in rows] == [
        ["hk-0", "signed", "isp"],
        ["hk-1", "signed", "isp"],
        [PARKED, "awaiting_judgement", "none"],
    ]

    parked = run("transfer", "list", "--state", "awaiting_judgement", "--json")
    assert [t["event_id"] for t in json.loads(parked.output)] == [PARKED]
    to_tower_hamlets = run("transfer", "list", "--authority", "E09000030", "--json")
    assert [t["event_id"] for t in json.loads(to_tower_hamlets.output)] == [PARKED]

    page = run("transfer", "list", "--limit", "2", "--json")
    assert [t["event_id"] for t in json.loads(page.stdout)] == ["hk-0", "hk-1"]
    assert page.stderr == "More: --after hk-1\n", "the hint stays out of the JSON"
    rest = run("transfer", "list", "--limit", "2", "--after", "hk-1", "--json")
    assert [t["event_id"] for t in json.loads(rest.stdout)] == [PARKED]
    assert rest.stderr == ""


def test_list_after_an_event_id_not_in_the_listing_says_so(run):
    """A mistyped ``--after`` would otherwise print an empty table, as if nothing were left."""
    result = run("transfer", "list", "--after", "hk-9")
    assert result.exit_code == 2, result.output
    assert "'--after'" in result.output and "start again from the first page" in result.output


def test_list_takes_times_with_or_without_their_zone(run):
    received = {
        t["event_id"]: t["received_at"]
        for t in json.loads(run("transfer", "list", "--json").output)
    }
    since = received["hk-1"]  # as listed: ISO 8601 in UTC, with its Z
    lower = since.replace("T", "t").replace("Z", "z")  # as RFC 3339 allows
    for given in (since, since.removesuffix("Z"), since.replace("Z", "+00:00"), lower):
        listed = run("transfer", "list", "--since", given, "--json")
        assert listed.exit_code == 0, listed.output
        assert [t["event_id"] for t in json.loads(listed.output)] == ["hk-1", PARKED], given
    wrong = run("transfer", "list", "--since", "last tuesday")
    assert wrong.exit_code == 2 and "not an ISO 8601 date or time" in wrong.output
    too_early = run("transfer", "list", "--since", "0001-01-01T00:00:00+01:00")
    assert too_early.exit_code == 2 and "Out of range: it has no time in UTC." in too_early.output


def test_show_prints_the_state_reason_and_timeline(run):
    shown = run("transfer", "show", PARKED)
    assert shown.exit_code == 0, shown.output
    assert "E09000025 -> E09000030, routine, safeguarding" in shown.output
    assert "state: awaiting_judgement (No applicable ISP" in shown.output
    assert "basis_decided" in shown.output and "awaiting_judgement" in shown.output
    assert json.loads(run("transfer", "show", PARKED, "--json").output)["event_id"] == PARKED
    missing = run("transfer", "show", "no-such-event")
    assert missing.exit_code == 1 and "No transfer with event id 'no-such-event'" in missing.output
    assert "refused" not in missing.output


def test_show_of_an_event_that_was_refused_says_why_and_where_its_records_are(services, run):
    """The operator, asked why an event never arrived, looks it up by its id."""
    refused = examples.encode(examples.event(examples.ROUTINE_WITH_ISP, id="refused", data={}))
    assert services.relay.receive(refused, sender=EMBEDDED).rejection == "contract_violation"
    shown = run("transfer", "show", "refused")
    assert shown.exit_code == 1
    assert "No transfer with event id 'refused': refused 1 time, last at 20" in shown.output
    assert "Z (contract_violation: " in shown.output
    assert "caf-relay audit search --event-id refused" in shown.output
    found = json.loads(run("audit", "search", "--event-id", "refused", "--json").output)
    assert [r["detail"]["rejection"] for r in found["records"]] == ["contract_violation"]


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_judgement_record_from_a_file_releases_the_parked_transfer(services, run, tmp_path, suffix):
    document = judgements.share()
    path = tmp_path / f"judgement{suffix}"
    path.write_text(json.dumps(document) if suffix == ".json" else yaml.safe_dump(document))

    result = run("judgement", "record", PARKED, str(path))

    assert result.exit_code == 0, result.output
    assert f"{PARKED} is signed: Shared on a practitioner's recorded judgement." in result.output
    view = services.store.transfers.view(PARKED)
    assert view["state"] == "signed"
    assert view["decision"]["judgement"] == judgements.as_recorded(document)
    recorded = [e for e in view["timeline"] if e["action"] == "judgement_recorded"]
    assert recorded[0]["detail"]["by"]["name"] == "command line"


def test_judgement_record_refuses_an_invalid_file_with_the_fields_at_fault(services, run, tmp_path):
    document = judgements.share()
    del document["recipients"]
    path = tmp_path / "judgement.json"
    path.write_text(json.dumps(document))

    result = run("judgement", "record", PARKED, str(path))

    assert result.exit_code == 1
    assert "Does not match the practitioner-judgement contract." in result.output
    assert '"recipients": [' in result.output
    assert services.store.transfers.view(PARKED)["state"] == "awaiting_judgement"


def test_judgement_record_names_a_stray_yaml_line_read_as_a_dated_key(services, run, tmp_path):
    path = tmp_path / "judgement.yaml"
    path.write_text(yaml.safe_dump(judgements.share()) + "2026-11-24: reviewed with my manager\n")

    result = run("judgement", "record", PARKED, str(path))

    assert result.exit_code == 1, result.output
    assert '"2026-11-24": [\n    "Unknown field."' in result.output
    assert services.store.transfers.view(PARKED)["state"] == "awaiting_judgement"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        # A decision changed by pasting a second line below the first: read as the last, the
        # transfer would be shared on a decision the practitioner may have meant to undo.
        ("judgement.yaml", yaml.safe_dump(judgements.share()) + "decision: not_share\n"),
        ("judgement.json", json.dumps(judgements.share())[:-1] + ', "recipients": ["E09000012"]}'),
    ],
)
def test_judgement_record_refuses_a_file_giving_a_field_twice(
    services, run, tmp_path, name, content
):
    path = tmp_path / name
    path.write_text(content)

    result = run("judgement", "record", PARKED, str(path))

    assert result.exit_code == 1, result.output
    assert f"{name} cannot be read as JSON or YAML" in result.output, result.output
    assert "given twice" in result.output
    assert services.store.transfers.view(PARKED)["state"] == "awaiting_judgement"


def test_judgement_record_says_a_file_not_in_utf8_cannot_be_read(services, run, tmp_path):
    """A judgement saved by an editor in Windows-1252, a practitioner named Zoë in it."""
    document = judgements.share()
    document["practitioner"]["name"] = "Zoë Adebayo"
    path = tmp_path / "judgement.yaml"
    path.write_bytes(yaml.safe_dump(document, allow_unicode=True).encode("cp1252"))

    result = run("judgement", "record", PARKED, str(path))

    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), "no traceback"
    assert "judgement.yaml is not text in UTF-8" in result.output, result.output
    assert services.store.transfers.view(PARKED)["state"] == "awaiting_judgement"


def test_judgement_record_says_where_a_yaml_file_dates_it_on_a_day_that_does_not_exist(
    services, run, tmp_path
):
    """YAML reads 2027-02-29T10:00:00Z as a time, and 2027 has no 29 February."""
    path = tmp_path / "judgement.yaml"
    text = yaml.safe_dump({**judgements.share(), "decided_at": "DECIDED"})
    path.write_text(text.replace("decided_at: DECIDED", "decided_at: 2027-02-29T10:00:00Z"))
    line = text.splitlines().index("decided_at: DECIDED") + 1

    result = run("judgement", "record", PARKED, str(path))

    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), "no traceback"
    assert "judgement.yaml cannot be read as JSON or YAML" in result.output, result.output
    assert "'2027-02-29T10:00:00Z' is no date or time: day is out of range" in result.output
    assert f"line {line}," in result.output
    assert services.store.transfers.view(PARKED)["state"] == "awaiting_judgement"


def test_judgement_record_refuses_a_transfer_already_decided(run, tmp_path):
    path = tmp_path / "judgement.json"
    path.write_text(json.dumps(judgements.not_share()))
    assert run("judgement", "record", PARKED, str(path)).exit_code == 0

    again = run("judgement", "record", PARKED, str(path))

    assert again.exit_code == 1
    assert "The transfer is withheld, not awaiting a judgement" in again.output


def test_redeliver_refuses_a_transfer_that_has_not_failed(run):
    result = run("transfer", "redeliver", "hk-0")
    assert result.exit_code == 1
    assert "hk-0 is signed; only a failed transfer is redelivered." in result.output
