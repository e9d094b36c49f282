"""Whether this process can do its work now: the database answers and, if it uses one, the broker.

``/readyz`` reports each check with the reason it failed, for the operator reading it; a reason
names the error, never a URL's password (it is masked wherever it would appear). The broker's
answer is the app's ``BrokerProbe``'s last reading (``service.broker_probe``: one connection
kept, a reading at most every few seconds, none waited for longer than a few seconds), so
calling ``/readyz``, which needs no token, cannot have the relay open broker connections; the
database is asked at each call, where on SQLite the check takes the write lock and waits at most
``DATABASE_WRITE_SECONDS`` for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from adapters.pika_errors import socket_error
from service.broker_probe import BrokerReading
from service.store.store import Store

# How long the database check waits for SQLite's write lock: a probe must answer within its
# orchestrator's timeout (Kubernetes' default is 1 s, often raised to a few), where the busy
# timeout of ordinary calls is 30 s; a database no one can write to for this long is not ready.
DATABASE_WRITE_SECONDS = 2
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*):[^@\s]*@")


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"status": "ok" if self.ok else "failed", "detail": self.detail}


def check_database(store: Store) -> Check:
    try:
        store.ping(within=DATABASE_WRITE_SECONDS)
    except Exception as exc:  # whatever stops the database answering makes this not ready
        return Check(False, _reason(exc, store.url))
    return Check(True, "The database answers.")


def check_broker(reading: BrokerReading, broker_url: str) -> Check:
    if reading.error is not None:  # whatever kept the broker from answering makes this not ready
        return Check(False, _reason(reading.error, broker_url))
    return Check(True, "The broker answers.")


def _reason(exc: Exception, url: str) -> str:
    """The error, for a person, with the URL's password masked wherever it would appear. pika's
    refused connection says nothing of itself; the socket error under it does."""
    said = str(exc) or socket_error(exc) or "no reason given"
    text = _URL_PASSWORD.sub(r"\1:***@", f"{type(exc).__name__}: {said}")
    password = urlsplit(url).password
    if password:
        text = text.replace(password, "***").replace(unquote(password), "***")
    return text[:500]
