"""Writes the published contracts in ``contracts/published/`` from the marshmallow schemas.

A development tool, not part of the runtime: nothing in the service imports this module. It
uses apispec, which is a runtime dependency anyway (flask-smorest needs it). The files it writes
are the ones shipped; the service itself validates with the marshmallow schemas.

    python -m contracts.export           # (re)write the published files
    python -m contracts.export --check   # exit 1 if any published file is stale or missing

Each ``*.schema.json`` is a self-contained JSON Schema (draft 2020-12): apispec's
MarshmallowPlugin converts the schemas (its OpenAPI 3.1 output is JSON Schema 2020-12), and
references between them are moved from ``#/components/schemas/X`` into the file's ``$defs``.
Two things apispec cannot see are added here, never written out by hand:

- field validators that are plain functions (``no_repeats``, an ISP party, ``in_utc_range``),
  by a field hook;
- the cross-field rules of ``@validates_schema`` methods, from ``RULES`` below. Every such
  method must have an entry, so a new rule cannot silently go unpublished; what JSON Schema
  cannot say (e.g. two dates in order) goes into the description instead.

``asyncapi.json`` (AsyncAPI 3.0) describes the AMQP side: where case systems publish, and the
dead letters the worker writes.
"""

from __future__ import annotations

import inspect
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from marshmallow import Schema
from marshmallow.decorators import VALIDATES_SCHEMA

from contracts.common import LawfulBasisSchema
from contracts.envelope import BasisSchema, EnvelopeSchema
from contracts.event import (
    CaseTransferDataSchema,
    CaseTransferEventSchema,
    RequestedCaseTransferDataSchema,
)
from contracts.function_validators import function_validators
from contracts.isp import IspSchema
from contracts.judgement import CONSENT_BASES, ConsentSchema, JudgementSchema
from contracts.reference import PARTY_GROUPS
from contracts.vocabulary import (
    BASIS_KINDS,
    DATA_CATEGORIES,
    EVENT_DATASCHEMA,
    EVENT_TYPE,
    SPECIAL_CATEGORIES,
)

PUBLISHED = Path(__file__).resolve().parent / "published"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_FILE = "asyncapi.json"
OPENAPI_FILE = "openapi.json"
EVENT_CONTENT_TYPE = "application/cloudevents+json"
AMQP_BINDING_VERSION = "0.3.0"


def schema_id(name: str, version: int) -> str:
    return f"urn:caf-relay:schema:{name}:{version}"


@dataclass(frozen=True)
class Contract:
    """One published JSON Schema: its file and ``$id`` come from ``name`` and ``version``."""

    name: str
    schema: type[Schema]
    title: str
    description: str
    version: int = 1

    @property
    def file_name(self) -> str:
        return f"{self.name}.schema.json"

    @property
    def id(self) -> str:
        return schema_id(self.name, self.version)


CASE_TRANSFER_EVENT = Contract(
    "case-transfer-event",
    CaseTransferEventSchema,
    "Case-transfer event",
    f"A CloudEvents 1.0 event in structured JSON mode ({EVENT_CONTENT_TYPE}), type {EVENT_TYPE}. "
    "id is the idempotency key, source the publishing case system, subject the CAF case "
    "reference; data follows the schema named by dataschema.",
)
CONTRACTS: tuple[Contract, ...] = (
    CASE_TRANSFER_EVENT,
    Contract(
        "case-transfer-requested",
        RequestedCaseTransferDataSchema,
        "Case-transfer event data",
        f"The data of a {EVENT_TYPE} event; its $id is the event's dataschema.",
    ),
    Contract(
        "judgement",
        JudgementSchema,
        "Practitioner judgement",
        "The recorded decision of a practitioner to share (or not) where no ISP applies.",
    ),
    Contract(
        "isp",
        IspSchema,
        "Information Sharing Protocol",
        "A signed agreement for routine sharing between its parties.",
    ),
    Contract(
        "envelope",
        EnvelopeSchema,
        "Envelope",
        "What the receiving authority gets, as the payload of a JWS (Ed25519): the basis, the "
        "data categories shared and withheld, and the minimised event.",
    ),
)
if CONTRACTS[1].id != EVENT_DATASCHEMA:  # pragma: no cover - a programming error
    raise RuntimeError(f"The event data schema's $id must be {EVENT_DATASCHEMA}.")


