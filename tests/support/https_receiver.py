"""A receiving authority's HTTPS endpoint: a real TLS server on localhost with its own CA.

The CA and server certificate are made fresh with ``cryptography`` for each server, so the
https adapter is tested with verification on, exactly as in production, trusting only that CA.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support import examples


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)  # wall clock, to compare with stored times

    @property
    def authority(self) -> str:
        """The last path segment: tests give each authority a URL of its own."""
        return self.path.rsplit("/", 1)[1]

    @property
    def envelope(self) -> dict:
        """The envelope's payload, read without verifying (the tests that care verify)."""
        encoded = json.loads(self.body)["payload"]
        return json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, issuer, public_key, signing_key, *, ca: bool, names=()):
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


Answer = Callable[["ReceivedRequest"], tuple[int, dict[str, str], bytes]]


class HttpsReceiver:
    """Records every POST and answers it.

    The answer is the next status queued by ``respond_with``, else what the ``answer`` function
    returns (status, headers, body), else 202 with no body. With ``drip_seconds``, the body is
    sent a byte at a time, that long apart, as by a slow or hostile endpoint; with
    ``drip_headers`` too, the status line and headers are. With ``read_pause``, the request's
    body is read 64 KiB at a time, that long apart; ``handshake_pause`` holds back the TLS
    handshake. ``reason_phrase``, if set, follows the status in place of its usual phrase.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _certificate(
            _name("caf-relay test CA"),
            _name("caf-relay test CA"),
            ca_key.public_key(),
            ca_key,
            ca=True,
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = _certificate(
            _name("localhost"),
            ca_cert.subject,
            server_key.public_key(),
            ca_key,
            ca=False,
            names=(x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))),
        )
        self.ca_bundle = folder / "ca.pem"
        self.ca_bundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        (folder / "server.pem").write_bytes(
            server_cert.public_bytes(serialization.Encoding.PEM) + _pem_key(server_key)
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(folder / "server.pem")

        self.requests: list[ReceivedRequest] = []
        self.answer: Answer | None = None
        self.drip_seconds = 0.0
        self.drip_headers = False
        self.reason_phrase: str | None = None
        self.read_pause = 0.0
        self.handshake_pause = 0.0
        self._statuses: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # The handshake in each connection's own thread (``Handler.setup``), not in accept.
        self._server.socket = context.wrap_socket(
            self._server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://localhost:{self._server.server_address[1]}/caf/inbox"

    def respond_with(self, *statuses: int) -> None:
        with self._lock:
            self._statuses.extend(statuses)

    def wait_for(self, count: int, timeout: float = 20.0) -> list[ReceivedRequest]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} requests, got {len(self.requests)}")

    def __enter__(self) -> HttpsReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                time.sleep(receiver.handshake_pause)
                self.request.do_handshake()
                super().setup()

            def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
                length = int(self.headers.get("Content-Length", 0))
                body = self._read(length)
                if len(body) < length:
                    # The sender went away mid-request (a drill killed it): nothing arrived,
                    # as a real endpoint would see it.
                    self.close_connection = True
                    return
                request = ReceivedRequest(self.path, dict(self.headers), body)
                with receiver._lock:
                    receiver.requests.append(request)
                    queued = receiver._statuses.pop(0) if receiver._statuses else None
                if queued is not None:
                    status, headers, reply = queued, {}, b""
                elif receiver.answer is not None:
                    status, headers, reply = receiver.answer(request)
                else:
                    status, headers, reply = 202, {}, b""
                headers = {**headers, "Content-Length": str(len(reply))}
                if receiver.drip_headers:
                    self._drip(_head(status, headers) + reply)
                    return
                self.send_response(status, receiver.reason_phrase)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if receiver.drip_seconds:
                    self._drip(reply)
                else:
                    self.wfile.write(reply)

            def _read(self, length: int) -> bytes:
                if not receiver.read_pause:
                    return self.rfile.read(length)
                body = b""
                while len(body) < length and (
                    chunk := self.rfile.read1(min(65536, length - len(body)))
                ):
                    body += chunk
                    time.sleep(receiver.read_pause)
                return body

            def _drip(self, answer: bytes) -> None:
                for byte in answer:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(receiver.drip_seconds)

            def log_message(self, format: str, *args) -> None:
                """Keep the test output quiet."""

        return Handler


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def bearer_token_for(code: str) -> str:
    return f"token-for-{code}-0123456789"


def receive_everything_at(store, receiver: HttpsReceiver) -> None:
    """Point every authority's https adapter at ``receiver``, each at a path of its own."""
    for code in store.authorities():
        store.organisations.set_adapter(
            code,
            "https",
            {"url": f"{receiver.url}/{code}", "ca_bundle": str(receiver.ca_bundle)},
            {"bearer_token": bearer_token_for(code)},
        )


def event_ids(requests: list[ReceivedRequest]) -> list[str]:
    """The event id of each request's envelope, in the order they arrived."""
    return [request.envelope["event_id"] for request in requests]


@contextmanager
def https_recipients(services, folder: Path, *codes: str) -> Iterator[HttpsReceiver]:
    """A receiver for ``codes``, each at a path of its own, with the pan-London ISP in force."""
    services.store.add_isp(examples.pan_london_isp())
    with HttpsReceiver(folder / "tls") as running:
        for code in codes:
            services.store.organisations.set_adapter(
                code,
                "https",
                {"url": f"{running.url}/{code}", "ca_bundle": str(running.ca_bundle)},
                {"bearer_token": "a-token-of-sixteen-or-more"},
            )
        yield running
