"""``caf-relay audit ...`` and ``caf-relay retention run`` on the database under test."""

import json

import pytest
import sqlalchemy as sa

from service.senders import EMBEDDED
from tests.support import examples
from tests.support.cli import runner
from tests.support.dead_letters import age, kept
from tests.support.store_reads import audit_actions
from tests.support.tampering import necessity_rewritten, rewrite_transfer


@pytest.fixture
def run(services):
    """Runs a caf-relay command with the test services' settings, as an operator would."""
    services.store.add_isp(examples.pan_london_isp())
    for name in examples.ALL_EVENTS:
        services.relay.receive(examples.encode(examples.event(name)), sender=EMBEDDED)
    return runner(services)


def _tamper(services, sql: str) -> None:
    engine = sa.create_engine(services.store.url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def test_verify_says_the_chain_is_intact_and_checkpoints_it(run):
    result = run("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "Audit chain intact: 15 records, head seq 15" in result.output
    assert "Signed a checkpoint of record 15." in result.output
    assert "Judgements checked against their digests in the chain: 2." in result.output
    assert "Search index matches the records." in result.output
    again = run("audit", "verify", "--json")
    assert json.loads(again.output)["checkpoints"]["checked"] == 1


def test_after_a_key_rotation_the_retired_key_keeps_old_checkpoints_verifying(
    services, run, tmp_path
):
    assert run("audit", "checkpoint").exit_code == 0  # signed with the key about to retire
    retired = tmp_path / "retired.jwks.json"
    retired.write_text(run("keys", "public", str(services.settings.signing_key_file)).output)
    new_key = tmp_path / "new-signing-key.pem"
    assert run("keys", "generate", str(new_key)).exit_code == 0

    forgotten = run("audit", "verify", "--json", CAF_RELAY_SIGNING_KEY_FILE=str(new_key))
    assert forgotten.exit_code == 1
    assert json.loads(forgotten.output)["checkpoints"]["errors"]

    rotated = {
        "CAF_RELAY_SIGNING_KEY_FILE": str(new_key),
        "CAF_RELAY_RETIRED_KEYS_FILE": str(retired),
    }
    kept = run("audit", "verify", "--json", "--no-checkpoint", **rotated)
    assert kept.exit_code == 0, kept.output
    assert json.loads(kept.output)["checkpoints"] == {"checked": 1, "errors": []}
    assert run("audit", "checkpoint", **rotated).exit_code == 0


def test_verify_exits_1_naming_the_first_bad_record(services, run):
    _tamper(services, "UPDATE audit_records SET action = 'delivered' WHERE seq = 5")
    result = run("audit", "verify")
    assert result.exit_code == 1
    assert "Audit chain BROKEN at record 5: edited." in result.output
    assert "Signed a checkpoint" not in result.output
    assert run("audit", "checkpoint").exit_code == 1


def test_verify_exits_1_naming_the_record_the_search_index_no_longer_matches(services, run):
    """The index moved the transfers to Lambeth, whose auditor would find them and Islington's
    not. Record 1 is the ISP's; 2 the first transfer's arrival."""
    _tamper(services, "UPDATE audit_subjects SET to_authority = 'E09000022'")
    result = run("audit", "verify")
    assert result.exit_code == 1
    assert "Audit chain intact: 15 records" in result.output
    problems = [line for line in result.output.splitlines() if "Search index problem" in line]
    assert len(problems) == len(examples.ALL_EVENTS)
    assert problems[0] == (
        "Search index problem: The search index's entry for the transfer whose arrival is audit "
        "record 2 differs in to_authority, so searches may find its records where they should "
        "not, or miss them."
    )
    assert "Signed a checkpoint of record 15." in result.output  # the records are evidence


def test_verify_exits_1_naming_the_record_whose_judgement_was_rewritten(services, run):
    withheld = examples.load(examples.JUDGEMENT_NOT_TO_SHARE)["id"]
    rewrite_transfer(services.store.url, withheld, necessity_rewritten)
    result = run("audit", "verify")
    assert result.exit_code == 1
    assert "Audit chain intact: 15 records" in result.output
    engine = sa.create_engine(services.store.url)
    with engine.connect() as conn:
        decided = conn.scalar(
            sa.text("SELECT seq FROM audit_records WHERE event_id = :e AND action = :a"),
            {"e": withheld, "a": "basis_decided"},
        )
    engine.dispose()
    assert (
        f"Judgement problem: The judgement whose digest audit record {decided} holds has "
        "changed since it was recorded" in result.output
    )
    assert "Signed a checkpoint of record 15." in result.output, "the digest kept as evidence"


def test_a_checkpoint_kept_elsewhere_still_catches_a_rewrite_that_removed_the_stored_ones(
    services, run, tmp_path
):
    kept = tmp_path / "checkpoint.jws"
    assert run("audit", "checkpoint", "--out", str(kept)).exit_code == 0
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(services.keyring.jwks()))
    _tamper(services, "DELETE FROM audit_checkpoints")
    _tamper(services, "DELETE FROM audit_records WHERE seq >= 14")
    _tamper(
        services,
        "UPDATE audit_chain_head SET seq = 13, hash = (SELECT hash FROM "
        "audit_records WHERE seq = 13)",
    )
    alone = run("audit", "verify", "--no-checkpoint")
    assert "Audit chain intact: 13 records" in alone.output, "the chain alone cannot tell"
    # Record 14 was the withheld transfer's basis decision, and its judgement is still stored:
    assert "a judgement that its latest basis decision in the audit does not rest on" in (
        alone.output
    )
    result = run("audit", "verify", "--checkpoint", str(kept), "--jwks", str(jwks))
    assert result.exit_code == 1
    assert "BROKEN at record 14: deleted" in result.output


@pytest.mark.parametrize("command", [["audit", "search"], ["transfer", "list"]])
def test_an_authority_the_register_does_not_hold_is_refused_not_listed_as_empty(run, command):
    result = run(*command, "--authority", "E09000099")
    assert result.exit_code == 2
    assert "'E09000099' is not an organisation in the register." in result.output


def test_search_prints_a_table_or_json(run):
    table = run("audit", "search", "--nhs-number", "9434765919", "--basis", "judgement")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert len(lines) == 7 and "basis_decided" in lines[1]
    page = json.loads(
        run("audit", "search", "--case-reference", "CAF-HAC-2026-00417", "--json").output
    )
    assert [r["action"] for r in page["records"]] == [
        "received",
        "basis_decided",
        "minimised",
        "signed",
    ]
    refused = run("audit", "search", "--since", "last week")
    assert refused.exit_code == 2 and "since" in refused.output


def test_search_help_says_a_time_needs_its_zone_as_the_search_does(run):
    # Unlike transfer list, the audit search refuses a time without a zone: its help says so,
    # rather than leave "UTC if a date" to be read as "UTC if none given".
    told = " ".join(run("audit", "search", "--help").output.split())
    assert "--since TEXT From this: ISO 8601 with a time zone, or a date" in told
    refused = run("audit", "search", "--since", "2026-11-24T09:00")
    assert refused.exit_code == 2 and "since needs a time zone" in refused.output


def test_subject_access_writes_a_printable_page(run, tmp_path):
    page = tmp_path / "export.html"
    result = run("audit", "subject-access", "--nhs-number", "943 476 5919", "--html", str(page))
    assert result.exit_code == 0, result.output
    assert "4 transfers written" in result.output
    assert page.read_text().count("<section>") == 4
    export = json.loads(run("audit", "subject-access", "--upn", "H801200001001").output)
    assert len(export["transfers"]) == 4
    assert run("audit", "subject-access").exit_code == 2
    by_name = run("audit", "subject-access", "--given-name", "Amara", "--family-name", "Okafor")
    assert by_name.exit_code == 2 and "No such option '--given-name'" in by_name.output


def test_an_export_and_a_search_by_child_at_the_command_line_are_audited_as_reads(
    services, run, tmp_path
):
    identity = examples.load(examples.ROUTINE_WITH_ISP)["data"]["case"]["child_identity"]
    exported = run("audit", "subject-access", "--nhs-number", identity["nhs_number"])
    assert len(json.loads(exported.output)["transfers"]) == 4
    page = tmp_path / "export.html"
    upn = identity["unique_pupil_number"]
    assert run("audit", "subject-access", "--upn", upn, "--html", str(page)).exit_code == 0
    assert run("audit", "search", "--upn", upn).exit_code == 0

    found = run("audit", "search", "--action", "child_record_read", "--json")
    reads = json.loads(found.output)["records"]
    operator = {"name": "command line", "role": "admin", "authority": None, "token_id": None}
    assert [r["detail"] for r in reads] == [
        {"by": operator, "read": "subject_access", "transfers": 4},
        {"by": operator, "read": "subject_access", "transfers": 4},
        {"by": operator, "read": "audit_search", "transfers": 4},
    ]
    stored = json.dumps(
        [d for _, a, d in audit_actions(services.store) if a == "child_record_read"]
    )
    assert "child_keys" in stored
    for value in (identity["nhs_number"], upn, identity["family_name"]):
        assert value not in found.output and value not in stored

    by_upn = run("audit", "search", "--upn", upn, "--action", "child_record_read", "--json")
    assert [r["seq"] for r in json.loads(by_upn.output)["records"]] == [r["seq"] for r in reads[1:]]
    assert run("audit", "verify").exit_code == 0


def _said_in_one_line(result, *words: str) -> None:
    """A refusal a person reads: a one-line error, exit 1, no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.output.startswith("Error: ") and len(result.output.splitlines()) == 1
    for word in words:
        assert word in result.output, result.output


def test_a_page_or_checkpoint_written_where_no_folder_is_says_so(run, tmp_path):
    missing = tmp_path / "no-such-folder"

    page = run("audit", "subject-access", "--upn", "H801200001001", "--html", f"{missing}/a.html")
    _said_in_one_line(page, f"{missing}/a.html", "No such file or directory")
    kept_elsewhere = run("audit", "checkpoint", "--out", f"{missing}/head.jws")
    _said_in_one_line(kept_elsewhere, f"{missing}/head.jws", "No such file or directory")


def test_a_checkpoint_file_that_is_not_text_is_a_reason_not_a_traceback(run, tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": []}))
    garbled = tmp_path / "head.jws"
    garbled.write_bytes(b"\xff\xfe\x00garbled")

    _said_in_one_line(
        run("audit", "verify-checkpoint", str(garbled), "--jwks", str(jwks)), str(garbled)
    )
    _said_in_one_line(
        run("audit", "verify", "--no-checkpoint", "--checkpoint", str(garbled)), str(garbled)
    )


@pytest.mark.parametrize("not_a_jwks", [["a key"], {"keys": 5}, "keys"])
def test_a_jwks_file_that_is_not_a_jwks_is_a_reason_not_a_traceback(run, tmp_path, not_a_jwks):
    # Before, AttributeError or TypeError: the keys were only looked at as checkpoints were.
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(not_a_jwks))
    _said_in_one_line(run("audit", "verify", "--jwks", str(jwks)), str(jwks), "not a JWKS")


def test_retention_run_reports_what_it_purged(run):
    result = run("retention", "run")
    assert result.exit_code == 0, result.output
    assert "0 payloads purged." in result.output  # nothing delivered yet
    assert "0 dead letters removed (kept 30 days" in result.output


def test_retention_run_removes_the_dead_letters_kept_past_the_configured_period(run, services):
    services.store.add_dead_letter(b"{not json", "Not JSON: Expecting property name")
    age(services.store, b"{not json", 8)

    kept_longer = run("retention", "run", CAF_RELAY_DEAD_LETTER_RETENTION_DAYS="9")
    assert kept_longer.exit_code == 0, kept_longer.output
    assert "0 dead letters removed (kept 9 days" in kept_longer.output
    assert len(kept(services.store)) == 1

    result = run("retention", "run", CAF_RELAY_DEAD_LETTER_RETENTION_DAYS="8")
    assert result.exit_code == 0, result.output
    assert (
        "1 dead letters removed (kept 8 days, CAF_RELAY_DEAD_LETTER_RETENTION_DAYS)."
        in result.output
    )
    assert kept(services.store) == []
    [purge] = [d for _, a, d in audit_actions(services.store) if a == "dead_letters_purged"]
    assert purge["dead_letters"] == 1 and purge["retention_days"] == 8
