"""Subject access: in a store holding many children, one child's export lists exactly that
child's transfers, with basis, parties, dates, categories and delivery, and nothing of others."""

import json
from html import escape

import pytest

from service.access import Principal, Role
from service.domain.child_keys import IdentifierError
from service.judgements import JudgementRefused
from service.senders import EMBEDDED
from service.subject_access import render_html
from tests.support import examples, judgements
from tests.support.children import child, transfer_of
from tests.support.tokens import reader

ISLINGTON, SOUTHWARK = "E09000019", "E09000028"
CHILDREN = 40
ASKED = 7  # the child whose export is asked for


@pytest.fixture
def many_children(services, tmp_path):
    """40 children sent under the ISP; the asked-for child also has an ad hoc transfer on a
    judgement, one parked for want of a basis, and one a practitioner decided not to share."""
    services.store.add_isp(examples.pan_london_isp())
    for code in (ISLINGTON, SOUTHWARK):
        services.store.organisations.set_adapter(
            code, "directory", {"path": str(tmp_path / code)}, {}
        )
    for n in range(CHILDREN):
        event = transfer_of(examples.ROUTINE_WITH_ISP, f"routine-{n}", child(n))
        services.relay.receive(examples.encode(event), sender=EMBEDDED)
    for template, event_id in [
        (examples.AD_HOC_WITH_JUDGEMENT, "adhoc"),
        (examples.ROUTINE_WITHOUT_BASIS, "parked"),
        (examples.JUDGEMENT_NOT_TO_SHARE, "withheld"),
    ]:
        for n in (ASKED, ASKED + 1):
            event = transfer_of(template, f"{event_id}-{n}", child(n))
            services.relay.receive(examples.encode(event), sender=EMBEDDED)
    services.deliverer.deliver_due("test")
    return services


def _export(services, n: int = ASKED, **params):
    return services.subject_access.export(
        params or {"nhs_number": child(n)["nhs_number"]}, reader()
    )


def test_the_export_lists_exactly_the_childs_transfers(many_children):
    export = _export(many_children)
    assert [t["event_id"] for t in export["transfers"]] == [
        f"routine-{ASKED}",
        f"adhoc-{ASKED}",
        f"parked-{ASKED}",
        f"withheld-{ASKED}",
    ]
    text = json.dumps(export)
    for n in range(CHILDREN):
        if n != ASKED:
            assert f'routine-{n}"' not in text and f'CAF-routine-{n}"' not in text
    assert f'-{ASKED + 1}"' not in text


def test_the_export_says_on_what_basis_to_whom_and_what_went(many_children):
    routine, adhoc, parked, withheld = _export(many_children)["transfers"]

    assert routine["basis"] == {"kind": "isp", "isp": {"id": "pan-london-caf", "version": 1}}
    assert (routine["from"]["name"], routine["to"]["name"]) == ("Hackney", "Islington")
    assert "family_and_environment" in routine["categories"]["withheld"]
    assert "child_identity" in routine["categories"]["shared"]
    assert routine["delivery"]["outcome"] == "delivered" and routine["delivery"]["delivered_at"]

    judgement = adhoc["basis"]["judgement"]
    assert adhoc["basis"]["kind"] == "judgement"
    assert judgement["practitioner"]["name"] == "Jo Reid"
    assert judgement["reasons"]["necessity"].startswith("The family has moved")
    assert adhoc["to"]["code"] == SOUTHWARK and adhoc["delivery"]["outcome"] == "delivered"
    assert set(adhoc["categories"]["shared"]) == {
        "child_identity",
        "child_contact",
        "plan",
        "lead_professional",
    }

    assert parked["basis"] == {"kind": "none"} and parked["categories"]["shared"] == []
    assert parked["delivery"]["outcome"].startswith("not sent: waiting")
    assert withheld["basis"]["judgement"]["decision"] == "not_share"
    assert withheld["delivery"]["outcome"] == "not sent: a practitioner decided not to share"
    assert "child_identity" in withheld["categories"]["withheld"]
    assert [h["action"] for h in routine["history"]][:2] == ["received", "basis_decided"]


def test_a_recipients_export_leaves_out_what_was_not_sent_to_it(many_children):
    def exported(authority: str) -> list[str]:
        params = {"nhs_number": child(ASKED)["nhs_number"]}
        export = many_children.subject_access.export(params, reader(authority))
        return [t["event_id"] for t in export["transfers"]]

    parked, withheld = (
        examples.load(examples.ROUTINE_WITHOUT_BASIS),
        examples.load(examples.JUDGEMENT_NOT_TO_SHARE),
    )
    assert exported(parked["data"]["from_authority"]) == [f"parked-{ASKED}"]
    assert exported(parked["data"]["to_authority"]) == []
    assert exported(withheld["data"]["from_authority"]) == [f"withheld-{ASKED}"]
    assert exported(withheld["data"]["to_authority"]) == []
    assert exported(SOUTHWARK) == [f"adhoc-{ASKED}"]


