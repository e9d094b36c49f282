"""Settings, read once from the environment; the README's configuration table lists them all.

With nothing set the service runs on the embedded default: a SQLite file, an in-process queue,
and a signing key and secrets key generated into the instance folder on first run.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from adapters.base import LONGEST_ATTEMPT_SECONDS
from adapters.urls import readable_url
from service import retry_settings
from service.domain.child_keys import ChildKeys
from service.domain.retry import RetryPolicy
from service.key_files import read_key_file
from service.logs import FORMATS, LEVELS
from service.secrets import SecretBox
from service.signing import MAX_PAYLOAD_CHARACTERS, KeyRing, read_retired_keys
from service.store.tables import WORKER_NAME_LENGTH

PREFIX = "CAF_RELAY_"
MIN_AUDIT_KEY_LENGTH = 32
# The worker stores up to half its prefetch window per transaction (``service.worker``). Batches
# of 32 rather than 16 took a sixth less CPU per event through the whole pipeline and delivered
# 13-42% more per second in paired bench runs on 2 cores; batches of 64 saved nothing more.
# A window of 64 events of at most ``MAX_EVENT_BYTES`` each holds 16 MiB unacknowledged; with
# events near that limit a worker's peak PSS was the same as with a window of 32 (about 115 MB,
# ``bench/relay.py --large``).
DEFAULT_PREFETCH = 64
DEFAULT_MAX_EVENT_BYTES = 256 * 1024
# The most a worker's window may hold of events it would take, against a target of 150 MB a
# worker: raising MAX_EVENT_BYTES alone, to its ceiling, would make it 512 MiB. What the window
# holds of larger bodies, refused only once delivered whole, the broker's max_message_size
# bounds (README, "Message size and the worker's memory"); 70 bodies of 1 MiB queued for a
# worker with the default window took it from 68 to 102 MB.
MAX_WINDOW_BYTES = 64 * 1024 * 1024
# An event's envelope is its base64url (4/3 of it) with the basis around it: half the payload
# the relay verifies (``signing``) leaves it room, so the relay can verify what it signs.
MAX_EVENT_BYTES_CEILING = MAX_PAYLOAD_CHARACTERS // 2
# Refused input is kept only for an operator to see what was refused and have the sender fix
# it; it may hold a child's whole case from a transfer that never happened. 30 days covers
# noticing a refusal (``caf_relay_events_rejected_total``), a month-end or a holiday, and the
# exchange with the sending authority; the refusal itself, with its reason, stays in the audit.
DEFAULT_DEAD_LETTER_RETENTION_DAYS = 30
# AMQP's basic.qos carries the prefetch count in 16 bits.
MAX_PREFETCH = 65535
# Threads a delivery loop runs, and of them one recipient's: far more than one process's
# interpreter lock and database connections keep busy, and a bound on what a claim asks the
# database for (16 items a free thread), which must fit its integers.
MAX_DELIVERY_THREADS = 1000
# A dead loop's claims wait out their lease before another loop takes them: a day is already
# long to leave a transfer so, and a lease of years would end past year 9999, failing every
# claim (or, past what a timedelta holds, start-up).
MAX_LEASE_SECONDS = 86400


@dataclass(frozen=True)
class Settings:
    """What the environment configures. What may hold a secret (URLs with passwords, keys)
    is kept out of its repr, so that no log or traceback that shows it shows them."""

    instance_dir: Path
    database_url: str = field(repr=False)
    broker_url: str | None = field(repr=False)
    signing_key_file: Path
    retired_keys_file: Path | None
    secrets_keys: tuple[str, ...] = field(repr=False)
    trusted_broker_users: tuple[str, ...]
    max_event_bytes: int
    prefetch: int
    log_level: str
    log_format: str
    worker_name: str
    delivery_threads: int
    delivery_per_recipient: int
    delivery_lease: timedelta
    retry: RetryPolicy
    audit_key: str | None = field(repr=False)
    judgement_retention_days: int
    dead_letter_retention_days: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(PREFIX + name, "").strip()
            return value or default

        instance = Path(get("INSTANCE_DIR", "instance")).resolve()
        max_event_bytes = _at_most(
            _positive_int(get("MAX_EVENT_BYTES", str(DEFAULT_MAX_EVENT_BYTES)), "MAX_EVENT_BYTES"),
            MAX_EVENT_BYTES_CEILING,
            "MAX_EVENT_BYTES",
        )
        prefetch = _at_most(
            _positive_int(get("PREFETCH", str(DEFAULT_PREFETCH)), "PREFETCH"),
            MAX_PREFETCH,
            "PREFETCH",
        )
        _check_window(prefetch, max_event_bytes)
        return cls(
            instance_dir=instance,
            database_url=_database_url(get("DATABASE_URL") or _sqlite_url(instance)),
            broker_url=_broker_url(get("BROKER_URL")),
            signing_key_file=Path(get("SIGNING_KEY_FILE", str(instance / "signing-key.pem"))),
            retired_keys_file=_optional_path(get("RETIRED_KEYS_FILE")),
            secrets_keys=tuple(
                k.strip() for k in (get("SECRETS_KEYS") or "").split(",") if k.strip()
            ),
            trusted_broker_users=tuple(
                u.strip() for u in (get("TRUSTED_BROKER_USERS") or "").split(",") if u.strip()
            ),
            max_event_bytes=max_event_bytes,
            prefetch=prefetch,
            log_level=_choice(get("LOG_LEVEL", "INFO").upper(), "LOG_LEVEL", LEVELS),
            log_format=_choice(get("LOG_FORMAT", "json"), "LOG_FORMAT", FORMATS),
            worker_name=_worker_name(get("WORKER_NAME", socket.gethostname())),
            delivery_threads=_threads(get("DELIVERY_THREADS", "8"), "DELIVERY_THREADS"),
            delivery_per_recipient=_threads(
                get("DELIVERY_PER_RECIPIENT", "2"), "DELIVERY_PER_RECIPIENT"
            ),
            delivery_lease=_lease(get("DELIVERY_LEASE_SECONDS", "120")),
            retry=retry_settings.from_environment(get),
            audit_key=get("AUDIT_KEY"),
            judgement_retention_days=_positive_int(
                get("JUDGEMENT_RETENTION_DAYS", "365"), "JUDGEMENT_RETENTION_DAYS"
            ),
            dead_letter_retention_days=_positive_int(
                get("DEAD_LETTER_RETENTION_DAYS", str(DEFAULT_DEAD_LETTER_RETENTION_DAYS)),
                "DEAD_LETTER_RETENTION_DAYS",
            ),
        )

    def keyring(self) -> KeyRing:
        """The signing key, generated into the instance folder only when none was configured,
        with the other keys it publishes: those it signed with before and, ahead of a rotation,
        the next."""
        default = self.signing_key_file == self.instance_dir / "signing-key.pem"
        retired = read_retired_keys(self.retired_keys_file) if self.retired_keys_file else ()
        return KeyRing.from_file(self.signing_key_file, create=default, retired=retired)

    def secret_box(self) -> SecretBox:
        if self.secrets_keys:
            return SecretBox(list(self.secrets_keys), f"{PREFIX}SECRETS_KEYS")
        return SecretBox.from_file(self.instance_dir / "secrets.key", create=True)

    def child_keys(self) -> ChildKeys:
        """The audit's child-key maker; its key is generated into the instance folder if unset.

        Every process of a deployment must use the same key, or searches by child miss records.
        """
        if self.audit_key:
            return ChildKeys(_audit_key(self.audit_key, f"{PREFIX}AUDIT_KEY"))
        path = self.instance_dir / "audit.key"
        made = read_key_file(path, "Audit key", lambda: f"{secrets.token_urlsafe(32)}\n".encode())
        return ChildKeys(_audit_key(made.decode().strip(), str(path)))


def _audit_key(key: str, where: str) -> bytes:
    """The key, if long enough to key child identifiers' hashes: a short one (an empty file
    from a ``touch``, say) would let anyone who can list identifiers find every child's."""
    if len(key) < MIN_AUDIT_KEY_LENGTH:
        raise ValueError(f"{where} must hold at least {MIN_AUDIT_KEY_LENGTH} characters.")
    return key.encode()


