"""Delivers by HTTPS POST of the JWS to a borough's endpoint, with a bearer token.

TLS verification cannot be switched off: a borough with a private CA gives its bundle to the
relay's operator instead, who installs it and sets ``ca_bundle``.
Whether a failure is worth retrying follows HTTP's meaning: timeouts, 408, 425, 429 and 5xx may
pass; any other 4xx, or a certificate the relay cannot trust, will not without someone acting.
A recipient may answer with a signed receipt (``application/jose+json``), handed on for the
relay to check against the recipient's registered keys.
"""

from __future__ import annotations

import ssl
from typing import Any

import requests
import urllib3
from marshmallow import Schema, ValidationError, fields, validate, validates

from adapters.base import (
    JOSE_JSON,
    LONGEST_ATTEMPT_SECONDS,
    Adapter,
    DeliveryFailed,
    OutboundEnvelope,
    Receipt,
)
from adapters.cutoff import Cutoff, CutoffAdapter, cutoff
from adapters.urls import readable_url

ENVELOPE_ID_HEADER = "X-Caf-Envelope-Id"
RETRYABLE_STATUS = frozenset({408, 425, 429})
MAX_RECEIPT_BYTES = 64 * 1024
# Together, the longest an attempt may take (the receipt's read is bounded by the read timeout).
MAX_CONNECT_SECONDS = 30
MAX_READ_SECONDS = LONGEST_ATTEMPT_SECONDS - MAX_CONNECT_SECONDS


class HttpsSettingsSchema(Schema):
    """Timeouts are capped so one attempt always ends within the relay's delivery lease."""

    url = fields.Url(
        required=True,
        schemes={"https"},
        require_tld=False,
        validate=validate.Length(max=2048),
        error_messages={"invalid": "Must be an https:// URL."},
        metadata={"description": "The borough's endpoint; https only."},
    )
    connect_timeout_seconds = fields.Float(
        load_default=5.0, validate=validate.Range(min=0.1, max=MAX_CONNECT_SECONDS)
    )
    read_timeout_seconds = fields.Float(
        load_default=30.0, validate=validate.Range(min=0.1, max=MAX_READ_SECONDS)
    )
    ca_bundle = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, max=1024),
        metadata={"description": "PEM file of CAs to trust instead of the system's."},
    )

    @validates("url")
    def _url_without_secrets(self, value: str, **_: Any) -> None:
        """The URL is shown in delivery details and the audit, which outlive any secret."""
        parts = readable_url(value)
        if parts is None:
            raise ValidationError("Must have a port (if any) from 1 to 65535.")
        if parts.username or parts.password:
            raise ValidationError("Must not hold credentials; give a bearer_token as a secret.")
        if parts.query or parts.fragment:
            raise ValidationError("Must have no query or fragment: a token there would be shown.")
        try:  # requests' own reading, which refuses a host name that is not valid IDNA 2008
            requests.PreparedRequest().prepare_url(value, None)
        except requests.RequestException as exc:
            raise ValidationError(f"Must be a URL the HTTPS client can use: {exc}") from exc


class HttpsSecretsSchema(Schema):
    # What an HTTP header can carry: a token read from a file with its line break, say, would
    # otherwise be refused by requests with an error quoting the whole header, token and all,
    # into the delivery's detail and the audit. No narrower (RFC 6750's b64token): systems
    # issue tokens holding '|', '!' or ':'.
    bearer_token = fields.String(
        required=True,
        validate=[
            validate.Length(min=16, max=4096),
            validate.Regexp(
                r"[\x21-\x7e]+\Z",
                error="Must be printable ASCII with no spaces or line breaks.",
            ),
        ],
    )


