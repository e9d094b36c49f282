"""The published JSON Schema and AsyncAPI files say what the marshmallow schemas enforce.

A case system may validate against ``contracts/published`` instead of running our code, so the
files must be in step with the schemas, and the two must agree on what they accept and refuse.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator
from marshmallow import Schema, ValidationError, fields, validates_schema

from contracts import export
from contracts.common import UTC_RANGE_RULE
from contracts.envelope import EnvelopeSchema
from contracts.event import CaseTransferEventSchema, RequestedCaseTransferDataSchema
from contracts.isp import IspSchema
from contracts.judgement import JudgementSchema
from contracts.reference import LONDON_AUTHORITIES
from contracts.vocabulary import EVENT_DATASCHEMA, EVENT_TYPE
from service import worker
from service.amqp_headers import EXPIRATION_HEADER, LEFT_OUT_HEADER, USER_ID_HEADER
from service.domain.basis import decide_basis
from service.domain.envelope import Organisation, build_envelope
from service.domain.minimise import minimise
from service.domain.model import transfer_request
from service.relay import Rejection
from tests.support import examples
from tests.support.isps import confirmed_terms

PUBLISHED = export.PUBLISHED
FORMATS = Draft202012Validator.FORMAT_CHECKER


def published(name: str) -> dict[str, Any]:
    return json.loads((PUBLISHED / name).read_text(encoding="utf-8"))


def json_errors(schema_file: str, document: Any) -> list[str]:
    validator = Draft202012Validator(published(schema_file), format_checker=FORMATS)
    return [error.message for error in validator.iter_errors(document)]


def marshmallow_errors(schema: Schema, document: Any) -> dict | list | None:
    try:
        schema.load(document)
    except ValidationError as exc:
        return exc.messages
    return None


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in refs(item)]
    return []


def resolve_pointer(document: dict[str, Any], ref: str) -> Any:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# --- in step ------------------------------------------------------------------------------------


def test_published_files_are_in_step_with_the_schemas():
    assert export.differences() == [], "run `python -m contracts.export`"


def test_the_check_names_each_stale_missing_and_extra_file(tmp_path, monkeypatch):
    export.write(tmp_path)
    assert export.differences(tmp_path) == []
    (tmp_path / "isp.schema.json").write_text("{}\n")
    (tmp_path / "asyncapi.json").unlink()
    (tmp_path / "old.schema.json").write_text("{}\n")

    assert export.differences(tmp_path) == [
        "missing: asyncapi.json",
        "stale: isp.schema.json",
        "not generated: old.schema.json",
    ]
    monkeypatch.setattr(export, "PUBLISHED", tmp_path)
    result = CliRunner().invoke(export.main, ["--check"])
    assert result.exit_code == 1
    assert "stale: isp.schema.json" in result.output
    assert "missing: asyncapi.json" in result.output

    assert CliRunner().invoke(export.main, []).exit_code == 0
    assert CliRunner().invoke(export.main, ["--check"]).exit_code == 0
    assert not (tmp_path / "old.schema.json").exists()


def test_output_is_deterministic_sorted_and_ends_with_a_newline():
    first, second = export.render(), export.render()
    assert first == second
    for name, text in first.items():
        assert text.endswith("}\n"), name
        canonical = json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False)
        assert text == canonical + "\n", name


def test_a_schema_rule_without_a_published_form_stops_the_export():
    class Unpublished(Schema):
        @validates_schema
        def secret_rule(self, data, **kwargs):
            pass

    with pytest.raises(LookupError, match="Unpublished.secret_rule"):
        export._rules_for(Unpublished)


def test_a_function_validator_without_a_published_form_stops_the_export():
    def secret_check(value):
        pass

    class Unpublished(Schema):
        code = fields.String(validate=secret_check)

    with pytest.raises(LookupError, match="secret_check"):
        export._components(Unpublished)


@pytest.mark.parametrize("contract", export.CONTRACTS, ids=lambda c: c.name)
def test_each_schema_file_is_self_contained_json_schema_2020_12(contract):
    document = published(contract.file_name)
    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"] == f"urn:caf-relay:schema:{contract.name}:1"
    for ref in refs(document):
        assert ref == "#" or ref.startswith("#/$defs/"), ref
        resolve_pointer(document, ref)


def test_the_event_data_schema_is_published_under_the_events_dataschema():
    assert published("case-transfer-requested.schema.json")["$id"] == EVENT_DATASCHEMA
    event = published("case-transfer-event.schema.json")
    assert event["properties"]["dataschema"]["enum"] == [EVENT_DATASCHEMA]
    assert event["properties"]["type"]["enum"] == [EVENT_TYPE]


def test_validators_reach_the_published_schema():
    event = published("case-transfer-event.schema.json")
    defs = event["$defs"]
    assert event["additionalProperties"] is False
    assert all(d.get("additionalProperties") is False for d in defs.values() if "properties" in d)
    assert event["properties"]["subject"]["maxLength"] == 200
    assert defs["CafCase"]["properties"]["family_members"]["maxItems"] == 50
    assert defs["ChildIdentity"]["properties"]["nhs_number"]["pattern"] == r"^[0-9]{10}$"
    categories = defs["Judgement"]["properties"]["data_categories"]
    assert categories["uniqueItems"] is True
    assert len(categories["items"]["enum"]) == 9
    parties = published("isp.schema.json")["properties"]["parties"]["items"]
    assert {"enum": ["group:london-authorities"]} in parties["anyOf"]


def test_rules_json_schema_cannot_express_are_described():
    data = published("case-transfer-requested.schema.json")
    assert "to_authority differs from from_authority" in data["description"]
    assert "expires_on" in published("isp.schema.json")["description"]


def _date_times(node: Any) -> list[dict[str, Any]]:
    """Every property of a published schema that is a date-time, however deep."""
    if isinstance(node, list):
        return [found for item in node for found in _date_times(item)]
    if not isinstance(node, dict):
        return []
    here = [node] if node.get("format") == "date-time" else []
    return here + [found for value in node.values() for found in _date_times(value)]


@pytest.mark.parametrize("name", ["case-transfer-event.schema.json", "judgement.schema.json"])
def test_each_date_time_a_sender_writes_says_it_needs_a_time_in_utc(name):
    date_times = _date_times(published(name))
    assert date_times
    assert all(UTC_RANGE_RULE in d.get("description", "") for d in date_times)


# --- examples and mutations: the published schema and marshmallow agree -------------------------

EVENT = ("case-transfer-event.schema.json", CaseTransferEventSchema)
ISP = ("isp.schema.json", IspSchema)
ENVELOPE = ("envelope.schema.json", EnvelopeSchema)


def contract_of(example: str) -> tuple[str, type[Schema]]:
    if example.startswith("event-"):
        return EVENT
    if example.startswith("isp-"):
        return ISP
    if example.startswith("envelope-"):
        return ENVELOPE
    raise AssertionError(f"No contract for example {example}; say which one it follows.")


@pytest.mark.parametrize("name", sorted(p.name for p in examples.EXAMPLES.glob("*.json")))
def test_every_example_is_valid_for_both(name):
    schema_file, schema = contract_of(name)
    document = examples.load(name)
    assert json_errors(schema_file, document) == []
    assert marshmallow_errors(schema(), document) is None


@pytest.mark.parametrize("name", examples.ALL_EVENTS)
def test_event_data_and_judgements_are_valid_against_their_own_files(name):
    data = examples.load(name)["data"]
    assert json_errors("case-transfer-requested.schema.json", data) == []
    assert marshmallow_errors(RequestedCaseTransferDataSchema(), data) is None
    judgement = data["sharing"].get("judgement")
    if judgement is not None:
        assert json_errors("judgement.schema.json", judgement) == []
        assert marshmallow_errors(JudgementSchema(), judgement) is None


def judgement_of(doc):
    return doc["data"]["sharing"]["judgement"]


def case_of(doc):
    return doc["data"]["case"]


Mutation = Callable[[dict[str, Any]], None]
EVENT_MUTATIONS: dict[str, tuple[str, Mutation]] = {
    "unknown top-level field": (
        examples.ROUTINE_WITH_ISP,
        lambda d: d.update(priority="high"),
    ),
    "unknown field inside data": (
        examples.ROUTINE_WITH_ISP,
        lambda d: d["data"].update(urgent=True),
    ),
    "unknown field in a case section": (
        examples.ROUTINE_WITH_ISP,
        lambda d: case_of(d)["child_identity"].update(ethnicity="not recorded"),
    ),
    "over-long subject": (
        examples.ROUTINE_WITH_ISP,
        lambda d: d.update(subject="C" * 201),
    ),
    "over-long assessment text": (
        examples.ROUTINE_WITH_ISP,
        lambda d: case_of(d)["development_of_child"].update(health="x" * 8001),
    ),
    "too many family members": (
        examples.ROUTINE_WITH_ISP,
        lambda d: case_of(d).update(family_members=case_of(d)["family_members"][:1] * 51),
    ),
    "wrong event type": (
        examples.ROUTINE_WITH_ISP,
        lambda d: d.update(type="caf.case-transfer.completed"),
    ),
    "authority code not a code": (
        examples.ROUTINE_WITH_ISP,
        lambda d: d["data"].update(from_authority="hackney"),
    ),
    "no child identity": (
        examples.ROUTINE_WITH_ISP,
        lambda d: case_of(d).pop("child_identity"),
    ),
    "a name of a byte-order mark, blank to a reader": (
        examples.ROUTINE_WITH_ISP,
        lambda d: case_of(d)["child_identity"].update(given_name="\ufeff"),
    ),
    "an NHS number in Arabic-Indic digits": (
        examples.ROUTINE_WITH_ISP,
        lambda d: case_of(d)["child_identity"].update(nhs_number="١٢٣٤٥٦٧٨٩٠"),
    ),
    "boolean given as text": (
        examples.ROUTINE_WITH_ISP,
        lambda d: case_of(d)["family_members"][0].update(lives_with_child="yes"),
    ),
    "number given as text": (
        examples.ROUTINE_WITH_ISP,
        lambda d: case_of(d)["education"].update(attendance_percent="88.5"),
    ),
    "data category outside the vocabulary": (
        examples.AD_HOC_WITH_JUDGEMENT,
        lambda d: judgement_of(d)["data_categories"].append("health_records"),
    ),
    "data category repeated": (
        examples.AD_HOC_WITH_JUDGEMENT,
        lambda d: judgement_of(d)["data_categories"].append("plan"),
    ),
    "decision to share with no categories": (
        examples.AD_HOC_WITH_JUDGEMENT,
        lambda d: judgement_of(d).update(data_categories=[]),
    ),
    "special category shared without article 9": (
        examples.AD_HOC_WITH_JUDGEMENT,
        lambda d: judgement_of(d)["data_categories"].append("development_of_child"),
    ),
    "article 9 without its schedule 1 condition": (
        examples.AD_HOC_WITH_JUDGEMENT,
        lambda d: judgement_of(d)["lawful_basis"].update(article_9="9(2)(h)"),
    ),
    "consent not sought and not explained": (
        examples.AD_HOC_WITH_JUDGEMENT,
        lambda d: judgement_of(d)["consent"].pop("explanation"),
    ),
    "shared on consent not sought": (
        examples.AD_HOC_WITH_JUDGEMENT,
        lambda d: judgement_of(d)["lawful_basis"].update(article_6="6(1)(a)"),
    ),
    # RFC 3339's offset minute runs to 59: Python reads "+01:60" as two hours.
    "event time with an offset of 60 minutes": (
        examples.ROUTINE_WITH_ISP,
        lambda d: d.update(time="2026-11-20T10:15:00+01:60"),
    ),
    "judgement dated with an offset of 99 minutes": (
        examples.AD_HOC_WITH_JUDGEMENT,
        lambda d: judgement_of(d).update(decided_at="2026-11-20T09:40:00+00:99"),
    ),
    "shared although the refusal of consent is said to be respected": (
        examples.AD_HOC_WITH_JUDGEMENT,
        lambda d: judgement_of(d).update(consent={"status": "refused", "explanation": "Refused."}),
    ),
    "special category shared on explicit consent not sought": (
        examples.AD_HOC_WITH_JUDGEMENT,
        lambda d: judgement_of(d)["lawful_basis"].update(
            article_9="9(2)(a)", dpa_2018_schedule_1_condition="Schedule 1 Part 2 para 18"
        ),
    ),
}


@pytest.mark.parametrize("what", EVENT_MUTATIONS)
def test_a_mutated_event_is_refused_by_both(what):
    name, mutate = EVENT_MUTATIONS[what]
    document = copy.deepcopy(examples.load(name))
    mutate(document)
    assert json_errors(EVENT[0], document), "the published schema accepted it"
    assert marshmallow_errors(CaseTransferEventSchema(), document), "marshmallow accepted it"


def test_date_times_with_a_lowercase_z_as_rfc_3339_allows_are_valid_for_both():
    document = copy.deepcopy(examples.load(examples.AD_HOC_WITH_JUDGEMENT))
    document["time"] = "2026-11-20T10:15:00z"
    judgement_of(document)["decided_at"] = "2026-11-20T09:40:00.5z"
    assert json_errors(EVENT[0], document) == []
    assert marshmallow_errors(CaseTransferEventSchema(), document) is None


def test_a_share_resting_on_consent_obtained_is_valid_for_both():
    document = copy.deepcopy(examples.load(examples.AD_HOC_WITH_JUDGEMENT))
    judgement_of(document)["lawful_basis"].update(article_6="6(1)(a)")
    judgement_of(document)["consent"] = {"status": "obtained"}
    assert json_errors(EVENT[0], document) == []
    assert marshmallow_errors(CaseTransferEventSchema(), document) is None


ISP_MUTATIONS: dict[str, Mutation] = {
    "unknown field": lambda d: d.update(owner="ALDCS"),
    "party neither a code nor a group": lambda d: d.update(
        parties=["Hackney Council", "E09000019"]
    ),
    "a single party that is not a group": lambda d: d.update(parties=["E09000012"]),
    "special category without article 9": lambda d: d.update(lawful_basis={"article_6": "6(1)(e)"}),
    "version as text": lambda d: d.update(version="1"),
    "over-long title": lambda d: d.update(title="T" * 201),
    "status outside the vocabulary": lambda d: d.update(status="live"),
}


@pytest.mark.parametrize("what", ISP_MUTATIONS)
def test_a_mutated_isp_is_refused_by_both(what):
    document = examples.pan_london_isp()
    ISP_MUTATIONS[what](document)
    assert json_errors("isp.schema.json", document), "the published schema accepted it"
    assert marshmallow_errors(IspSchema(), document), "marshmallow accepted it"


def test_the_one_event_rule_json_schema_cannot_state_is_still_enforced():
    document = examples.event(examples.ROUTINE_WITH_ISP)
    document["data"]["to_authority"] = document["data"]["from_authority"]
    assert json_errors("case-transfer-event.schema.json", document) == []
    assert "to_authority" in marshmallow_errors(CaseTransferEventSchema(), document)["data"]


# --- what caf-relay emits ----------------------------------------------------------------------


def built_envelope(name: str) -> dict[str, Any]:
    """The envelope the relay's domain code builds for a sharing example."""
    event = examples.load(name)
    data = event["data"]
    decision = decide_basis(
        transfer_request(event), [confirmed_terms(examples.pan_london_isp())], date(2026, 11, 20)
    )
    assert decision.shares
    return build_envelope(
        envelope_id="0b7d7e4e-6a57-4a37-9d55-4f0a3c3c2f10",
        issued_at=datetime(2026, 11, 20, 10, 16, tzinfo=UTC),
        event=event,
        decision=decision,
        minimised=minimise(data["case"], decision.permitted_categories),
        sender=Organisation(data["from_authority"], LONDON_AUTHORITIES[data["from_authority"]]),
        recipient=Organisation(data["to_authority"], LONDON_AUTHORITIES[data["to_authority"]]),
    )