def _worker_name(name: str) -> str:
    """The name claims are stored under: on PostgreSQL a longer one would fail every claim."""
    if len(name) > WORKER_NAME_LENGTH:
        raise ValueError(
            f"{PREFIX}WORKER_NAME is at most {WORKER_NAME_LENGTH} characters, not {len(name)}."
        )
    return name


def _threads(value: str, name: str) -> int:
    return _at_most(_positive_int(value, name), MAX_DELIVERY_THREADS, name)


def _lease(value: str) -> timedelta:
    """A claim must outlast any attempt, or a second worker would send while the first still is."""
    seconds = _at_most(
        _positive_int(value, "DELIVERY_LEASE_SECONDS"), MAX_LEASE_SECONDS, "DELIVERY_LEASE_SECONDS"
    )
    if seconds <= LONGEST_ATTEMPT_SECONDS:
        raise ValueError(
            f"{PREFIX}DELIVERY_LEASE_SECONDS must be more than {LONGEST_ATTEMPT_SECONDS}, the"
            f" longest a delivery attempt can take; not {value!r}."
        )
    return timedelta(seconds=seconds)


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _sqlite_url(instance: Path) -> str:
    """The URL of the default SQLite file in the instance folder, its path escaped: a folder
    name's '?' would otherwise end the path there, and a '%41' be read as an 'A'."""
    return URL.create("sqlite", database=str(instance / "caf-relay.sqlite3")).render_as_string()