# --- what apispec cannot see --------------------------------------------------------------------

SPECIAL = [c for c in DATA_CATEGORIES if c in SPECIAL_CATEGORIES]
GROUPS = sorted(PARTY_GROUPS)


def _shares_special_category(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON Schema ``if``: data_categories names a special category (and ``extra`` holds)."""
    condition: dict[str, Any] = {
        "properties": {"data_categories": {"contains": {"enum": SPECIAL}}},
        "required": ["data_categories"],
    }
    for key, value in (extra or {}).get("properties", {}).items():
        condition["properties"][key] = value
    condition["required"] = sorted({*condition["required"], *(extra or {}).get("required", [])})
    return condition


NEEDS_ARTICLE_9 = {"properties": {"lawful_basis": {"required": ["article_9"]}}}
DECIDED_TO_SHARE = {"properties": {"decision": {"const": "share"}}, "required": ["decision"]}


@dataclass(frozen=True)
class Rule:
    """A ``@validates_schema`` method as published: JSON Schema where it can say it, else words."""

    json_schemas: tuple[dict[str, Any], ...] = ()
    not_expressible: str | None = None


RULES: dict[tuple[type[Schema], str], Rule] = {
    (LawfulBasisSchema, "article_9_comes_with_schedule_1"): Rule(
        (
            {
                "dependentRequired": {
                    "article_9": ["dpa_2018_schedule_1_condition"],
                    "dpa_2018_schedule_1_condition": ["article_9"],
                }
            },
        )
    ),
    (ConsentSchema, "explained_unless_obtained"): Rule(
        (
            {
                "if": {"properties": {"status": {"const": "obtained"}}, "required": ["status"]},
                "else": {"required": ["explanation"]},
            },
        )
    ),
    (JudgementSchema, "shares_something_lawfully"): Rule(
        (
            {"if": DECIDED_TO_SHARE, "then": {"properties": {"data_categories": {"minItems": 1}}}},
            {"if": _shares_special_category(DECIDED_TO_SHARE), "then": NEEDS_ARTICLE_9},
            {
                "if": DECIDED_TO_SHARE,
                "then": {
                    "properties": {
                        "consent": {"properties": {"status": {"not": {"const": "refused"}}}}
                    }
                },
            },
            *(
                {
                    "if": {
                        "properties": {
                            **DECIDED_TO_SHARE["properties"],
                            "lawful_basis": {
                                "properties": {key: {"const": value}},
                                "required": [key],
                            },
                        },
                        "required": ["decision", "lawful_basis"],
                    },
                    "then": {
                        "properties": {"consent": {"properties": {"status": {"const": "obtained"}}}}
                    },
                }
                for key, value in CONSENT_BASES.items()
            ),
        )
    ),
    (IspSchema, "coherent"): Rule(
        (
            {"if": _shares_special_category(), "then": NEEDS_ARTICLE_9},
            {
                "if": {"properties": {"parties": {"maxItems": 1}}, "required": ["parties"]},
                "then": {"properties": {"parties": {"items": {"enum": GROUPS}}}},
            },
        ),
        "expires_on, when given, is not before effective_from; each signatory signs for a "
        "party to the ISP (a code among its parties, or a group with a member among them).",
    ),
    (BasisSchema, "carries_its_kind"): Rule(
        tuple(
            {
                "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                "then": {
                    "required": [kind],
                    "not": {
                        "anyOf": [{"required": [other]} for other in BASIS_KINDS if other != kind]
                    },
                },
            }
            for kind in BASIS_KINDS
        )
    ),
    (CaseTransferDataSchema, "names_two_authorities"): Rule(
        not_expressible="to_authority differs from from_authority."
    ),
    (RequestedCaseTransferDataSchema, "names_the_child"): Rule(
        ({"properties": {"case": {"required": ["child_identity"]}}},)
    ),
}


def _rules_for(schema: type[Schema]) -> list[Rule]:
    rules = []
    for method_name, _many, _kwargs in schema._hooks[VALIDATES_SCHEMA]:
        owner = next(cls for cls in schema.__mro__ if method_name in vars(cls))
        try:
            rules.append(RULES[(owner, method_name)])
        except KeyError:
            raise LookupError(
                f"{owner.__name__}.{method_name} is a @validates_schema rule with no entry in "
                "contracts.export.RULES; say there how the published schema expresses it."
            ) from None
    return rules


def _describe(schema: type[Schema], rules: list[Rule]) -> str | None:
    parts = []
    doc = vars(schema).get("__doc__")
    if doc:
        parts.append(inspect.cleandoc(doc))
    parts += [f"Also checked by caf-relay: {r.not_expressible}" for r in rules if r.not_expressible]
    return "\n\n".join(parts) or None


# --- JSON Schema ---------------------------------------------------------------------------------


def _components(root: type[Schema]) -> tuple[str, dict[str, Any], dict[str, type[Schema]]]:
    """The OpenAPI 3.1 components apispec makes for ``root`` and everything it nests."""
    classes: dict[str, type[Schema]] = {}

    def name_of(schema: Any) -> str:
        cls = resolve_schema_cls(schema)
        name = cls.__name__.removesuffix("Schema")
        if classes.setdefault(name, cls) is not cls:
            raise ValueError(f"Two schemas would publish as {name}: {classes[name]} and {cls}.")
        return name

    plugin = MarshmallowPlugin(schema_name_resolver=name_of)
    spec = APISpec("caf-relay", "1", "3.1.0", plugins=[plugin])
    plugin.converter.add_attribute_function(function_validators)
    root_name = name_of(root)
    spec.components.schema(root_name, schema=root)
    return root_name, spec.to_dict()["components"]["schemas"], classes


def _rewrite_refs(node: Any, root_name: str) -> Any:
    prefix = "#/components/schemas/"
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(prefix):
                name = value.removeprefix(prefix)
                out[key] = "#" if name == root_name else f"#/$defs/{name}"
            else:
                out[key] = _rewrite_refs(value, root_name)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, root_name) for item in node]
    return node


def json_schema(contract: Contract) -> dict[str, Any]:
    """The self-contained JSON Schema (2020-12) for one contract."""
    root_name, components, classes = _components(contract.schema)
    for name, component in components.items():
        rules = _rules_for(classes[name])
        combined = [clause for rule in rules for clause in rule.json_schemas]
        if combined:
            component["allOf"] = combined
        description = _describe(classes[name], rules)
        if description:
            component["description"] = description
    components = _rewrite_refs(components, root_name)
    root = components.pop(root_name)
    document = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": contract.id,
        "title": contract.title,
        **root,
        "description": "\n\n".join(filter(None, [contract.description, root.get("description")])),
    }
    if components:
        document["$defs"] = components
    return document


# --- AsyncAPI ------------------------------------------------------------------------------------


def asyncapi() -> dict[str, Any]:
    """AsyncAPI 3.0: the exchange case systems publish to, and the dead letters caf-relay writes."""
    # Imported here: the topology belongs to the worker; contracts must not need service to load.
    from service import worker
    from service.amqp_headers import EXPIRATION_HEADER, LEFT_OUT_HEADER, USER_ID_HEADER
    from service.relay import PROCESSING_FAILED, Rejection

    amqp_server = [{"$ref": "#/servers/rabbitmq"}]
    return {
        "asyncapi": "3.0.0",
        "id": "urn:caf-relay:asyncapi:1",
        "info": {
            "title": "caf-relay messages",
            "version": "1",
            "description": (
                "Case systems publish case-transfer events to RabbitMQ; caf-relay consumes them, "
                "decides the basis for sharing, and signs and delivers the result. Input it cannot "
                f"accept is dead-lettered to {worker.DEAD_EXCHANGE} with the reason; nothing is "
                "dropped. The same events are accepted over HTTP (POST /api/v1/events)."
            ),
        },
        "servers": {
            "rabbitmq": {
                "host": "{host}:{port}",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The deployment's RabbitMQ; the virtual host is set per deployment.",
                "variables": {
                    "host": {"default": "localhost"},
                    "port": {"default": "5672"},
                },
            }
        },
        "channels": {
            "caseTransferRequested": {
                "address": EVENT_TYPE,
                "title": "Case-transfer requests",
                "description": (
                    f"Publish to the durable topic exchange {worker.EVENTS_EXCHANGE} with routing "
                    f"key {EVENT_TYPE}, as a persistent message. caf-relay consumes them from the "
                    f"quorum queue {worker.TRANSFERS_QUEUE}, bound with "
                    f"{worker.TRANSFERS_BINDING}; a message whose processing keeps failing goes "
                    f"to {worker.DEAD_EXCHANGE} once it exceeds the delivery limit "
                    f"({worker.DELIVERY_LIMIT}). Set the user_id property to the RabbitMQ user "
                    "you publish as: it must be registered as the publisher for the event's "
                    "from_authority, or the message is dead-lettered as forged_sender."
                ),
                "servers": amqp_server,
                "messages": {
                    "caseTransferEvent": {"$ref": "#/components/messages/caseTransferEvent"}
                },
                "bindings": {
                    "amqp": {
                        "is": "routingKey",
                        "exchange": {
                            "name": worker.EVENTS_EXCHANGE,
                            "type": "topic",
                            "durable": True,
                            "autoDelete": False,
                        },
                        "bindingVersion": AMQP_BINDING_VERSION,
                    }
                },
                "x-caf-queue": {
                    "name": worker.TRANSFERS_QUEUE,
                    "type": "quorum",
                    "bindingKey": worker.TRANSFERS_BINDING,
                    "deadLetterExchange": worker.DEAD_EXCHANGE,
                    "deliveryLimit": worker.DELIVERY_LIMIT,
                },
            },
            "deadLetters": {
                "address": worker.DEAD_QUEUE,
                "title": "Dead letters",
                "description": (
                    f"Rejected input, byte for byte as received: caf-relay publishes it to the "
                    f"durable fanout exchange {worker.DEAD_EXCHANGE}, persistent, keeping the "
                    "original routing key, properties and headers but for user_id and "
                    f"expiration, which it carries as {USER_ID_HEADER} and {EXPIRATION_HEADER}, "
                    f"and adds {worker.REASON_HEADER}, {worker.REJECTION_HEADER} and "
                    f"{worker.EXCHANGE_HEADER}, the exchange the message came through (empty for "
                    "the default exchange), and "
                    f"{worker.EVENT_ID_HEADER} when the event's id could be read. A publisher's "
                    "header the copy cannot carry (one named x-caf-..., which only caf-relay "
                    "writes; one AMQP cannot encode again; or all of them if with the reason "
                    f"they would not fit in one frame) is left out, and {LEFT_OUT_HEADER} counts "
                    "those left out. A message whose processing failed on each of "
                    f"{worker.DELIVERY_LIMIT} deliveries comes here too, with rejection "
                    f"{PROCESSING_FAILED} and the last error as the reason."
                ),
                "servers": amqp_server,
                "messages": {"deadLetter": {"$ref": "#/components/messages/deadLetter"}},
                "bindings": {
                    "amqp": {
                        "is": "queue",
                        "queue": {
                            "name": worker.DEAD_QUEUE,
                            "durable": True,
                            "exclusive": False,
                            "autoDelete": False,
                        },
                        "bindingVersion": AMQP_BINDING_VERSION,
                    }
                },
                "x-caf-exchange": {"name": worker.DEAD_EXCHANGE, "type": "fanout"},
                "x-caf-queue-type": "quorum",
            },
        },
        "operations": {
            "receiveCaseTransfer": {
                "action": "receive",
                "title": "caf-relay takes a case-transfer request",
                "channel": {"$ref": "#/channels/caseTransferRequested"},
                "messages": [
                    {"$ref": "#/channels/caseTransferRequested/messages/caseTransferEvent"}
                ],
                "bindings": {"amqp": {"ack": True, "bindingVersion": AMQP_BINDING_VERSION}},
            },
            "sendDeadLetter": {
                "action": "send",
                "title": "caf-relay sets aside input it cannot accept",
                "channel": {"$ref": "#/channels/deadLetters"},
                "messages": [{"$ref": "#/channels/deadLetters/messages/deadLetter"}],
                "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": AMQP_BINDING_VERSION}},
            },
        },
        "components": {
            "messages": {
                "caseTransferEvent": {
                    "name": "caseTransferEvent",
                    "title": "Case-transfer event",
                    "summary": "A CloudEvents 1.0 event (structured JSON) asking for a transfer.",
                    "contentType": EVENT_CONTENT_TYPE,
                    "payload": {
                        "schemaFormat": "application/schema+json;version=2020-12",
                        "schema": {"$ref": f"./{CASE_TRANSFER_EVENT.file_name}"},
                    },
                    "bindings": {
                        "amqp": {"messageType": EVENT_TYPE, "bindingVersion": AMQP_BINDING_VERSION}
                    },
                },
                "deadLetter": {
                    "name": "deadLetter",
                    "title": "Dead letter",
                    "summary": "A message caf-relay did not accept, with the reason.",
                    "headers": {
                        "type": "object",
                        "properties": {
                            worker.REASON_HEADER: {
                                "type": "string",
                                "description": "Why the message was refused, for a person.",
                            },
                            worker.REJECTION_HEADER: {
                                "type": "string",
                                "enum": [rejection.value for rejection in Rejection]
                                + [PROCESSING_FAILED],
                                "description": "Why the message was refused, as a stable code.",
                            },
                            worker.EXCHANGE_HEADER: {
                                "type": "string",
                                "description": "The exchange the message was published to, "
                                "empty when sent straight to the queue through the default "
                                "exchange: with the routing key, where to send it again.",
                            },
                            worker.EVENT_ID_HEADER: {
                                "type": "string",
                                "maxLength": 128,
                                "description": "The refused event's id, the one its rejected "
                                "audit record is under; absent when none could be read (not "
                                "JSON, too big, no usable id).",
                            },
                            USER_ID_HEADER: {
                                "type": "string",
                                "description": "The user_id the message was sent with, as the "
                                "broker checked it; absent when it had none.",
                            },
                            EXPIRATION_HEADER: {
                                "type": "string",
                                "description": "The expiration the message was sent with; "
                                "absent when it had none.",
                            },
                            LEFT_OUT_HEADER: {
                                "type": "integer",
                                "minimum": 1,
                                "description": "How many of the publisher's headers the dead "
                                "letter could not carry; absent when it carries them all.",
                            },
                        },
                    },
                    "payload": {
                        "description": "The message body as received; it may not be JSON.",
                    },
                },
            }
        },
    }


# --- files ---------------------------------------------------------------------------------------


def dumps(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render() -> dict[str, str]:
    """Every published file's name and the text the schemas generate for it."""
    files = {contract.file_name: dumps(json_schema(contract)) for contract in CONTRACTS}
    files[ASYNCAPI_FILE] = dumps(asyncapi())
    # The HTTP API's document is generated by the web app from the schemas in contracts/api;
    # imported here, not at the top, because the service imports contracts, not the reverse.
    from service.web import openapi_document

    files[OPENAPI_FILE] = dumps(openapi_document())
    return files


def differences(directory: Path | None = None) -> list[str]:
    """How ``directory`` (default: contracts/published) differs from what the schemas generate.

    Empty when the two are in step; otherwise one line per file: missing, stale, not generated.
    """
    directory = directory or PUBLISHED
    expected = render()
    found = {path.name for path in directory.glob("*.json")} if directory.is_dir() else set()
    problems = []
    for name, text in sorted(expected.items()):
        if name not in found:
            problems.append(f"missing: {name}")
        elif (directory / name).read_text(encoding="utf-8") != text:
            problems.append(f"stale: {name}")
    problems += [f"not generated: {name}" for name in sorted(found - expected.keys())]
    return problems


def write(directory: Path | None = None) -> list[str]:
    """Bring ``directory`` (default: contracts/published) in step; returns what changed."""
    directory = directory or PUBLISHED
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    expected = render()
    for name, text in sorted(expected.items()):
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(f"wrote: {name}")
    for path in sorted(directory.glob("*.json")):
        if path.name not in expected:
            path.unlink()
            changed.append(f"removed: {path.name}")
    return changed


@click.command()
@click.option(
    "--check", is_flag=True, help="Change nothing; exit 1 if the published files are not in step."
)
def main(check: bool) -> None:
    """Generate contracts/published/ from the marshmallow schemas in contracts/."""
    where = PUBLISHED.relative_to(PUBLISHED.parents[1])
    if check:
        problems = differences(PUBLISHED)
        if problems:
            click.echo(f"{where} is out of step with the schemas in contracts/:", err=True)
            for problem in problems:
                click.echo(f"  {problem}", err=True)
            click.echo("Run `python -m contracts.export` and commit the result.", err=True)
            sys.exit(1)
        click.echo(f"{where} is in step with the schemas.")
        return
    changed = write(PUBLISHED)
    for line in changed:
        click.echo(f"{line} ({where})")
    if not changed:
        click.echo(f"{where} was already in step with the schemas.")


if __name__ == "__main__":
    main()