def test_the_example_envelope_is_the_one_the_relay_builds_for_the_routine_example():
    """The published example of what a receiving authority gets (DESIGN: an example of each
    contract) is the relay's own output, so it cannot drift from what is really sent."""
    assert examples.load(examples.ENVELOPE_ROUTINE_WITH_ISP) == built_envelope(
        examples.ROUTINE_WITH_ISP
    )


@pytest.mark.parametrize("name", [examples.ROUTINE_WITH_ISP, examples.AD_HOC_WITH_JUDGEMENT])
def test_the_envelope_the_relay_builds_matches_the_published_envelope_schema(name):
    payload = built_envelope(name)
    assert json_errors("envelope.schema.json", payload) == []
    assert marshmallow_errors(EnvelopeSchema(), payload) is None
    payload["data_categories"]["shared"].append("health_records")
    assert json_errors("envelope.schema.json", payload)
    assert marshmallow_errors(EnvelopeSchema(), payload)


@pytest.mark.parametrize(
    ("name", "change"),
    [
        (examples.ROUTINE_WITH_ISP, lambda basis: basis.pop("isp")),
        (examples.ROUTINE_WITH_ISP, lambda basis: basis.update(kind="judgement")),
        (examples.AD_HOC_WITH_JUDGEMENT, lambda basis: basis.update(kind="isp")),
        (
            examples.AD_HOC_WITH_JUDGEMENT,
            lambda basis: basis.update(
                isp=built_envelope(examples.ROUTINE_WITH_ISP)["basis"]["isp"]
            ),
        ),
    ],
    ids=["isp-without-reference", "isp-called-judgement", "judgement-called-isp", "both-records"],
)
def test_an_envelope_basis_must_carry_exactly_the_record_its_kind_names(name, change):
    payload = built_envelope(name)
    change(payload["basis"])
    assert json_errors("envelope.schema.json", payload)
    assert "basis" in marshmallow_errors(EnvelopeSchema(), payload)


