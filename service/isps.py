"""The ISP register's actions: one implementation, called by the API and the CLI alike.

Who may write: a global admin, or an admin of an authority that is a party to the ISP (to the
new ISP when it is created; to the current version when it is amended or suspended). Anyone may
read the register and ask what applies. Every write is audited with who made it.

A signature binds its party only once an admin who may act for that party stands behind it:
by recording the version, or by confirming it later (``confirm``). So one party's admin cannot
bind another by writing its signatory into a version; until the other confirms, its routine
transfers under that version need a practitioner judgement (finding ``not_confirmed``).

Suspending records a new version with status "suspended" rather than changing the status of
the current one: a version, once recorded, is what transfers were shared under, and rewriting
it would make the record say they rested on a suspended agreement. The new version counts for
every later decision, as a suspension acts at once (``domain.basis.versions_in_force``), even
while a draft or a later-starting amendment is the newest version.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from pathlib import PurePath
from typing import Any

from marshmallow import ValidationError

from contracts.common import contract_errors
from contracts.isp import IspSchema
from contracts.reference import expand_parties
from service.access import Principal, Role
from service.documents import read_json, read_yaml
from service.domain.basis import decision_day
from service.domain.isotime import iso
from service.domain.isp_register import (
    BINDS_NO_ONE,
    FINDING_REASONS,
    SUSPENDED,
    VersionOutOfOrder,
    applicability,
    confirmable,
    in_force,
    new_versions,
    suspension,
    writers,
)
from service.domain.storable import unstorable
from service.store.isps import IspChange, RecordedIsp, confirmed_on_recording
from service.store.store import Store


def _parse_yaml(data: bytes) -> Any:
    """YAML's parser, imported only when an ISP comes as YAML: not in every worker process."""
    import yaml

    try:
        return read_yaml(data)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc


PARSERS = {"json": read_json, "yaml": _parse_yaml}
FORMAT_BY_MEDIA_TYPE = {
    "application/json": "json",
    "application/yaml": "yaml",
    "application/x-yaml": "yaml",
    "text/yaml": "yaml",
}
FORMAT_BY_SUFFIX = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}


class InvalidIsp(ValueError):
    """The input is not a valid ISP (or list of them); ``errors`` says where, field by field."""

    def __init__(self, message: str, errors: dict[str, Any]) -> None:
        super().__init__(message)
        self.errors = errors


class IspConflict(Exception):
    """The change does not fit the register as it stands (an id taken, a version not next)."""

    def __init__(self, message: str, errors: dict[Any, Any] | None = None) -> None:
        super().__init__(message)
        self.errors = errors


class UnknownIsp(LookupError):
    def __init__(self, isp_id: str, version: int | None = None) -> None:
        which = f"ISP {isp_id!r}" if version is None else f"version {version} of ISP {isp_id!r}"
        super().__init__(f"No {which} in the register.")


class UnknownAuthorities(LookupError):
    """A question about authorities the register does not hold: answering "no ISP" for a
    mistyped code would read as a real answer."""

    def __init__(self, codes: dict[str, str]) -> None:
        """``codes``: each unknown code by the field that gave it."""
        super().__init__(f"Unknown authority: {', '.join(codes.values())}.")
        self.errors = {
            field: [f"{code!r} is not an organisation in the register."]
            for field, code in codes.items()
        }


SUSPEND_INSTEAD = (
    "A version is suspended only by suspending the ISP, with the reason "
    "(POST /api/v1/isps/<id>/suspend, caf-relay isp suspend)."
)


class NotAParty(PermissionError):
    """The caller may not change this ISP: not an admin of one of its parties."""


# -- writing ------------------------------------------------------------------------------------


def create(store: Store, document: Any, *, by: Principal, now: datetime) -> dict[str, Any]:
    """Add a new ISP at version 1; its id must not be in the register yet."""
    isp = validated(document)
    if store.isps.latest([isp["id"]]):
        raise IspConflict(f"ISP {isp['id']} exists already; amend it with a new version.")
    _record(store, [isp], by=by, now=now)
    return _summary_of_new(isp, by, now)


