"""Keyed hashes of a child's identifiers, so the audit can be searched by child without holding
any identifier in clear.

Each identifier a case carries becomes one key, HMAC-SHA256 under the service's audit key of
``kind:normalised value``:
- ``nhs_number``: the 10 digits (spaces ignored);
- ``unique_pupil_number``: the UPN in capitals (spaces ignored);
- ``name_and_birth_date``: family name, given name and date of birth, case and spacing ignored.
NHS number and UPN identify one child. Name and date of birth may match two children, so an
export asked for by name lists every transfer of any child with that name and birth date.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

NHS_NUMBER = re.compile(r"^[0-9]{10}$")
UPN = re.compile(r"^[A-Z][0-9]{11}[0-9A-Z]$")
NAME_FIELDS = ("given_name", "family_name", "date_of_birth")
IDENTIFIER_FIELDS = ("nhs_number", "unique_pupil_number", *NAME_FIELDS)
# The audit action of a read of a child's record (``service.child_reads``); its ``child_keys``
# hold the one key the child was read by.
CHILD_RECORD_READ = "child_record_read"


class IdentifierError(ValueError):
    """The identifiers given do not name one child in one of the accepted ways."""


@dataclass(frozen=True)
class ChildIdentifier:
    kind: str
    value: str


def _name(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _nhs_number(value: str) -> ChildIdentifier:
    digits = "".join(value.split())
    if not NHS_NUMBER.fullmatch(digits):
        raise IdentifierError("An NHS number is 10 digits.")
    return ChildIdentifier("nhs_number", digits)


def _upn(value: str) -> ChildIdentifier:
    upn = "".join(value.split()).upper()
    if not UPN.fullmatch(upn):
        raise IdentifierError("A unique pupil number is a letter, 11 digits and a check character.")
    return ChildIdentifier("unique_pupil_number", upn)


def _name_and_birth_date(given: str, family: str, born: str) -> ChildIdentifier:
    try:
        birth = date.fromisoformat(born).isoformat()
    except ValueError as exc:
        raise IdentifierError("date_of_birth is a date, YYYY-MM-DD.") from exc
    if not _name(given) or not _name(family):
        raise IdentifierError("given_name and family_name must not be empty.")
    return ChildIdentifier("name_and_birth_date", f"{_name(family)}|{_name(given)}|{birth}")


def identifiers_of(child_identity: Mapping[str, Any]) -> list[ChildIdentifier]:
    """Every identifier a case's ``child_identity`` section carries (it has name and birth date)."""
    found = [
        _name_and_birth_date(
            child_identity["given_name"],
            child_identity["family_name"],
            str(child_identity["date_of_birth"]),
        )
    ]
    if child_identity.get("nhs_number"):
        found.append(_nhs_number(child_identity["nhs_number"]))
    if child_identity.get("unique_pupil_number"):
        found.append(_upn(child_identity["unique_pupil_number"]))
    return found


def identifier_from(params: Mapping[str, str | None]) -> ChildIdentifier | None:
    """The one identifier a search names: an NHS number, a UPN, or name and birth date.

    None if the search names no child; IdentifierError if it names more than one way or only
    part of name and date of birth.
    """
    given = {name: (params.get(name) or "").strip() for name in IDENTIFIER_FIELDS}
    ways = [
        bool(given["nhs_number"]),
        bool(given["unique_pupil_number"]),
        any(given[name] for name in NAME_FIELDS),
    ]
    if sum(ways) > 1:
        raise IdentifierError(
            "Name the child one way: nhs_number, unique_pupil_number, or given_name, "
            "family_name and date_of_birth."
        )
    if given["nhs_number"]:
        return _nhs_number(given["nhs_number"])
    if given["unique_pupil_number"]:
        return _upn(given["unique_pupil_number"])
    if ways[2]:
        if not all(given[name] for name in NAME_FIELDS):
            raise IdentifierError("given_name, family_name and date_of_birth go together.")
        return _name_and_birth_date(*(given[name] for name in NAME_FIELDS))
    return None


class ChildKeys:
    """Turns identifiers into the keys the audit stores; the secret never leaves this object."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def key(self, identifier: ChildIdentifier) -> str:
        message = f"{identifier.kind}:{identifier.value}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def of_case(self, child_identity: Mapping[str, Any]) -> list[str]:
        return sorted(self.key(i) for i in identifiers_of(child_identity))


def without_child_keys(detail: Mapping[str, Any]) -> dict[str, Any]:
    """An audit record's detail as people are shown it.

    The keyed hashes stay in the store: whoever held them could link one child's transfers
    across boroughs without knowing who the child is.
    """
    return {name: value for name, value in detail.items() if name != "child_keys"}