# --- AsyncAPI ------------------------------------------------------------------------------------


def topic_matches(binding_key: str, routing_key: str) -> bool:
    pattern = re.escape(binding_key).replace(r"\#", ".*").replace(r"\*", r"[^.]+")
    return re.fullmatch(pattern, routing_key) is not None


def test_asyncapi_parses_and_its_internal_references_resolve():
    document = published("asyncapi.json")
    assert document["asyncapi"].startswith("3.")
    assert document["servers"]["rabbitmq"]["protocol"] == "amqp"
    for ref in refs(document):
        if ref.startswith("#"):
            resolve_pointer(document, ref)


def test_asyncapi_event_message_references_the_published_event_schema():
    document = published("asyncapi.json")
    message = document["components"]["messages"]["caseTransferEvent"]
    assert message["contentType"] == "application/cloudevents+json"
    target = PUBLISHED / message["payload"]["schema"]["$ref"]
    assert target.is_file()
    assert published(target.name)["$id"] == "urn:caf-relay:schema:case-transfer-event:1"
    assert "2020-12" in message["payload"]["schemaFormat"]


def test_asyncapi_describes_the_topology_the_worker_declares():
    channel = published("asyncapi.json")["channels"]["caseTransferRequested"]
    exchange = channel["bindings"]["amqp"]["exchange"]
    assert (exchange["name"], exchange["type"]) == (worker.EVENTS_EXCHANGE, "topic")
    assert channel["address"] == EVENT_TYPE
    queue = channel["x-caf-queue"]
    assert (queue["name"], queue["type"]) == (worker.TRANSFERS_QUEUE, "quorum")
    assert topic_matches(queue["bindingKey"], channel["address"])
    assert queue["deadLetterExchange"] == worker.DEAD_EXCHANGE


def test_asyncapi_dead_letter_headers_are_the_ones_the_worker_sends():
    headers = published("asyncapi.json")["components"]["messages"]["deadLetter"]["headers"]
    documented = headers["properties"]
    assert set(documented) == {
        worker.REASON_HEADER,
        worker.REJECTION_HEADER,
        worker.EVENT_ID_HEADER,
        worker.EXCHANGE_HEADER,
        USER_ID_HEADER,
        EXPIRATION_HEADER,
        LEFT_OUT_HEADER,
    }
    assert documented[worker.REJECTION_HEADER]["enum"] == [r.value for r in Rejection] + [
        worker.PROCESSING_FAILED
    ]


def test_only_the_exporter_needs_apispec():
    runtime = [p for p in export.PUBLISHED.parent.glob("*.py") if p.name != "export.py"]
    assert runtime
    for path in runtime:
        assert "apispec" not in path.read_text(encoding="utf-8"), path.name
