"""``caf-relay isp ...`` on the database under test, as an operator keeps the register."""

import json

import pytest

from service.access import Principal, Role
from service.store.isps import IspChange
from tests.conftest import fixed_clock
from tests.support import examples
from tests.support.cli import runner
from tests.support.isps import NEWHAM, TOWER_HAMLETS, YAML, bilateral
from tests.support.store_reads import audit_actions


@pytest.fixture
def run(services):
    """Runs a caf-relay command with the test services' settings, and ``stdin`` if given."""
    return runner(services)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "isp.yaml").write_text(YAML)
    (tmp_path / "amended.json").write_text(json.dumps(bilateral(version=2, title="Amended")))
    (tmp_path / "register.json").write_text(json.dumps([examples.pan_london_isp()]))
    return tmp_path


def test_an_isp_from_standard_input_is_read_as_json(run):
    added = run("isp", "add", "-", stdin=json.dumps(bilateral()))
    assert added.output == "Added ISP newham-tower-hamlets v1 (active).\n"


def test_the_operator_adds_amends_suspends_and_reads_an_isp(services, run, files):
    added = run("isp", "add", str(files / "isp.yaml"))
    assert added.exit_code == 0, added.output
    assert added.output == "Added ISP newham-tower-hamlets v1 (active).\n"
    assert run("isp", "amend", "newham-tower-hamlets", str(files / "amended.json")).exit_code == 0
    suspended = run("isp", "suspend", "newham-tower-hamlets", "--reason", "Under review.")
    assert suspended.output == "Suspended ISP newham-tower-hamlets v3 (suspended).\n"

    table = run("isp", "show", "newham-tower-hamlets").output.splitlines()
    assert table[0].split()[:3] == ["VERSION", "STATUS", "TITLE"]
    assert [line.split()[:2] for line in table[1:]] == [
        ["1", "active"],
        ["2", "active"],
        ["3", "suspended"],
    ]
    [listed] = json.loads(run("isp", "list", "--json").output)
    assert (listed["version"], listed["status"], listed["title"]) == (3, "suspended", "Amended")
    suspension = [d for _, a, d in audit_actions(services.store) if a == "isp_suspended"]
    assert suspension[0]["reason"] == "Under review." and suspension[0]["by"]["role"] == "admin"


def test_the_operator_confirms_the_signatures_a_partys_admin_recorded(services, run):
    newham_admin = Principal("Newham admin", Role.ADMIN, NEWHAM)
    services.store.isps.record(
        [IspChange(bilateral(), "isp_created")], now=fixed_clock(), by=newham_admin
    )
    table = run("isp", "show", "newham-tower-hamlets").output.splitlines()
    assert table[0].split()[-2:] == ["UNCONFIRMED", "RECORDED_AT"]
    assert table[1].split()[-2] == TOWER_HAMLETS, "the register shows who has yet to confirm"

    stranger = run("isp", "confirm", "newham-tower-hamlets", "1", "--party", "E09000007")
    assert stranger.exit_code == 1
    assert "records no signature for E09000007 that you may confirm" in stranger.output
    confirmed = run("isp", "confirm", "newham-tower-hamlets", "1", "--party", TOWER_HAMLETS)
    assert confirmed.output == "Confirmed the signatures on ISP newham-tower-hamlets v1 (active).\n"
    [audit] = [d for _, a, d in audit_actions(services.store) if a == "isp_confirmed"]
    assert audit["parties"] == [TOWER_HAMLETS] and audit["by"]["name"] == "command line"
    shown = json.loads(run("isp", "show", "newham-tower-hamlets", "--json").output)
    assert shown["current"]["unconfirmed"] == []

    missing = run("isp", "confirm", "newham-tower-hamlets", "2")
    assert missing.exit_code == 1
    assert "No version 2 of ISP 'newham-tower-hamlets' in the register." in missing.output

    run("isp", "amend", "newham-tower-hamlets", "-", stdin=json.dumps(bilateral(version=2)))
    services.store.isps.record(
        [IspChange(bilateral(version=3), "isp_amended")], now=fixed_clock(), by=newham_admin
    )
    everyone = run("isp", "confirm", "newham-tower-hamlets", "3")
    assert everyone.exit_code == 0, everyone.output
    shown = json.loads(run("isp", "show", "newham-tower-hamlets", "--json").output)
    assert shown["current"]["unconfirmed"] == [], "without --party: every signature"


def test_import_and_the_applicability_query(run, files):
    imported = run("isp", "import", str(files / "register.json"), "--json")
    assert imported.exit_code == 0, imported.output
    assert [(i["isp_id"], i["change"]) for i in json.loads(imported.output)] == [
        ("pan-london-caf", "created")
    ]
    (files / "unnamed").write_text(YAML)
    assert run("isp", "add", "--format", "yaml", str(files / "unnamed")).exit_code == 0

    args = ["--from", NEWHAM, "--to", TOWER_HAMLETS, "--purpose", "safeguarding"]
    answer = json.loads(run("isp", "applicable", *args, "--on", "2026-12-01", "--json").output)
    assert answer["basis"] == {"isp_id": "newham-tower-hamlets", "version": 1}
    table = run("isp", "applicable", *args, "--on", "2030-01-01").output.splitlines()
    assert table[0] == "No applicable ISP; a practitioner judgement is needed to share."
    assert [line.split()[:4] for line in table[2:]] == [
        ["newham-tower-hamlets", "1", "active", "expired"],
        ["pan-london-caf", "1", "active", "expired"],
    ]


def test_the_applicability_query_refuses_an_authority_the_register_does_not_hold(run):
    args = ["--from", NEWHAM, "--to", "E09000099", "--purpose", "safeguarding"]
    result = run("isp", "applicable", *args)
    assert result.exit_code == 1
    assert "Unknown authority: E09000099." in result.output


def test_errors_say_what_is_wrong_and_record_nothing(services, run, files):
    (files / "bad.yaml").write_text(YAML.replace("status: active", "status: signed"))
    bad = run("isp", "add", str(files / "bad.yaml"))
    assert bad.exit_code == 1
    assert '"status": ["Must be one of: draft, active, suspended, retired."]' in bad.output

    run("isp", "add", str(files / "isp.yaml"))
    taken = run("isp", "add", str(files / "isp.yaml"))
    assert taken.exit_code == 1 and "exists already" in taken.output
    assert "No ISP 'nothing-here'" in run("isp", "show", "nothing-here").output
    (files / "isp.txt").write_text(YAML)
    unnamed = run("isp", "add", str(files / "isp.txt"))
    assert unnamed.exit_code == 1 and "Not readable as json." in unnamed.output
    assert [
        v.document["version"] for v in services.store.isps.versions("newham-tower-hamlets")
    ] == [1]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        # A second list of categories, pasted below the first while editing, would silently
        # replace it: the agreement recorded would not be the one its parties read.
        ("isp.yaml", YAML + "data_categories: [child_identity, family_members]\n"),
        ("isp.json", json.dumps(bilateral())[:-1] + ', "purposes": ["continuity_of_early_help"]}'),
    ],
)
def test_an_isp_file_naming_a_field_twice_is_refused_not_read_as_the_last(
    services, run, tmp_path, name, content
):
    path = tmp_path / name
    path.write_text(content)

    for command in (["add"], ["import"]):
        result = run("isp", *command, str(path))
        assert result.exit_code == 1, result.output
        assert "Not readable as" in result.output and "given twice" in result.output
    assert services.store.isps.latest() == {}, "nothing recorded"
