"""Rotating the signing key as README's "Rotating the signing key" says: the next key is
published ahead, so a receiver that keeps the JWKS for its max-age and does not fetch it again
for an unknown kid verifies the first envelopes the new key signs."""

import json

from service.bootstrap import Services, build_services
from service.config import Settings
from service.signing import verify
from service.web import create_app
from tests.support.cli import environment, runner


def _restarted(services: Services, **keys: str) -> Services:
    """The relay's processes as they start again with the signing-key settings ``keys``."""
    settings = Settings.from_env({**environment(services), **keys})
    return build_services(settings, clock=services.clock)


def _jwks(restarted: Services) -> dict:
    """What /.well-known/jwks.json serves, as a receiver caches it."""
    response = create_app(restarted).test_client().get("/.well-known/jwks.json")
    assert response.cache_control.max_age == 300
    return response.get_json()


def _kids(jwks: dict) -> list[str]:
    return [key["kid"] for key in jwks["keys"]]


def _signed_by(restarted: Services, note: str) -> tuple[str, str]:
    """What the restarted relay signs now, and the kid it verifies under at its own JWKS."""
    signed = restarted.keyring.sign({"note": note})
    return signed, verify(signed, _jwks(restarted))[0]["kid"]


def test_the_next_key_published_ahead_verifies_at_a_receiver_holding_the_jwks_cached_before(
    services, tmp_path
):
    run = runner(services)
    current_key = services.settings.signing_key_file
    current = services.keyring.kid
    assert _kids(_jwks(services)) == [current]

    # 1. The next key, made and published beside the current one, which still signs.
    next_key = tmp_path / "new-signing-key.pem"
    assert run("keys", "generate", str(next_key)).exit_code == 0
    published = tmp_path / "published.jwks.json"
    published.write_text(run("keys", "public", str(next_key)).output)
    ahead = _restarted(services, CAF_RELAY_RETIRED_KEYS_FILE=str(published))
    try:
        cached = _jwks(ahead)  # kept by a receiver for up to its max-age
        old_envelope, old_kid = _signed_by(ahead, "before the switch")
    finally:
        ahead.close()
    assert old_kid == current
    new = _kids(cached)[1]
    assert _kids(cached) == [current, new]

    # 2. Once the max-age has passed: the new key signs, the old one is added to the file (the
    # new one, also in it, is published once).
    old_public = json.loads(run("keys", "public", str(current_key)).output)["keys"]
    published.write_text(
        json.dumps({"keys": json.loads(published.read_text())["keys"] + old_public})
    )
    switched = _restarted(
        services,
        CAF_RELAY_SIGNING_KEY_FILE=str(next_key),
        CAF_RELAY_RETIRED_KEYS_FILE=str(published),
    )
    try:
        assert _kids(_jwks(switched)) == [new, current]
        new_envelope, new_kid = _signed_by(switched, "after the switch")
        assert verify(old_envelope, _jwks(switched))[1] == {"note": "before the switch"}
    finally:
        switched.close()
    assert new_kid == new
    # The receiver that has not fetched the JWKS since step 1 verifies the new key's envelope.
    assert verify(new_envelope, cached)[1] == {"note": "after the switch"}
