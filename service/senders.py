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

from collections.abc import Collection
from dataclasses import dataclass

from service.store.reference import IntakeReference


@dataclass(frozen=True)
class Sender:
    """Who handed an event in, as its transport vouched for them (a token, a broker user).

    ``via`` is how it came: ``amqp`` (a broker account, the usual way), ``http`` (a token) or
    ``embedded``. ``authority`` is the one authority a token may send for; ``broker_user`` is
    the broker account, which sends for the authority registered for it, read with the ISPs
    the batch is decided on (so a registration changed meanwhile has the batch decided again);
    ``any_authority`` marks a sender trusted to send for every authority (the embedded queue,
    an integration hub). ``sent_by`` says all this for the audit.
    """

    description: str
    authority: str | None = None
    any_authority: bool = False
    broker_user: str | None = None
    via: str = "amqp"
    token_id: str | None = None
    token_name: str | None = None

    def sends_for(self, reference: IntakeReference) -> str | None:
        if self.broker_user is not None:
            return reference.publishers.get(self.broker_user)
        return self.authority

    def may_send_for(self, authority: str, reference: IntakeReference) -> bool:
        return self.any_authority or self.sends_for(reference) == authority

    @property
    def sent_by(self) -> dict[str, str | bool | None]:
        """Who it was, for the audit: how it came and the broker account (and whether it is
        trusted), or the token's id and name, never its secret."""
        if self.via == "http":
            return {"via": "http", "token_id": self.token_id, "token_name": self.token_name}
        if self.via != "amqp":
            return {"via": self.via}
        trusted = {"trusted": True} if self.any_authority else {}
        return {"via": "amqp", "broker_user": self.broker_user, **trusted}


EMBEDDED = Sender("the embedded queue", any_authority=True, via="embedded")


def token_sender(token_id: str | None, name: str, authority: str | None) -> Sender:
    """A caller of ``POST /api/v1/events``, named by its token's id and name."""
    return Sender(
        f"Token {token_id} ({name})",
        authority=authority,
        via="http",
        token_id=token_id,
        token_name=name,
    )


class BrokerSenders:
    def __init__(self, trusted_users: Collection[str]) -> None:
        self._trusted = frozenset(trusted_users)

    def __call__(self, user_id: str | None) -> Sender:
        if not user_id:
            return Sender("A message with no user_id property")
        return Sender(
            f"Broker user {user_id!r}",
            any_authority=user_id in self._trusted,
            broker_user=user_id,
        )
