"""A poison message for tests: the real relay, except that processing raises on one message."""

from __future__ import annotations

from service.relay import Received, Relay, Sender


class CrashesOn:
    """Wraps the relay; any body containing ``marker`` makes ``receive`` raise, as a bug would."""

    def __init__(self, relay: Relay, marker: bytes) -> None:
        self._relay, self._marker = relay, marker
        self.attempts = 0

    def receive(self, body: bytes, *, sender: Sender) -> Received:
        if self._marker in body:
            self.attempts += 1
            raise RuntimeError("cannot process this message")
        return self._relay.receive(body, sender=sender)
