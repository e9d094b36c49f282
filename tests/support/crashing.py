"""A poison message for tests: the real relay, except that processing raises on one message."""

from __future__ import annotations

from service.relay import Received, Relay
from service.senders import Sender


class CrashesOn:
    """Wraps the relay; processing any body containing ``marker`` fails, as a bug would."""

    def __init__(self, relay: Relay, marker: bytes) -> None:
        self._relay, self._marker = relay, marker
        self.attempts = 0

    def receive_many(
        self, messages: list[tuple[bytes, Sender]], **options
    ) -> list[Received | Exception]:
        """The real relay's outcomes, except a RuntimeError for each message with the marker."""
        processable = [m for m in messages if self._marker not in m[0]]
        outcomes = iter(self._relay.receive_many(processable, **options))
        return [self._crash() if self._marker in body else next(outcomes) for body, _ in messages]

    # The relay's own, so that it raises as the real one does, on the receive_many above.
    receive = Relay.receive

    def record_processing_failed(
        self, reason: str, sender: Sender, event_id: str | None = None
    ) -> None:
        self._relay.record_processing_failed(reason, sender, event_id)

    def readable_event_id(self, body: bytes) -> str | None:
        return self._relay.readable_event_id(body)

    def _crash(self) -> Exception:
        self.attempts += 1
        return RuntimeError("cannot process this message")
