"""``caf-relay``: the command line for operators, and the entrypoint of every process."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from contracts.envelope import ENVELOPE_JWS_TYP
from service.bootstrap import Services
from service.cli_audit import audit, retention
from service.cli_authorities import adapter, authority, secrets
from service.cli_common import load_services as _services
from service.cli_common import read_jwks
from service.cli_dead_letters import dead_letter
from service.cli_isps import isp
from service.cli_tokens import token
from service.cli_transfers import judgement, transfer
from service.signing import KeyRing, VerificationError, verify, write_new_key
from service.store.engine import (
    SCHEMA_REVISION,
    MigrationFailed,
    SchemaBehind,
    SchemaTooNew,
    StoreUnavailable,
)

log = logging.getLogger(__name__)


class _Commands(click.Group):
    """Every command: a database that cannot be reached, whose schema a newer release made, or
    that has yet to be migrated, or a migration that fails, is a one-line error (exit 1)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (StoreUnavailable, SchemaTooNew, SchemaBehind, MigrationFailed) as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=_Commands)
def main() -> None:
    """caf-relay: moves CAF case transfers between authorities, lawfully based and signed."""


for group in (
    audit,
    retention,
    dead_letter,
    authority,
    adapter,
    secrets,
    isp,
    transfer,
    judgement,
    token,
):
    main.add_command(group)


@main.command()
@click.option(
    "--dir",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("demo-output"),
    show_default=True,
    help="Folder for the demo's database, keys and delivered envelopes.",
)
def demo(out_dir: Path) -> None:
    """Run the example events through the embedded default and show what happened."""
    from service.demo import DemoRefused, run_demo

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _interrupt)
    try:
        results = run_demo(out_dir, click.echo)
    except DemoRefused as exc:
        raise click.ClickException(str(exc)) from exc
    except _Interrupted as stopped:
        # What was published is only in memory until stored: say the folder is part of a run.
        click.echo(
            f"Interrupted: the demo stopped part-way, so {out_dir.resolve()} holds only part of "
            "a run. Run it again to start afresh.",
            err=True,
        )
        sys.exit(128 + stopped.signum)
    if any("DOES NOT VERIFY" in r.signature for r in results):
        sys.exit(1)


class _Interrupted(BaseException):
    """SIGINT or SIGTERM during the demo: a BaseException, as KeyboardInterrupt, so that the
    demo's clean-up runs and nothing on the way takes it for an error to handle."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _interrupt(signum: int, _frame: object) -> None:
    raise _Interrupted(signum)


@main.command()
def worker() -> None:
    """Consume case-transfer events from RabbitMQ (CAF_RELAY_BROKER_URL) until stopped."""
    from service.delivery_process import DeliveryProcess
    from service.worker import Worker

    services = _services(migrating=True)
    if not services.settings.broker_url:
        raise click.UsageError(
            "CAF_RELAY_BROKER_URL is not set. Without a broker, events come in over HTTP "
            "(caf-relay serve) or through the embedded queue (caf-relay demo)."
        )
    services.store.initialise()
    services.store.drop_connections()  # none of them goes with the fork
    delivery = DeliveryProcess(services.settings, clock=services.clock)
    delivery.start()
    consumer = Worker(
        services.settings.broker_url,
        services.relay,
        senders=services.senders,
        prefetch=services.settings.prefetch,
        delivery=delivery,
    )
    _until_signalled(services, delivery, main_loop=consumer)


@main.command()
def deliver() -> None:
    """Deliver from the outbox only (the worker does this too); needs no broker."""
    services = _services(migrating=True)
    services.store.initialise()
    delivery = services.delivery_loop()
    _until_signalled(services, delivery, main_loop=delivery)


def _until_signalled(services: Services, delivery, main_loop) -> None:
    """Run ``main_loop`` here and ``delivery`` beside it, until SIGTERM or SIGINT.

    A signal stops the main loop first; delivery is stopped once it has returned, so that what
    the main loop stored in its last moments is handed over, not left leased. A worker that
    takes events in but can no longer deliver stops too, and exits with status 1.
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: main_loop.stop())
    beside, failed = None, threading.Event()
    if main_loop is not delivery:

        def deliver_or_stop_all() -> None:
            try:
                delivery.run()
            except Exception:
                log.exception("delivery stopped; stopping the worker")
                failed.set()
            finally:
                main_loop.stop()

        beside = threading.Thread(target=deliver_or_stop_all, name="delivery", daemon=True)
        beside.start()
    try:
        main_loop.run()
    finally:
        main_loop.stop()
        delivery.stop()
        if beside is not None:
            beside.join()
        services.close()
    if failed.is_set():
        sys.exit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
