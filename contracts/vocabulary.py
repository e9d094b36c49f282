"""The fixed vocabularies that events, ISPs and judgements share.

Every section of a CAF case is exactly one data category, named by its key in ``case``; that is
what lets an ISP or a judgement say precisely what may leave the sending authority, and lets
minimisation drop a whole section without knowing its inner fields. ``contracts/README.md``
documents each term; a term is never renamed, only added.
"""

from enum import StrEnum

EVENT_TYPE = "caf.case-transfer.requested"
EVENT_DATASCHEMA = "urn:caf-relay:schema:case-transfer-requested:1"

# Order matters: it is the order categories are listed in envelopes and reports.
DATA_CATEGORIES: tuple[str, ...] = (
    "child_identity",
    "child_contact",
    "family_members",
    "development_of_child",
    "parents_and_carers",
    "family_and_environment",
    "education",
    "plan",
    "lead_professional",
)

# Categories that carry special category data (UK GDPR Art. 9): sharing them needs an Art. 9
# condition and a DPA 2018 Schedule 1 condition on the basis, not only an Art. 6 basis.
SPECIAL_CATEGORIES: frozenset[str] = frozenset({"development_of_child"})

SHARING_MODES: tuple[str, ...] = ("routine", "ad_hoc")

PURPOSES: tuple[str, ...] = (
    "continuity_of_early_help",
    "safeguarding",
    "school_admission",
)

DECISIONS: tuple[str, ...] = ("share", "not_share")

# refused: consent was refused and the decision respects it (nothing is shared);
# refused_overridden: consent was refused and the practitioner shares regardless.
CONSENT_STATUSES: tuple[str, ...] = ("obtained", "not_sought", "refused_overridden", "refused")

ARTICLE_6_BASES: tuple[str, ...] = tuple(f"6(1)({c})" for c in "abcdef")
ARTICLE_9_CONDITIONS: tuple[str, ...] = tuple(f"9(2)({c})" for c in "abcdefghij")

ISP_STATUSES: tuple[str, ...] = ("draft", "active", "suspended", "retired")

BASIS_KINDS: tuple[str, ...] = ("isp", "judgement")


class IspFinding(StrEnum):
    """Why an ISP was, or was not, the basis for a transfer: stable codes for the audit, a
    transfer's decision and the applicability answer (``contracts/api``)."""

    APPLICABLE = "applicable"
    NOT_ACTIVE = "not_active"
    SUSPENDED = "suspended"
    NOT_YET_EFFECTIVE = "not_yet_effective"
    EXPIRED = "expired"
    NOT_A_PARTY = "not_a_party"
    NOT_SIGNED = "not_signed"
    NOT_CONFIRMED = "not_confirmed"
    FLOW_NOT_COVERED = "flow_not_covered"
    PURPOSE_NOT_COVERED = "purpose_not_covered"
    AD_HOC_MODE = "ad_hoc_mode"
    # It covers the transfer, but shares none of the categories its case carries: under it the
    # envelope would carry an empty case, so for this transfer it is no ISP.
    SHARES_NOTHING_CARRIED = "shares_nothing_carried"
    OUTRANKED = "outranked"


class TransferState(StrEnum):
    """Where a transfer stands; its views and listings show it (``contracts/api``)."""

    AWAITING_JUDGEMENT = "awaiting_judgement"  # parked: no ISP applies, no judgement yet
    WITHHELD = "withheld"  # a practitioner decided not to share
    SIGNED = "signed"  # shared, and in the outbox
    DELIVERED = "delivered"
    FAILED = "failed"  # retries ran out, or none could help; an admin may redeliver