def amend(
    store: Store, isp_id: str, document: Any, *, by: Principal, now: datetime
) -> dict[str, Any]:
    """Record the next version of ``isp_id``; the versions before it stay as they were."""
    _current(store, isp_id)
    isp = validated(document)
    if isp["id"] != isp_id:
        raise InvalidIsp("Not a version of this ISP.", {"id": [f"An amendment keeps {isp_id}."]})
    _record(store, [isp], by=by, now=now)
    return _summary_of_new(isp, by, now)


def suspend(
    store: Store, isp_id: str, reason: str, *, by: Principal, now: datetime
) -> dict[str, Any]:
    """Suspend an ISP by recording a suspended version of it (see the module's note): the
    version in force today, whatever drafts or amendments still to come follow it. Only an
    admin of a party to that version may: it binds them, and no one else."""
    newest = _current(store, isp_id).document
    current = _in_force_today(store, isp_id, now)
    for version in (newest, current):
        if version["status"] in BINDS_NO_ONE:
            raise IspConflict(
                f"ISP {isp_id} v{version['version']} is {version['status']}; "
                "only an ISP in force or still to come can be suspended."
            )
    if not (by.role is Role.ADMIN and by.acts_for(*expand_parties(current["parties"]))):
        raise NotAParty(
            f"A {by.role.value} of {by.authority} may not suspend ISP {isp_id}: only an admin "
            f"of a party to v{current['version']}, the version in force, may."
        )
    suspended = suspension(current, newest)
    _record(store, [suspended], by=by, now=now, action="isp_suspended", reason=reason)
    return _summary_of_new(suspended, by, now)


def confirm(
    store: Store,
    isp_id: str,
    version: int,
    *,
    by: Principal,
    now: datetime,
    parties: Collection[str] | None = None,
) -> dict[str, Any]:
    """Confirm, as an admin of a party signed for on one version, that party's signature; a
    global admin confirms every signature on it, or only ``parties``. Confirming again changes
    nothing."""
    recorded = {r.document["version"]: r for r in store.isps.versions(isp_id)}
    if not recorded:
        raise UnknownIsp(isp_id)
    if version not in recorded:
        raise UnknownIsp(isp_id, version)
    document = recorded[version].document
    mine = confirmable(document, by.acts_for) if by.role is Role.ADMIN else frozenset()
    if not mine:
        raise NotAParty(
            f"A {by.role.value} of {by.authority} may not confirm ISP {isp_id} v{version}: "
            "only an admin of a party it records a signature for may."
        )
    if document["status"] in BINDS_NO_ONE:
        raise IspConflict(
            f"ISP {isp_id} v{version} is {document['status']}: it binds no one, so there is no "
            "signature on it to confirm."
        )
    chosen = mine if parties is None else expand_parties(list(parties))
    if not chosen <= mine:
        raise IspConflict(
            f"ISP {isp_id} v{version} records no signature for "
            f"{', '.join(sorted(chosen - mine))} that you may confirm."
        )
    confirmed = store.isps.confirm(isp_id, version, chosen, now=now, by=by)
    if confirmed is None:
        raise UnknownIsp(isp_id, version)
    today = decision_day(now)
    speaking = in_force([r.document for r in recorded.values()], today)["version"]
    return summary(confirmed, today, replaced=version < speaking)


def import_isps(
    store: Store, data: bytes, file_format: str, *, source: str, by: Principal, now: datetime
) -> list[dict[str, Any]]:
    """Record every ISP in a JSON or YAML file (one ISP or a list), or none if any is wrong.

    Each is a new ISP at version 1 or the next version of one in the register; errors are
    given by position in the file, field by field.
    """
    parsed = parse(data, file_format)
    documents = parsed if isinstance(parsed, list) else [parsed]
    if not documents:
        raise InvalidIsp("No ISPs to import.", {"file": ["The file holds an empty list."]})
    schema = IspSchema(many=True)
    try:
        isps = schema.dump(schema.load(documents))
    except ValidationError as exc:
        raise InvalidIsp("Not valid ISPs; nothing was imported.", contract_errors(exc)) from exc
    _record(store, isps, by=by, now=now, by_position=True, source=source)
    return [
        {**_summary_of_new(isp, by, now), "change": _action(isp).removeprefix("isp_")}
        for isp in isps
    ]


