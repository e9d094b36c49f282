"""Who read a child's record: each subject access export, and each audit search that names a
child, is audited (``child_record_read``) before its answer is given.

In children's social care who looked at a child's record must be answerable. The record says
who read (``Principal.describe()``: never the token), how (``read``), how many transfers the
answer held, and names the child only by the keyed hash of the identifier asked with
(``child_keys``, as a transfer's ``received`` record does), never in clear. It belongs to no
one transfer, as a refused access does not: what was read may be several authorities'
transfers, so only a global admin (the operator) sees it, and finds it by action, or by action
and child (``AuditQuery``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.access import Principal
from service.domain.child_keys import CHILD_RECORD_READ

SUBJECT_ACCESS = "subject_access"
AUDIT_SEARCH = "audit_search"
# Appends one record in a transaction of its own: (event id, action, detail).
RecordAudit = Callable[[str | None, str, dict[str, Any]], None]


class ChildReads:
    def __init__(self, record_audit: RecordAudit) -> None:
        self._record_audit = record_audit

    def record(self, reader: Principal, read: str, child_key: str, transfers: int) -> None:
        """Audit that ``reader`` read the transfers (``transfers`` of them) of the child whose
        key is ``child_key``; raises if it cannot, so that nothing unaudited is shown."""
        detail = {
            "by": reader.describe(),
            "read": read,
            "child_keys": [child_key],
            "transfers": transfers,
        }
        self._record_audit(None, CHILD_RECORD_READ, detail)
