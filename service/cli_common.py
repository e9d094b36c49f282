"""What every ``caf-relay`` command group shares: services from the environment, a JWKS."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import requests

from service.bootstrap import Services, build_services
from service.config import Settings


def load_services() -> Services:
    settings = Settings.from_env()
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # pika narrates every connection step at INFO; its warnings and errors are what operators need.
    logging.getLogger("pika").setLevel(max(logging.WARNING, logging.getLogger().level))
    return build_services(settings)


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def read_jwks(source: str) -> dict[str, Any]:
    """A JWKS from a file or an https URL, or a ClickException saying why not.

    Plain http only to this machine: keys fetched over the network unprotected could be
    anyone's, and would make a forged envelope or checkpoint look genuine.
    """
    if source.startswith("http://") and urlsplit(source).hostname not in LOCAL_HOSTS:
        raise click.ClickException(f"Fetch the JWKS over https, not {source}.")
    try:
        if source.startswith(("https://", "http://")):
            response = requests.get(source, timeout=10)
            response.raise_for_status()
            return response.json()
        return json.loads(Path(source).read_text())
    except (OSError, ValueError, requests.RequestException) as exc:
        raise click.ClickException(f"Cannot read the JWKS from {source}: {exc}") from exc
