"""Who handed an event in, and which authority they may send for.

Over HTTP that is the caller's token; the embedded queue may send for any authority. Over AMQP
it is the broker-checked ``user_id`` property, mapped to an authority: RabbitMQ refuses a
message whose ``user_id`` is not the user its connection logged in as, so the property is proof
of the publishing account. Each case system's account is registered for its one authority
(``caf-relay authority publisher``); a message without ``user_id``, or from an account nobody
registered, can send for no authority and is dead-lettered as ``forged_sender``. Accounts in
``CAF_RELAY_TRUSTED_BROKER_USERS`` (an integration hub) may send for any authority.

Whoever it was is named in the transfer's ``received`` audit record (``sent_by``), so that an
auditor can say which system or credential put a transfer in: the event's own ``source`` is
only what the publisher chose to write. The ``duplicate`` record of an event sent again, and the
``rejected`` record of one refused at intake, name their sender the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from service.store.reference import IntakeReference


@dataclass(frozen=True)
class Sender:
    """Who handed an event in, as its transport vouched for them (a token, a broker user).

    ``authority`` is the one authority they may send for; ``broker_user`` marks a broker
    account, which sends for the authority registered for it, read with the ISPs the batch is
    decided on (so a registration changed meanwhile has the batch decided again);
    ``any_authority`` marks a sender trusted to send for every authority (the embedded queue,
    an integration hub). ``sent_by`` is who it was, for the audit: how it came (``via``) and
    the broker account, or the token's id and name, never its secret.
    """

    description: str
    authority: str | None = None
    any_authority: bool = False
    broker_user: str | None = None
    sent_by: Mapping[str, str | bool | None] = field(default_factory=dict)

    def sends_for(self, reference: IntakeReference) -> str | None:
        if self.broker_user is not None:
            return reference.publishers.get(self.broker_user)
        return self.authority

    def may_send_for(self, authority: str, reference: IntakeReference) -> bool:
        return self.any_authority or self.sends_for(reference) == authority


EMBEDDED = Sender("the embedded queue", any_authority=True, sent_by={"via": "embedded"})


def token_sender(token_id: str | None, name: str, authority: str | None) -> Sender:
    """A caller of ``POST /api/v1/events``, named by its token's id and name."""
    return Sender(
        f"Token {token_id} ({name})",
        authority=authority,
        sent_by={"via": "http", "token_id": token_id, "token_name": name},
    )


class BrokerSenders:
    def __init__(self, trusted_users: Collection[str]) -> None:
        self._trusted = frozenset(trusted_users)

    def __call__(self, user_id: str | None) -> Sender:
        if not user_id:
            return Sender(
                "A message with no user_id property",
                sent_by={"via": "amqp", "broker_user": None},
            )
        description = f"Broker user {user_id!r}"
        sent_by = {"via": "amqp", "broker_user": user_id}
        if user_id in self._trusted:
            return Sender(description, any_authority=True, sent_by={**sent_by, "trusted": True})
        # Its authority is looked up with the rest of what its batch is decided on.
        return Sender(description, broker_user=user_id, sent_by=sent_by)
