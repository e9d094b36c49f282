"""What a publisher notices of the contracts: each refusal names the field and the reason."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from marshmallow import ValidationError

from contracts.case import CafCaseSchema
from contracts.common import OUT_OF_UTC_RANGE
from contracts.event import CaseTransferEventSchema, ForwardedCaseTransferEventSchema
from contracts.isp import IspSchema
from contracts.judgement import JudgementSchema
from contracts.vocabulary import DATA_CATEGORIES, SPECIAL_CATEGORIES
from tests.support import examples

REQUIRED = "Missing data for required field."


def refused(document: dict[str, Any], schema=None) -> dict[str, Any]:
    """The error messages for ``document``, which must be refused."""
    with pytest.raises(ValidationError) as caught:
        (schema or CaseTransferEventSchema()).load(document)
    return caught.value.messages


def routine() -> dict[str, Any]:
    return examples.event(examples.ROUTINE_WITH_ISP)


def ad_hoc() -> dict[str, Any]:
    return examples.event(examples.AD_HOC_WITH_JUDGEMENT)


def judgement(document: dict[str, Any]) -> dict[str, Any]:
    return document["data"]["sharing"]["judgement"]


# --- unknown and missing fields ------------------------------------------------------------------


def test_an_unknown_top_level_field_is_refused_by_name():
    document = routine()
    document["priority"] = "high"
    assert refused(document) == {"priority": ["Unknown field."]}


def test_an_unknown_field_deep_in_the_case_is_refused_with_its_path():
    document = routine()
    document["data"]["case"]["child_identity"]["ethnicity"] = "not recorded"
    assert refused(document) == {
        "data": {"case": {"child_identity": {"ethnicity": ["Unknown field."]}}}
    }


def test_missing_required_fields_are_each_named():
    document = routine()
    del document["id"], document["time"], document["data"]["sharing"]["purpose"]
    assert refused(document) == {
        "id": [REQUIRED],
        "time": [REQUIRED],
        "data": {"sharing": {"purpose": [REQUIRED]}},
    }


def test_a_request_must_name_the_child_but_a_forwarded_event_need_not():
    document = routine()
    del document["data"]["case"]["child_identity"]
    assert refused(document) == {
        "data": {"case": {"child_identity": ["A transfer names the child."]}}
    }
    ForwardedCaseTransferEventSchema().load(document)


# --- envelope attributes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("type", "caf.case-transfer.completed"),
        ("specversion", "0.3"),
        ("dataschema", "urn:caf-relay:schema:case-transfer-requested:2"),
        ("datacontenttype", "application/xml"),
    ],
)
def test_the_event_must_be_the_version_of_the_flow_we_publish(attribute, value):
    assert set(refused(routine() | {attribute: value})) == {attribute}


@pytest.mark.parametrize("written", ["2026-11-20 10:15:00Z", "2026-11-20T10Z", "20261120T101500Z"])
def test_time_is_written_as_rfc_3339_not_any_form_python_reads(written):
    assert refused(routine() | {"time": written}) == {"time": ["Not a valid datetime."]}


@pytest.mark.parametrize("written", ["2026-11-20T10:15:00Z", "2026-11-20T10:15:00.123+01:00"])
def test_time_in_rfc_3339_with_its_offset_is_taken(written):
    CaseTransferEventSchema().load(routine() | {"time": written})


@pytest.mark.parametrize("written", ["20150301", "2015-W09-7", "2015-03-01T00:00:00"])
def test_a_date_is_written_yyyy_mm_dd(written):
    event = routine()
    event["data"]["case"]["child_identity"]["date_of_birth"] = written
    errors = refused(event)
    assert errors["data"]["case"]["child_identity"]["date_of_birth"] == ["Not a valid date."]


def test_time_must_carry_its_timezone():
    assert refused(routine() | {"time": "2026-11-20T10:15:00"}) == {
        "time": ["Not a valid aware datetime."]
    }


# Year 1 ahead of UTC is year 0 in UTC, year 9999 behind it year 10000: neither exists.
NO_TIME_IN_UTC = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"]
LAST_TIMES_IN_UTC = [
    "0001-01-01T00:00:00-01:00",
    "9999-12-31T23:30:00+01:00",
    "0001-01-01T00:00:00Z",
]


@pytest.mark.parametrize("written", NO_TIME_IN_UTC)
def test_time_must_have_a_time_in_utc(written):
    assert refused(routine() | {"time": written}) == {"time": [OUT_OF_UTC_RANGE]}


@pytest.mark.parametrize("written", NO_TIME_IN_UTC)
def test_a_judgement_must_be_decided_at_a_time_in_utc(written):
    event = ad_hoc()
    judgement(event)["decided_at"] = written
    assert refused(event) == {
        "data": {"sharing": {"judgement": {"decided_at": [OUT_OF_UTC_RANGE]}}}
    }
    assert refused(judgement(event), JudgementSchema()) == {"decided_at": [OUT_OF_UTC_RANGE]}


@pytest.mark.parametrize("written", LAST_TIMES_IN_UTC)
def test_a_time_at_the_ends_of_the_calendar_with_a_time_in_utc_is_taken(written):
    CaseTransferEventSchema().load(routine() | {"time": written})


# --- authorities ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["hackney", "E09-000012", "E0", "e09000012", " E09000012", "E09000012\n", ""]
)
def test_an_authority_must_be_an_organisation_code(code):
    document = routine()
    document["data"]["from_authority"] = code
    assert list(refused(document)["data"]) == ["from_authority"]


def test_a_transfer_is_between_two_authorities():
    document = routine()
    document["data"]["to_authority"] = document["data"]["from_authority"]
    assert refused(document) == {
        "data": {"to_authority": ["to_authority must differ from from_authority."]}
    }


# --- sizes ---------------------------------------------------------------------------------------


def _set(document: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


LIMITS = [
    # (path, a value at the limit, one past it)
    (("id",), "i" * 128, "i" * 129),
    (("subject",), "s" * 200, "s" * 201),
    (("data", "case", "child_identity", "given_name"), "g" * 200, "g" * 201),
    (("data", "case", "development_of_child", "health"), "h" * 8000, "h" * 8001),
    (("data", "case", "child_contact", "address", "lines"), ["l"] * 6, ["l"] * 7),
    (
        ("data", "case", "plan", "actions"),
        [{"action": "a", "by_whom": "b"}] * 50,
        [{"action": "a", "by_whom": "b"}] * 51,
    ),
]


@pytest.mark.parametrize(("path", "at_limit", "past_limit"), LIMITS, ids=lambda v: str(v)[:40])
def test_sizes_are_bounded_at_the_stated_limit(path, at_limit, past_limit):
    document = routine()
    _set(document, path, at_limit)
    CaseTransferEventSchema().load(document)
    _set(document, path, past_limit)
    errors: Any = refused(document)
    for key in path:
        errors = errors[key]
    assert errors


def test_empty_text_is_refused():
    assert refused(routine() | {"subject": ""}) == {
        "subject": ["Length must be between 1 and 200.", "Must not be blank."]
    }


def test_text_of_spaces_only_is_refused():
    document = routine()
    document["data"]["case"]["child_identity"]["given_name"] = "   "
    assert refused(document) == {
        "data": {"case": {"child_identity": {"given_name": ["Must not be blank."]}}}
    }


# --- types are JSON types, not look-alikes -------------------------------------------------------


@pytest.mark.parametrize("value", ["yes", "true", 1, 0])
def test_a_flag_must_be_a_json_boolean(value):
    document = routine()
    document["data"]["case"]["family_members"][0]["lives_with_child"] = value
    assert refused(document) == {
        "data": {"case": {"family_members": {0: {"lives_with_child": ["Not a valid boolean."]}}}}
    }


@pytest.mark.parametrize(
    ("value", "ok"), [(88, True), (88.5, True), ("88.5", False), (True, False)]
)
def test_attendance_must_be_a_json_number(value, ok):
    document = routine()
    document["data"]["case"]["education"]["attendance_percent"] = value
    if ok:
        CaseTransferEventSchema().load(document)
    else:
        assert "attendance_percent" in refused(document)["data"]["case"]["education"]


# --- the data-category vocabulary ----------------------------------------------------------------


def test_every_case_section_is_a_data_category_and_every_category_a_section():
    assert list(CafCaseSchema().fields) == list(DATA_CATEGORIES)
    assert SPECIAL_CATEGORIES.issubset(DATA_CATEGORIES)


def test_a_case_section_outside_the_vocabulary_is_refused():
    document = routine()
    document["data"]["case"]["health_records"] = {"gp": "x"}
    assert refused(document) == {"data": {"case": {"health_records": ["Unknown field."]}}}


def test_a_judgement_may_name_only_categories_in_the_vocabulary():
    document = ad_hoc()
    judgement(document)["data_categories"] = ["child_identity", "health_records"]
    errors = refused(document)["data"]["sharing"]["judgement"]["data_categories"]
    assert list(errors) == [1]
    assert "Must be one of" in errors[1][0]


def test_a_judgement_may_not_repeat_a_category():
    document = ad_hoc()
    judgement(document)["data_categories"].append("plan")
    assert refused(document)["data"]["sharing"]["judgement"] == {
        "data_categories": ["Items must not repeat."]
    }


# --- judgements ---------------------------------------------------------------------------------


def test_sharing_special_category_data_needs_article_9_and_schedule_1():
    document = ad_hoc()
    judgement(document)["data_categories"].append("development_of_child")
    errors = refused(document)["data"]["sharing"]["judgement"]
    assert "development_of_child" in errors["lawful_basis"][0]

    judgement(document)["lawful_basis"] |= {
        "article_9": "9(2)(h)",
        "dpa_2018_schedule_1_condition": "Part 1, paragraph 2",
    }
    CaseTransferEventSchema().load(document)


def test_article_9_and_schedule_1_come_together():
    document = ad_hoc()
    judgement(document)["lawful_basis"]["article_9"] = "9(2)(h)"
    assert refused(document)["data"]["sharing"]["judgement"] == {
        "lawful_basis": {
            "_schema": [
                "article_9 and dpa_2018_schedule_1_condition are given together or not at all."
            ]
        }
    }


def test_consent_not_obtained_must_be_explained():
    document = ad_hoc()
    del judgement(document)["consent"]["explanation"]
    assert refused(document)["data"]["sharing"]["judgement"] == {
        "consent": {"explanation": ["explanation is required unless consent was obtained."]}
    }
    judgement(document)["consent"]["status"] = "obtained"
    CaseTransferEventSchema().load(document)


def test_a_decision_to_share_names_a_category_but_one_not_to_share_need_not():
    document = ad_hoc()
    judgement(document)["data_categories"] = []
    assert refused(document)["data"]["sharing"]["judgement"] == {
        "data_categories": ["A decision to share names at least one data category."]
    }
    judgement(document)["decision"] = "not_share"
    CaseTransferEventSchema().load(document)


@pytest.mark.parametrize(
    ("field", "value"),
    [("decision", "maybe"), ("purpose", "research"), ("recipients", [])],
)
def test_a_judgement_uses_the_fixed_terms(field, value):
    document = ad_hoc()
    judgement(document)[field] = value
    assert list(refused(document)["data"]["sharing"]["judgement"]) == [field]


# --- ISPs ----------------------------------------------------------------------------------------


def isp(**changes: Any) -> dict[str, Any]:
    return copy.deepcopy(examples.pan_london_isp()) | changes


def test_an_isp_is_between_two_or_more_parties_unless_it_names_a_group():
    assert refused(isp(parties=["E09000012"]), IspSchema()) == {
        "parties": ["An ISP is an agreement between two or more parties."]
    }
    IspSchema().load(isp(parties=["E09000012", "E09000019"]))


def test_an_isp_party_is_a_code_or_a_known_group():
    errors = refused(isp(parties=["group:everyone", "E09000019"]), IspSchema())
    assert list(errors["parties"]) == [0]


def test_a_signatory_signs_for_a_code_or_a_known_group():
    signatory = {
        "party": "Hackney",
        "name": "A. Director",
        "role": "DCS",
        "signed_on": "2026-03-01",
    }
    errors = refused(isp(signatories=[signatory]), IspSchema())
    assert list(errors["signatories"][0]) == ["party"]


def test_a_signatory_signs_for_a_party_to_the_isp():
    def signatory(party: str) -> dict[str, str]:
        return {"party": party, "name": "A. Director", "role": "DCS", "signed_on": "2026-03-01"}

    bilateral = {"parties": ["E09000012", "E09000019"]}
    # A mistyped code (E0900019 for Islington) signed for no party: the ISP would never apply.
    errors = refused(
        isp(**bilateral, signatories=[signatory("E09000012"), signatory("E0900019")]),
        IspSchema(),
    )
    assert errors == {"signatories": {1: {"party": ["E0900019 is not a party to this ISP."]}}}
    # A group signs for its members that are parties; a member signs for a group it is in.
    IspSchema().load(isp(**bilateral, signatories=[signatory("group:london-authorities")]))
    IspSchema().load(isp(signatories=[signatory("E09000012"), signatory("E09000019")]))


def test_an_isp_cannot_expire_before_it_starts():
    assert refused(isp(expires_on="2026-03-31"), IspSchema()) == {
        "expires_on": ["expires_on is before effective_from."]
    }


@pytest.mark.parametrize("version", ["1", 1.0, True, 0])
def test_an_isp_version_is_a_positive_json_integer(version):
    assert list(refused(isp(version=version), IspSchema())) == ["version"]