def parse(data: bytes, file_format: str) -> Any:
    """The content of a JSON or YAML file, or InvalidIsp saying why it cannot be read."""
    try:
        return PARSERS[file_format](data)
    except (ValueError, RecursionError) as exc:
        raise InvalidIsp(f"Not readable as {file_format}.", {"file": [str(exc)]}) from exc


def file_format(name: str | None, media_type: str | None) -> str | None:
    """``json`` or ``yaml`` from a file's media type or, failing that, its name."""
    by_type = FORMAT_BY_MEDIA_TYPE.get((media_type or "").split(";")[0].strip().lower())
    return by_type or FORMAT_BY_SUFFIX.get(PurePath(name or "").suffix.lower())


def validated(document: Any) -> dict[str, Any]:
    """The ISP in its published JSON form, or InvalidIsp with field-level errors."""
    schema = IspSchema()
    try:
        return schema.dump(schema.load(document))
    except ValidationError as exc:
        raise InvalidIsp("Not a valid ISP.", contract_errors(exc)) from exc


def _record(
    store: Store,
    isps: Sequence[dict[str, Any]],
    *,
    by: Principal,
    now: datetime,
    action: str | None = None,
    by_position: bool = False,
    **note: str,
) -> None:
    """Check who may write and that the versions follow on, then record them with ``note``; a
    suspended or retired version parks the transfers signed under the ISP that are still to be
    delivered (``service.store.withdrawals``).

    Errors name a document by its position in a file (``by_position``), else the one document.
    """
    for field, value in {"_schema": list(isps), **note}.items():
        if why := unstorable(value):
            raise InvalidIsp(f"Not storable: {why}", {field: [why]})
    if action != "isp_suspended":
        # Suspending is its own action: by a party to the version in force, on its terms, with
        # the reason audited (``suspend``); a version written "suspended" would skip all three.
        said = {"status": [SUSPEND_INSTEAD]}
        errors = {i: said for i, isp in enumerate(isps) if isp["status"] == SUSPENDED}
        if errors:
            raise InvalidIsp(SUSPEND_INSTEAD, errors if by_position else said)
    latest = store.isps.latest({isp["id"] for isp in isps})
    today = {isp_id: _in_force_today(store, isp_id, now) for isp_id in latest}
    try:
        planned = new_versions({i: r.document for i, r in latest.items()}, isps)
        for version in planned:
            may_write = writers(version, today.get(version.document["id"]))
            if not (by.role is Role.ADMIN and by.acts_for(*may_write)):
                which = "its newest version or the one in force" if version.previous else "it"
                raise NotAParty(
                    f"A {by.role.value} of {by.authority} may not change ISP "
                    f"{version.document['id']}: only an admin of a party to {which} may."
                )
        store.isps.record(
            [IspChange(isp, action or _action(isp), note) for isp in isps],
            now=now,
            by=by,
        )
    except VersionOutOfOrder as exc:
        errors = exc.errors if by_position else exc.errors.get(0)
        raise IspConflict(str(exc), errors or None) from exc


def _action(isp: dict[str, Any]) -> str:
    return "isp_created" if isp["version"] == 1 else "isp_amended"


# -- reading ------------------------------------------------------------------------------------


def register(store: Store, today: date) -> list[dict[str, Any]]:
    """The newest version of every ISP, with its status."""
    return [summary(recorded, today) for recorded in store.isps.latest().values()]