def test_a_senders_refused_attempt_at_a_judgement_is_in_its_export_not_its_recipients(
    many_children,
):
    parked = examples.load(examples.ROUTINE_WITHOUT_BASIS)["data"]
    sender, recipient = parked["from_authority"], parked["to_authority"]
    practitioner = Principal("Ada Newham", Role.PRACTITIONER, sender, "tok-newham")
    with pytest.raises(JudgementRefused):
        many_children.judgements.record(
            f"parked-{ASKED}", judgements.share(recipients=[SOUTHWARK]), by=practitioner
        )
    many_children.judgements.record(f"parked-{ASKED}", judgements.share(), by=practitioner)

    def history(authority: str | None) -> list[str]:
        params = {"nhs_number": child(ASKED)["nhs_number"]}
        export = many_children.subject_access.export(params, reader(authority))
        (judged,) = [t for t in export["transfers"] if t["event_id"] == f"parked-{ASKED}"]
        return [h["action"] for h in judged["history"]]

    assert history(sender)[3:5] == history(None)[3:5] == ["judgement_refused", "judgement_recorded"]
    assert "judgement_refused" not in history(recipient)
    assert "judgement_recorded" in history(recipient)


def test_the_child_can_be_named_by_upn_as_well_as_nhs_number(many_children):
    identity = child(ASKED)
    by_nhs = _export(many_children)["transfers"]
    by_upn = _export(many_children, unique_pupil_number=identity["unique_pupil_number"])
    assert by_upn["transfers"] == by_nhs


def test_a_name_and_birth_date_is_not_enough_for_an_export(many_children):
    identity = child(ASKED)
    with pytest.raises(IdentifierError, match="can match more than one child"):
        many_children.subject_access.export(
            {
                "given_name": identity["given_name"],
                "family_name": identity["family_name"],
                "date_of_birth": identity["date_of_birth"],
            },
            reader(),
        )


def test_a_child_the_relay_never_saw_has_an_empty_export(many_children):
    assert _export(many_children, nhs_number="1111111111")["transfers"] == []


def test_an_export_must_name_a_child(many_children):
    with pytest.raises(IdentifierError, match="Name the child"):
        many_children.subject_access.export({}, reader())


def test_the_printable_page_shows_the_transfers_and_escapes_what_it_quotes(many_children):
    export = _export(many_children)
    export["transfers"][1]["basis"]["judgement"]["reasons"]["necessity"] = "<script>x</script>"
    page = render_html(export)
    assert page.count("<section>") == 4
    assert "Hackney to Islington" in page and "pan-london-caf, version 1" in page
    assert "Jo Reid" in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<script>" not in page
    assert child(ASKED + 1)["nhs_number"] not in page


def test_the_senders_export_holds_a_judgement_set_aside_and_its_recipients_does_not(services):
    """A judgement sent with the event that gave no basis (basis rule 6) is kept with the
    transfer, reasons and all, after a colleague's judgement too: as with one a late delivery
    overtook, the sender's and the operator's exports show it, the recipient's does not."""
    event = examples.event(examples.ROUTINE_WITHOUT_BASIS)
    set_aside = judgements.share(recipients=[SOUTHWARK])
    set_aside["reasons"]["necessity"] = "Needed by the Southwark team, who asked first."
    event["data"]["sharing"]["judgement"] = set_aside
    assert services.relay.receive(examples.encode(event), sender=EMBEDDED).state == (
        "awaiting_judgement"
    )
    sender, recipient = event["data"]["from_authority"], event["data"]["to_authority"]
    practitioner = Principal("Ada Newham", Role.PRACTITIONER, sender, "tok-newham")
    services.judgements.record(event["id"], judgements.share(), by=practitioner)
    nhs_number = event["data"]["case"]["child_identity"]["nhs_number"]

    def exported(authority: str | None) -> dict:
        return services.subject_access.export({"nhs_number": nhs_number}, reader(authority))

    necessity = set_aside["reasons"]["necessity"]
    for authority in (None, sender):
        (transfer,) = exported(authority)["transfers"]
        assert transfer["basis"]["kind"] == "judgement"
        assert transfer["basis"]["set_aside_judgement"] == set_aside, "as it came"
        page = render_html(exported(authority))
        assert "was set aside" in page and escape(necessity) in page
    (seen,) = exported(recipient)["transfers"]
    assert "set_aside_judgement" not in seen["basis"]
    assert necessity not in json.dumps(seen) and escape(necessity) not in render_html(
        exported(recipient)
    )