def serve(host: str, port: int) -> None:
    """Serve the HTTP API with Flask's server, delivering from the outbox beside it.

    For trying out; in production run gunicorn and `caf-relay worker` or `caf-relay deliver`.
    """
    from service.web import create_app

    services = _services(migrating=True)
    services.store.initialise()
    delivery = services.delivery_loop()
    threading.Thread(target=delivery.run, name="delivery", daemon=True).start()
    try:
        create_app(services).run(host=host, port=port)
    finally:
        delivery.stop()


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema and seed the London authorities.

    It prints a line for each migration it applies, then the revision the schema is at and the
    database's location; Alembic's own narration at INFO (plugins set up, DDL assumed
    transactional) is left out, not its warnings.
    """
    services = _services(migrating=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    applied = services.store.initialise()
    for migration in applied:
        click.echo(f"Applied {migration.revision}: {migration.title}")
    where = services.store.location
    if applied:
        count = _migrations(len(applied))
        click.echo(f"Database at the newest schema ({SCHEMA_REVISION}), {count} applied: {where}")
    else:
        click.echo(
            f"Database already at the newest schema ({SCHEMA_REVISION}), nothing to apply: {where}"
        )
    services.close()


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Undo the migrations without asking first.")
def db_downgrade(revision: str, yes: bool) -> None:
    """Take the database's schema back to REVISION, before rolling back to the earlier release
    whose schema that is (the one its processes name when they refuse the database).

    Run it with this release, the one that migrated the database, with every process stopped:
    the earlier release does not know how to undo this one's migrations. It lists each migration
    it would undo, newest first, with what undoing it loses, and asks before undoing them, in
    one transaction: one that fails leaves the database as it was.
    """
    services = _services(migrating=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        due = services.store.downgrade_plan(revision)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'REVISION'") from exc
    where = services.store.location
    if not due:
        click.echo(f"Database already at revision {revision}, nothing to undo: {where}")
        services.close()
        return
    for migration in due:
        click.echo(f"Undo {migration.revision}: {migration.title}")
        if migration.downgrading:
            click.echo(f"  {migration.downgrading}")
    if not yes:
        click.confirm(f"Undo {_migrations(len(due))}, back to {revision}?", abort=True)
    undone = services.store.downgrade(revision)
    click.echo(f"Database at revision {revision}, {_migrations(len(undone))} undone: {where}")
    services.close()


def _migrations(count: int) -> str:
    return f"{count} migration{'s' if count > 1 else ''}"


@main.group()
def keys() -> None:
    """Signing keys."""


@keys.command("generate")
@click.argument("path", type=click.Path(path_type=Path))
def keys_generate(path: Path) -> None:
    """Write a new Ed25519 signing key (PEM, owner-readable only) to PATH."""
    try:
        written = write_new_key(path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if not written:
        raise click.UsageError(f"{path} exists; refusing to overwrite a signing key.")
    click.echo(f"Wrote a new Ed25519 signing key to {path}")


@keys.command("public")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def keys_public(path: Path) -> None:
    """Print the public key of the signing key in PATH as a JWKS: to publish it in
    CAF_RELAY_RETIRED_KEYS_FILE, ahead of its signing or once another key signs instead."""
    try:
        keyring = KeyRing.from_file(path)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(keyring.jwks(), indent=2))


@main.command("verify")
@click.argument("envelope", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--jwks", "jwks_source", required=True, help="A JWKS file, or its https URL.")
def verify_command(envelope: Path, jwks_source: str) -> None:
    """Verify a signed envelope against the relay's published keys."""
    jwks = read_jwks(jwks_source)
    try:
        header, payload = verify(envelope.read_bytes(), jwks)
    except VerificationError as exc:
        raise click.ClickException(str(exc)) from exc
    if header.get("typ") != ENVELOPE_JWS_TYP:
        raise click.ClickException(
            f"The signature verifies, but this is not an envelope: its typ is "
            f"{header.get('typ')!r}, not {ENVELOPE_JWS_TYP!r} (an adapter test's, or a checkpoint)."
        )
    basis = payload["basis"]
    described = (
        f"ISP {basis['isp']['id']} v{basis['isp']['version']}"
        if basis["kind"] == "isp"
        else f"judgement of {basis['judgement']['practitioner']['name']}"
    )
    click.echo(
        f"Signature verifies (alg {header['alg']}, kid {header['kid']}).\n"
        f"Envelope {payload['envelope_id']} for event {payload['event_id']}\n"
        f"  {payload['from']['name']} -> {payload['to']['name']}, basis: {described}\n"
        f"  shared: {', '.join(payload['data_categories']['shared']) or 'nothing'}\n"
        f"  withheld: {', '.join(payload['data_categories']['withheld']) or 'nothing'}"
    )
