"""ISPs that have expired take back what is still to be sent under them: an expired agreement
does not apply (DESIGN rule 2), so its transfers wait for a practitioner's judgement.

Where the check lives, and why: in the outbox, in the transaction of every claim and every
redelivery, as a sweep that runs only when it may find something. An expiry, unlike a
suspension, is recorded by no one: it happens at a London midnight, or when a version recorded
already expired comes into force. So the outbox keeps the London day (of the caller's clock, as
intake computes it) and the reference version (moved by the register's triggers) that it last
swept for. While both hold, a claim costs one more read, of that one-row version table; when
either has moved, ``Expiries.sweep`` withdraws (``service.store.withdrawals.withdraw``) what is
waiting in the outbox or failed under every ISP whose version in force has expired, before the
claim looks at the outbox. So no claim or redelivery on a day hands out or puts back an
envelope under an ISP expired by then, and a failed transfer is parked as at a suspension.
Checking each claimed item instead would add a read of its transfer's basis to every claim and
leave failed transfers failed; a sweep in the delivery loop would leave a gap after midnight
until it ran, and the web app, which redelivers, runs no delivery loop.

As at a suspension, an envelope in flight (under a live lease: claimed, or handed over by
intake) is delivered as decided, and withdrawn only if its attempt then fails
(``withdraw_after_failing``, given ``Expired.endings``). An envelope signed under a version
since superseded counts by the ISP's version in force that day (``expired_in_force``): an
amendment in force that extends the date keeps it going, as an amendment leaves what was
signed before it to be delivered as decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from service.domain.basis import decision_day, expired_in_force
from service.domain.model import IspFinding, IspTerms
from service.store.isps import all_terms
from service.store.reference import reference_version
from service.store.withdrawals import Ending, Withdrawn, withdraw


@dataclass(frozen=True)
class Expired:
    """The ISPs expired on ``day`` with the register at ``reference``: by id, each one's
    version in force, which has expired."""

    day: date
    reference: int
    versions: dict[str, IspTerms]

    def endings(self) -> dict[str, Ending]:
        """What ended each expired ISP's basis, for ``withdraw``."""
        return {
            isp_id: Ending(isp.version, IspFinding.EXPIRED.value)
            for isp_id, isp in self.versions.items()
        }

    def reason(self, isp_id: str) -> str:
        """Why a transfer under ``isp_id`` was withdrawn, for its ``basis_withdrawn`` record."""
        isp = self.versions[isp_id]
        return f"ISP {isp.id} v{isp.version}, in force, expired on {isp.expires_on}."


class Expiries:
    """What has expired, and whether it has been swept, as of the last day and register seen
    by this process; a race between threads at worst sweeps twice, which finds nothing."""

    def __init__(self) -> None:
        self._known: Expired | None = None
        self._swept: tuple[date, int] | None = None
        self._latest: datetime | None = None

    def as_of(self, session: Session, now: datetime) -> Expired:
        """The ISPs expired on ``now``'s London day, or a later one this process has already
        seen, with the register as ``session`` sees it. An attempt that began before midnight
        and is recorded after a claim has swept the new day counts as of that day, so that its
        retry does not slip past the sweep."""
        now = self._latest = max(now, self._latest or now)
        day, reference = decision_day(now), reference_version(session)
        known = self._known
        if known is None or (known.day, known.reference) != (day, reference):
            expired = expired_in_force(all_terms(session), day)
            known = self._known = Expired(day, reference, {isp.id: isp for isp in expired})
        return known

    def sweep(self, session: Session, now: datetime) -> tuple[Expired, list[Withdrawn]] | None:
        """Withdraw, in ``session``, what is still to be sent under the ISPs expired as of
        ``now``, unless this process has done so for that day and register; return what
        expired and the transfers parked, to audit and, once committed, to mark ``swept``."""
        expired = self.as_of(session, now)
        if (expired.day, expired.reference) == self._swept:
            return None
        return expired, withdraw(session, expired.endings(), now) if expired.versions else []

    def swept(self, expired: Expired) -> None:
        """``sweep``'s transaction for ``expired`` has committed: no need to sweep again for
        that day and register."""
        self._swept = (expired.day, expired.reference)