class HttpsAdapter(Adapter):
    settings_schema = HttpsSettingsSchema
    secrets_schema = HttpsSecretsSchema
    # A borough with a private CA gives its bundle to the relay's operator, who installs it.
    operator_settings = frozenset({"ca_bundle"})

    def __init__(
        self, url: str, token: str, timeout: tuple[float, float], verify: str | bool
    ) -> None:
        self._url = url
        self._timeout = timeout
        # Given per request: a Session's own ``verify`` loses to REQUESTS_CA_BUNDLE in the env.
        self._verify = verify
        self._session = requests.Session()
        self._session.mount("https://", CutoffAdapter())
        self._session.headers.update(
            {"Authorization": f"Bearer {token}", "Content-Type": JOSE_JSON}
        )

    @classmethod
    def from_config(cls, settings: dict[str, Any], secrets: dict[str, Any]) -> HttpsAdapter:
        return cls(
            settings["url"],
            secrets["bearer_token"],
            (settings["connect_timeout_seconds"], settings["read_timeout_seconds"]),
            settings["ca_bundle"] or True,
        )

    def deliver(self, envelope: OutboundEnvelope) -> Receipt:
        # The whole exchange within the two timeouts, which bound each wait only (see cutoff).
        with cutoff(sum(self._timeout)) as watching:
            try:
                response = self._session.post(
                    self._url,
                    data=envelope.jws.encode("utf-8"),
                    headers={ENVELOPE_ID_HEADER: envelope.envelope_id},
                    timeout=self._timeout,
                    verify=self._verify,
                    allow_redirects=False,
                    stream=True,
                )
            except requests.RequestException as exc:
                if watching.fired:  # whatever the cut made of it: a TLS error, mid-upload
                    raise DeliveryFailed(
                        f"No whole answer from {self._url} within {sum(self._timeout):g} s, its "
                        "connect and read timeouts together",
                        retryable=True,
                    ) from exc
                if isinstance(exc, requests.exceptions.SSLError) and not _cut_short(exc):
                    raise DeliveryFailed(
                        f"TLS verification of {self._url} failed: {_first_line(exc)}",
                        retryable=False,
                    ) from exc
                raise DeliveryFailed(
                    f"{type(exc).__name__} posting to {self._url}: {_first_line(exc)}",
                    retryable=True,
                ) from exc
            except OSError as exc:  # requests' own check of ca_bundle, before anything is sent
                raise DeliveryFailed(
                    f"The adapter's ca_bundle cannot be used: {_first_line(exc)}", retryable=False
                ) from exc
            with response:
                status = response.status_code
                if 200 <= status < 300:
                    # A whole status line says the recipient took it, even if the rest of the
                    # answer was cut off; only the receipt is then missing.
                    signed = _signed_receipt(response, watching)
                    cut = " (the rest of its answer cut off)" if watching.fired else ""
                    return Receipt(f"HTTP {status} from {self._url}{cut}", signed=signed)
        retryable = status in RETRYABLE_STATUS or status >= 500
        raise DeliveryFailed(
            f"HTTP {status} {response.reason} from {self._url}", retryable=retryable
        )

    def close(self) -> None:
        self._session.close()


def _signed_receipt(response: requests.Response, watching: Cutoff) -> str | None:
    """The body, when the recipient answered with a signed receipt (a JWS) of sensible size
    before the attempt's cutoff; a receipt larger or later is not read to its end."""
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type != JOSE_JSON:
        return None
    body = bytearray()
    try:
        # read1: what one read of the socket brings, so the size is checked between reads
        # (read and iter_content wait until their whole chunk has come).
        while chunk := response.raw.read1(4096, decode_content=True):
            body += chunk
            if len(body) > MAX_RECEIPT_BYTES:
                return None
    except (urllib3.exceptions.HTTPError, OSError):
        return None  # delivered all the same, as the status said; only the receipt is missing
    return None if watching.fired else body.decode("utf-8", errors="replace")


def _cut_short(exc: BaseException) -> bool:
    """Whether the TLS error under ``exc`` is the server closing the connection mid-exchange:
    one restarting, or a load balancer with no server behind it, may do that during the
    handshake. Like a reset connection, that may pass; a certificate the relay refused will
    not without someone acting."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLEOFError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
