"""``caf-relay``: the command line for operators, and the entrypoint of every process."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import click
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from marshmallow import ValidationError

from adapters.registry import AdapterConfigError
from contracts.isp import IspSchema
from service.bootstrap import Services
from service.cli_audit import audit, retention
from service.cli_common import load_services as _services
from service.cli_common import read_jwks
from service.signing import VerificationError, verify, write_new_key


@click.group()
def main() -> None:
    """caf-relay: moves CAF case transfers between authorities, lawfully based and signed."""


main.add_command(audit)
main.add_command(retention)


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
    from service.demo import run_demo

    results = run_demo(out_dir, click.echo)
    if any("DOES NOT VERIFY" in r.signature for r in results):
        sys.exit(1)


@main.command()
def worker() -> None:
    """Consume case-transfer events from RabbitMQ (CAF_RELAY_BROKER_URL) until stopped."""
    from service.worker import Worker

    services = _services()
    if not services.settings.broker_url:
        raise click.UsageError(
            "CAF_RELAY_BROKER_URL is not set. Without a broker, events come in over HTTP "
            "(caf-relay serve) or through the embedded queue (caf-relay demo)."
        )
    services.store.initialise()
    delivery = services.delivery_loop()
    consumer = Worker(
        services.settings.broker_url,
        services.relay,
        prefetch=services.settings.prefetch,
        on_stored=delivery.wake,
    )
    _until_signalled(services, delivery, main_loop=consumer)


@main.command()
def deliver() -> None:
    """Deliver from the outbox only (the worker does this too); needs no broker."""
    services = _services()
    services.store.initialise()
    delivery = services.delivery_loop()
    _until_signalled(services, delivery, main_loop=delivery)


def _until_signalled(services: Services, delivery, main_loop) -> None:
    """Run ``main_loop`` here and the delivery loop beside it, until SIGTERM or SIGINT."""

    def stop(*_) -> None:
        main_loop.stop()
        delivery.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    beside = None
    if main_loop is not delivery:

        def deliver_or_stop_all() -> None:
            # A worker that takes events in but can no longer deliver must not go on unseen.
            try:
                delivery.run()
            finally:
                main_loop.stop()

        beside = threading.Thread(target=deliver_or_stop_all, name="delivery", daemon=True)
        beside.start()
    try:
        main_loop.run()
    finally:
        stop()
        if beside is not None:
            beside.join()
        services.close()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
def serve(host: str, port: int) -> None:
    """Serve the HTTP API with Flask's server, delivering from the outbox beside it.

    For trying out; in production run gunicorn and `caf-relay worker` or `caf-relay deliver`.
    """
    from service.web import create_app

    services = _services()
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
    """Migrate the database to the newest schema and seed the London authorities."""
    services = _services()
    services.store.initialise()
    click.echo(f"Database at the newest schema: {services.store.url.split('@')[-1]}")
    services.close()


@main.group()
def keys() -> None:
    """Signing keys."""


@keys.command("generate")
@click.argument("path", type=click.Path(path_type=Path))
def keys_generate(path: Path) -> None:
    """Write a new Ed25519 signing key (PEM, owner-readable only) to PATH."""
    if path.exists():
        raise click.UsageError(f"{path} exists; refusing to overwrite a signing key.")
    write_new_key(path)
    click.echo(f"Wrote a new Ed25519 signing key to {path}")


@main.group()
def isp() -> None:
    """Information Sharing Protocols."""


@isp.command("add")
@click.argument("file", type=click.File("r"))
def isp_add(file) -> None:
    """Validate an ISP (JSON, see contracts/README.md) and add it to the register."""
    document = json.load(file)
    try:
        IspSchema().load(document)
    except ValidationError as exc:
        raise click.ClickException(f"Not a valid ISP: {json.dumps(exc.messages)}") from exc
    services = _services()
    services.store.add_isp(document)
    click.echo(f"Added ISP {document['id']} v{document['version']}")
    services.close()


@main.group()
def adapter() -> None:
    """Receiving authorities' delivery adapters."""


@adapter.command("set")
@click.argument("authority")
@click.argument("adapter_type")
@click.option("--settings", "settings_json", default="{}", help="Settings as a JSON object.")
@click.option(
    "--secrets-file",
    type=click.File("r"),
    help="A JSON file with the secrets (tokens, passwords); '-' reads standard input.",
)
@click.option(
    "--retry",
    "retry_json",
    default=None,
    help='Retry overrides as JSON, e.g. {"max_attempts": 20, "max_age_seconds": 86400}.',
)
def adapter_set(
    authority: str, adapter_type: str, settings_json: str, secrets_file, retry_json: str | None
) -> None:
    """Configure how AUTHORITY receives envelopes; secrets are stored encrypted."""
    services = _services()
    if authority not in services.store.authorities():
        raise click.UsageError(f"Unknown authority {authority}.")
    secrets = json.load(secrets_file) if secrets_file else {}
    retry = json.loads(retry_json) if retry_json else None
    try:
        services.store.set_adapter(
            authority, adapter_type, json.loads(settings_json), secrets, retry
        )
    except AdapterConfigError as exc:
        raise click.ClickException(f"{exc} {json.dumps(exc.errors)}") from exc
    click.echo(f"{authority} now receives through the {adapter_type} adapter.")
    services.close()


@main.group()
def authority() -> None:
    """Authorities."""


@authority.command("keys")
@click.argument("code")
@click.argument("jwks_file", type=click.File("r"))
def authority_keys(code: str, jwks_file) -> None:
    """Register the public keys (a JWKS file) CODE signs its delivery receipts with."""
    try:
        jwks = KeySet.import_key_set(json.load(jwks_file)).as_dict(private=False)
    except (ValueError, JoseError) as exc:
        raise click.ClickException(f"Not a usable JWKS: {exc}") from exc
    services = _services()
    if code not in services.store.authorities():
        raise click.UsageError(f"Unknown authority {code}.")
    services.store.set_authority_keys(code, jwks)
    click.echo(f"{code}: {len(jwks['keys'])} receipt key(s) registered.")
    services.close()


@main.group()
def transfer() -> None:
    """Transfers."""


@transfer.command("redeliver")
@click.argument("event_id")
def transfer_redeliver(event_id: str) -> None:
    """Put a failed transfer back in the outbox, to be delivered again with the same envelope."""
    services = _services()
    if not services.store.outbox.redeliver(event_id, services.clock(), requested_by="cli"):
        view = services.store.transfer_view(event_id)
        state = view["state"] if view else "unknown"
        raise click.ClickException(f"{event_id} is {state}; only a failed transfer is redelivered.")
    click.echo(f"{event_id} is back in the outbox.")
    services.close()


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
