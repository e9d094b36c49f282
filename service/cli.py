"""``caf-relay``: the command line for operators, and the entrypoint of every process."""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path

import click
import requests
from marshmallow import ValidationError

from adapters.registry import AdapterConfigError
from contracts.isp import IspSchema
from service.bootstrap import Services, build_services
from service.config import Settings
from service.signing import VerificationError, verify, write_new_key


def _services() -> Services:
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # pika narrates every connection step at INFO; its warnings and errors are what operators need.
    logging.getLogger("pika").setLevel(max(logging.WARNING, logging.getLogger().level))
    return build_services(settings)


@click.group()
def main() -> None:
    """caf-relay: moves CAF case transfers between authorities, lawfully based and signed."""


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
    consumer = Worker(
        services.settings.broker_url,
        services.relay,
        services.deliverer,
        services.settings.prefetch,
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: consumer.stop())
    try:
        consumer.run()
    finally:
        services.close()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
def serve(host: str, port: int) -> None:
    """Serve the HTTP API with Flask's server (use gunicorn in production, see docker/)."""
    from service.web import create_app

    services = _services()
    services.store.initialise()
    create_app(services).run(host=host, port=port)


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
def adapter_set(authority: str, adapter_type: str, settings_json: str, secrets_file) -> None:
    """Configure how AUTHORITY receives envelopes; secrets are stored encrypted."""
    services = _services()
    if authority not in services.store.authorities():
        raise click.UsageError(f"Unknown authority {authority}.")
    secrets = json.load(secrets_file) if secrets_file else {}
    try:
        services.store.set_adapter(authority, adapter_type, json.loads(settings_json), secrets)
    except AdapterConfigError as exc:
        raise click.ClickException(f"{exc} {json.dumps(exc.errors)}") from exc
    click.echo(f"{authority} now receives through the {adapter_type} adapter.")
    services.close()


@main.command("verify")
@click.argument("envelope", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--jwks", "jwks_source", required=True, help="A JWKS file, or its https URL.")
def verify_command(envelope: Path, jwks_source: str) -> None:
    """Verify a signed envelope against the relay's published keys."""
    try:
        if jwks_source.startswith(("https://", "http://")):
            response = requests.get(jwks_source, timeout=10)
            response.raise_for_status()
            jwks = response.json()
        else:
            jwks = json.loads(Path(jwks_source).read_text())
    except (OSError, ValueError, requests.RequestException) as exc:
        raise click.ClickException(f"Cannot read the JWKS from {jwks_source}: {exc}") from exc
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
