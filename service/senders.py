"""Who sent an AMQP message: the broker-checked ``user_id`` property, mapped to an authority.

RabbitMQ refuses a message whose ``user_id`` is not the user its connection logged in as, so
the property is proof of the publishing account. Each case system's account is registered for
its one authority (``caf-relay authority publisher``); a message without ``user_id``, or from an
account nobody registered, can send for no authority and is dead-lettered as ``forged_sender``.
Accounts in ``CAF_RELAY_TRUSTED_BROKER_USERS`` (an integration hub) may send for any authority.
"""

from __future__ import annotations

from collections.abc import Collection

from service.relay import Sender


class BrokerSenders:
    def __init__(self, trusted_users: Collection[str]) -> None:
        self._trusted = frozenset(trusted_users)

    def __call__(self, user_id: str | None) -> Sender:
        if not user_id:
            return Sender("A message with no user_id property")
        description = f"Broker user {user_id!r}"
        if user_id in self._trusted:
            return Sender(description, any_authority=True)
        # Its authority is looked up with the rest of what its batch is decided on.
        return Sender(description, broker_user=user_id)
