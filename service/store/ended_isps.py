"""ISPs that have ended take back what is still to be sent under them: an agreement that has
expired, or whose version in force is suspended or retired, does not apply (DESIGN rules 1 and
2), so its transfers wait for a practitioner's judgement.

Recording a suspension or retirement withdraws what is waiting at once
(``service.store.withdrawals``). An expiry, unlike them, is recorded by no one: it happens at a
London midnight, or when a version recorded already expired comes into force. So the outbox
keeps the London day (of the caller's clock, as intake computes it) and the reference version
(moved by the register's triggers) that it last swept for. While both hold, a claim or a
redelivery costs one more read, of that one-row version table; when either has moved,
``EndedIsps.sweep`` withdraws (``withdrawals.withdraw``) what is waiting in the outbox or failed
under every ISP that has ended, before the claim looks at the outbox; a practitioner's
judgement on a transfer not parked sweeps too (``Outbox.withdraw_ended``), before it is refused
as decided. So no claim or redelivery on a day puts back an envelope under an ISP ended by
then, and a failed transfer is parked as at a suspension. A sweep in the delivery loop
instead would leave a gap after midnight until it ran, and the web app, which redelivers, runs
no delivery loop.

A sweep, or a suspension's own withdrawal, leaves alone an envelope in flight (under a live
lease: claimed, or handed over by intake), to be delivered as decided and withdrawn only if its
attempt then fails (``withdraw_after_failing``, given ``Ended.endings``); and it cannot see a
batch that intake stores after it, decided before it. So a claim also looks, while any ISP has
ended, at the ISP each item it is about to hand out was signed under (``Outbox.claim``): an item
whose holder died, or that such a batch added, is withdrawn then instead of sent. While no ISP
has ended, that costs nothing.

An envelope signed under a version since superseded counts by the ISP's version in force that
day (``ended_in_force``): an amendment in force that extends the date keeps it going, as an
amendment leaves what was signed before it to be delivered as decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from service.domain.basis import decision_day
from service.domain.isp_register import ended_in_force
from service.domain.model import IspFinding, IspTerms
from service.store.isps import all_terms
from service.store.reference import reference_version
from service.store.withdrawals import Ending, Withdrawn, withdraw


@dataclass(frozen=True)
class Ended:
    """The ISPs ended on ``day`` with the register at ``reference``: by id, each one's version
    in force, which has expired or binds no one."""

    day: date
    reference: int
    versions: dict[str, IspTerms]

    def endings(self) -> dict[str, Ending]:
        """What ended each ISP's basis, for ``withdraw``: its version in force, and that
        version's status, or ``expired``."""
        return {
            isp_id: Ending(
                isp.version, IspFinding.EXPIRED.value if isp.status == "active" else isp.status
            )
            for isp_id, isp in self.versions.items()
        }

    def reason(self, isp_id: str) -> str:
        """Why a transfer under ``isp_id`` was withdrawn, for its ``basis_withdrawn`` record."""
        isp = self.versions[isp_id]
        if isp.status == "active":
            return f"ISP {isp.id} v{isp.version}, in force, expired on {isp.expires_on}."
        return f"ISP {isp.id} v{isp.version}, in force, is {isp.status}."


class EndedIsps:
    """What has ended, and whether it has been swept, as of the last day and register seen by
    this process; a race between threads at worst sweeps twice, which finds nothing."""

    def __init__(self) -> None:
        self._known: Ended | None = None
        self._swept: tuple[date, int] | None = None
        self._latest: datetime | None = None

    def as_of(self, session: Session, now: datetime) -> Ended:
        """The ISPs ended on ``now``'s London day, or a later one this process has already
        seen, with the register as ``session`` sees it. An attempt that began before midnight
        and is recorded after a claim has swept the new day counts as of that day, so that its
        retry does not slip past the sweep."""
        now = self._latest = max(now, self._latest or now)
        day, reference = decision_day(now), reference_version(session)
        known = self._known
        if known is None or (known.day, known.reference) != (day, reference):
            ended = ended_in_force(all_terms(session), day)
            known = self._known = Ended(day, reference, {isp.id: isp for isp in ended})
        return known

    def sweep(self, session: Session, now: datetime) -> tuple[Ended, list[Withdrawn]]:
        """Withdraw, in ``session``, what is still to be sent under the ISPs ended as of
        ``now``, unless this process has done so for that day and register; return what ended
        and the transfers parked, to audit and, once committed, to mark ``swept``."""
        ended = self.as_of(session, now)
        if (ended.day, ended.reference) == self._swept or not ended.versions:
            return ended, []
        return ended, withdraw(session, ended.endings(), now)

    def swept(self, ended: Ended) -> None:
        """``sweep``'s transaction for ``ended`` has committed: no need to sweep again for that
        day and register."""
        self._swept = (ended.day, ended.reference)
