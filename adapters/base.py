"""The port every delivery adapter implements, and what it is given and returns."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from marshmallow import Schema

# The longest one delivery attempt may take, by any adapter, its receipt's read included: each
# bounds its own waits within it, and a delivery lease must be longer (``service.config``).
LONGEST_ATTEMPT_SECONDS = 90

# The media type of a JWS (RFC 7515; here in JSON serialization): what an envelope is sent as,
# and a signed receipt comes back as.
JOSE_JSON = "application/jose+json"


@dataclass(frozen=True)
class OutboundEnvelope:
    """A signed envelope ready to leave: the JWS text is sent exactly as signed."""

    envelope_id: str
    event_id: str
    to_authority: str
    jws: str
    sha256: str


@dataclass(frozen=True)
class Receipt:
    """What the receiving side said; ``detail`` goes to the audit, so it never holds secrets.

    ``signed`` is a receipt the recipient signed (a JWS naming the envelope id and digest), when
    it returned one; the relay checks it against the recipient's registered keys.
    """

    detail: str
    signed: str | None = None


class DeliveryFailed(Exception):
    """The envelope did not arrive. ``retryable`` says whether trying again may succeed."""

    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class Adapter(ABC):
    """One configured way of delivering to one authority.

    ``settings_schema`` validates the public part of the configuration and ``secrets_schema`` the
    secret part (tokens, passwords), which the store keeps encrypted and never shows again.
    """

    settings_schema: ClassVar[type[Schema]]
    secrets_schema: ClassVar[type[Schema]]
    # Settings naming a place on the relay's own disk, to write to or read from: only a global
    # admin may give them, or a borough's admin could have the relay write wherever its process
    # may, or learn which files it can read.
    operator_settings: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    @abstractmethod
    def from_config(cls, settings: dict[str, Any], secrets: dict[str, Any]) -> Adapter:
        """Build from configuration already validated by the two schemas."""

    @abstractmethod
    def deliver(self, envelope: OutboundEnvelope) -> Receipt:
        """Deliver once; raise ``DeliveryFailed`` when the envelope did not arrive."""

    def close(self) -> None:  # noqa: B027 - most adapters hold nothing to release
        """Release connections; the relay calls this when it replaces or stops the adapter."""


class GroupAdapter(Adapter):
    """An adapter that delivers several envelopes for its authority at once, for less than one
    at a time: the amqp adapter publishes them together and waits once for the broker's
    confirms. The relay hands it all a delivery group holds for the authority in one call (up
    to 16 in a worker); an adapter that is not one gets them one at a time, with the relay
    checking its lease between them."""

    @abstractmethod
    def deliver_group(
        self, envelopes: Sequence[OutboundEnvelope]
    ) -> list[Receipt | DeliveryFailed]:
        """Deliver each envelope once, in order, all within ``LONGEST_ATTEMPT_SECONDS``; for
        each, its receipt or why it did not arrive."""

    def deliver(self, envelope: OutboundEnvelope) -> Receipt:
        (outcome,) = self.deliver_group([envelope])
        if isinstance(outcome, DeliveryFailed):
            raise outcome
        return outcome