def _database_url(url: str) -> str:
    """``url``, with PostgreSQL's driver named: a plain ``postgresql://`` URL, as most tools
    write it, would otherwise ask SQLAlchemy for psycopg2, which is not installed."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            url = "postgresql+psycopg://" + url.removeprefix(plain)
    if url.startswith("sqlite:"):
        return _sqlite_file_url(url)
    if not url.startswith("postgresql+psycopg:"):
        raise ValueError(
            f"{PREFIX}DATABASE_URL must be a sqlite:/// or postgresql:// URL, not "
            f"{url.split(':', 1)[0]!r}."
        )
    # SQLAlchemy ends a password at its first '@': a second one puts the rest in the host, and
    # the driver's "cannot resolve host" error would quote it.
    try:
        host_in_place = "@" not in (make_url(url).host or "")
    except ValueError:  # a port that is not a number
        host_in_place = False
    if not host_in_place:
        raise _unreadable("DATABASE_URL")
    return url


def _sqlite_file_url(url: str) -> str:
    """``url``, if SQLAlchemy reads it as a SQLite file's. One with a host it would refuse only
    as the store opens, with a traceback; and one naming no file is a database in memory, which
    each process, and each thread of the web app, would open empty, and which is lost when it
    stops."""
    try:
        parsed = make_url(url)
        a_file = not parsed.host and parsed.database not in (None, "", ":memory:")
    except ArgumentError:
        a_file = False
    if not a_file:
        raise ValueError(
            f"{PREFIX}DATABASE_URL names a SQLite file as sqlite:///relative/path or"
            " sqlite:////absolute/path, with no host; sqlite:// alone would be a database in"
            " memory, empty in each process and lost when it stops."
        )
    return url


def _broker_url(url: str | None) -> str | None:
    if url is None:
        return None
    # pika reads the URL as urllib does: a password's '/', '?' or '#' ends the host part early,
    # leaving the password's start where the host and port are read, and pika's error about
    # that port would quote it.
    parts = readable_url(url)
    if parts is None or ("@" in url and "@" not in parts.netloc):
        raise _unreadable("BROKER_URL")
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"{PREFIX}BROKER_URL must be an amqp:// or amqps:// URL.")
    return url


# Where each reader of the URL ends a password: SQLAlchemy at its first '@', urllib (and so
# pika) at its first '/', '?' or '#'.
_UNREADABLE = {
    "DATABASE_URL": "its port must be a number, and a password's '@' percent-encoded (%40).",
    "BROKER_URL": "its port must be a number from 1 to 65535, and a password's '/', '?' and "
    "'#' percent-encoded (%2F, %3F, %23).",
}


def _unreadable(name: str) -> ValueError:
    return ValueError(f"{PREFIX}{name} cannot be read as a URL: {_UNREADABLE[name]}")


def _choice(value: str, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{PREFIX}{name} is one of {', '.join(choices)}, not {value!r}.")
    return value


def _at_most(number: int, ceiling: int, name: str) -> int:
    if number > ceiling:
        raise ValueError(f"{PREFIX}{name} is at most {ceiling}, not {number}.")
    return number


def _check_window(prefetch: int, max_event_bytes: int) -> None:
    """Refuse a prefetch window that could hold more than ``MAX_WINDOW_BYTES`` of events: a
    worker holds all of it in memory at once. Every process reads these settings, so the web
    app refuses them too, as one deployment's processes share them."""
    if prefetch * max_event_bytes > MAX_WINDOW_BYTES:
        mib = 1024 * 1024
        raise ValueError(
            f"{PREFIX}PREFETCH ({prefetch}) messages of {PREFIX}MAX_EVENT_BYTES"
            f" ({max_event_bytes}) each are {prefetch * max_event_bytes / mib:g} MiB in a"
            f" worker's window; at most {MAX_WINDOW_BYTES // mib} MiB: set {PREFIX}PREFETCH to"
            f" {MAX_WINDOW_BYTES // max_event_bytes} or less."
        )


def _positive_int(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{PREFIX}{name} must be a positive integer, not {value!r}.")
    return number
