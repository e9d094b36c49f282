"""Keeps only the case sections the basis permits: necessary and proportionate sharing.

Each top-level key of a case is one data category, so minimising is keeping or dropping whole
sections; the categories dropped are listed, so the receiver and the audit both see what was
held back. The relay keeps no more than it sends: once a transfer's basis is decided, its
stored event is the one forwarded (``with_case``), and a transfer withheld keeps no case at all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.vocabulary import DATA_CATEGORIES


@dataclass(frozen=True)
class Minimised:
    case: dict[str, Any]
    shared: tuple[str, ...]
    withheld: tuple[str, ...]


def minimise(case: Mapping[str, Any], permitted: frozenset[str]) -> Minimised:
    present = [category for category in DATA_CATEGORIES if category in case]
    shared = tuple(category for category in present if category in permitted)
    withheld = tuple(category for category in present if category not in permitted)
    return Minimised({category: case[category] for category in shared}, shared, withheld)


def also_withheld(minimised: Minimised, categories: Collection[str]) -> Minimised:
    """``minimised`` listing ``categories`` as withheld too: withheld before it, by a basis
    since withdrawn, so no longer in the case it minimised."""
    withheld = set(minimised.withheld) | (set(categories) - set(minimised.shared))
    ordered = tuple(category for category in DATA_CATEGORIES if category in withheld)
    return Minimised(minimised.case, minimised.shared, ordered)


def with_case(event: Mapping[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    """``event`` carrying ``case`` in place of its own: the event forwarded, and kept."""
    return {**event, "data": {**event["data"], "case": case}}
