"""``caf-relay dead-letter ...``: the embedded queue's dead letters, for an operator to find the
letter of a refusal the audit records (by the event id both name) and have it fixed.

On RabbitMQ the letters are in ``caf.dead``, each naming its event id in ``x-caf-event-id``;
the broker's own tools read them there.
"""

from __future__ import annotations

import click

from contracts.common import MAX_PAGE
from service.cli_common import load_services
from service.domain.isotime import iso


@click.group("dead-letter")
def dead_letter() -> None:
    """The embedded queue's dead letters: refused input, kept with its reason for a while."""


@dead_letter.command("list")
@click.option("--event-id", help="Only the letters of this event id, as its refusal names it.")
@click.option(
    "--page-size",
    type=click.IntRange(1, MAX_PAGE),
    default=50,
    show_default=True,
    help=f"Letters a page, at most {MAX_PAGE}.",
)
@click.option("--after", type=click.IntRange(0), default=0, help="The id a previous page ended at.")
def dead_letter_list(event_id: str | None, page_size: int, after: int) -> None:
    """Each letter's id, arrival, event id ('-' if none could be read) and reason, oldest
    first; never its body, which may hold a child's case."""
    services = load_services()
    try:
        page = services.store.dead_letters.page(event_id, after, page_size)
    finally:
        services.close()
    if not page.letters:
        which = f" with event id {event_id}" if event_id is not None else ""
        click.echo(
            f"No dead letters{which}; retention removes letters "
            f"{services.settings.dead_letter_retention_days} days after they arrived."
        )
    for letter in page.letters:
        click.echo(
            f"{letter.id:>8}  {iso(letter.received_at)}  {letter.event_id or '-'}  {letter.reason}"
        )
    if page.next_after is not None:
        click.echo(f"More: --after {page.next_after}")