def history(store: Store, isp_id: str, today: date) -> dict[str, Any]:
    """One ISP with every version ever recorded, oldest first."""
    versions = store.isps.versions(isp_id)
    if not versions:
        raise UnknownIsp(isp_id)
    speaking = in_force([v.document for v in versions], today)["version"]
    return {
        "isp_id": isp_id,
        "current": summary(versions[-1], today),
        "versions": [
            {
                **summary(v, today, replaced=v.document["version"] < speaking),
                "confirmations": [
                    {"party": c.party, "confirmed_at": iso(c.confirmed_at), "by": c.by}
                    for c in v.confirmations
                ],
                "document": v.document,
            }
            for v in versions
        ],
    }


def applicable(
    store: Store, *, from_authority: str, to_authority: str, flow: str, purpose: str, on: date
) -> dict[str, Any]:
    """Which ISPs a routine transfer from A to B for ``flow`` and ``purpose`` on ``on`` rests on.

    Every ISP in the register is listed with its finding and the reason, as a transfer's
    decision records them.
    """
    known = store.authorities()
    given = {"from_authority": from_authority, "to_authority": to_authority}
    unknown = {field: code for field, code in given.items() if code not in known}
    if unknown:
        raise UnknownAuthorities(unknown)
    terms = {(isp.id, isp.version): isp for isp in store.isps.terms()}
    decision = applicability(
        terms.values(),
        from_authority=from_authority,
        to_authority=to_authority,
        flow=flow,
        purpose=purpose,
        on=on,
    )
    return {
        "from_authority": from_authority,
        "to_authority": to_authority,
        "flow": flow,
        "purpose": purpose,
        "on": on.isoformat(),
        "basis": (
            {"isp_id": decision.isp.id, "version": decision.isp.version} if decision.isp else None
        ),
        "reason": decision.reason,
        "considered": [
            {
                "isp_id": c.isp_id,
                "version": c.version,
                "title": terms[c.isp_id, c.version].title,
                "status": terms[c.isp_id, c.version].status,
                "finding": c.finding.value,
                "reason": FINDING_REASONS[c.finding],
            }
            for c in decision.considered
        ],
    }


def summary(recorded: RecordedIsp, today: date, *, replaced: bool = False) -> dict[str, Any]:
    """What the register shows of one version; ``today`` (a London day) for its review date;
    ``replaced`` if a later version is in force that day.

    A version in force past its ``review_by`` still applies: the date asks its parties to review
    it, it does not end it (``expires_on`` does). It is flagged ``review_overdue`` for them; one
    a later version has replaced is not, as it is the later one's review they are asked for.
    """
    document = recorded.document
    return {
        "isp_id": document["id"],
        "version": document["version"],
        "title": document["title"],
        "status": document["status"],
        "parties": document["parties"],
        "effective_from": document["effective_from"],
        "expires_on": document.get("expires_on"),
        "unconfirmed": sorted(recorded.unconfirmed),
        "review_overdue": not replaced and _review_overdue(document, today),
        "recorded_at": iso(recorded.recorded_at),
    }


def _review_overdue(document: dict[str, Any], today: date) -> bool:
    """True for an active version in effect ``today``, not expired, whose review date has
    passed; whether a later version has replaced it, ``summary`` is told."""
    expires = document.get("expires_on")
    return (
        document["status"] == "active"
        and date.fromisoformat(document["effective_from"]) <= today
        and (expires is None or today <= date.fromisoformat(expires))
        and date.fromisoformat(document["review_by"]) < today
    )


def _summary_of_new(document: dict[str, Any], by: Principal, now: datetime) -> dict[str, Any]:
    """The summary of a version ``by`` has just recorded, with the signatures it confirmed."""
    recorded = RecordedIsp(document, now, confirmed_on_recording(document, by, now))
    return summary(recorded, decision_day(now))


def _in_force_today(store: Store, isp_id: str, now: datetime) -> dict[str, Any]:
    return in_force([r.document for r in store.isps.versions(isp_id)], decision_day(now))


def _current(store: Store, isp_id: str) -> RecordedIsp:
    recorded = store.isps.latest([isp_id]).get(isp_id)
    if recorded is None:
        raise UnknownIsp(isp_id)
    return recorded
