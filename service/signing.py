"""Signs envelopes as JWS (JSON serialization, Ed25519) and publishes the public keys.

The private key is read once at start-up and never leaves the process; receivers verify with the
JWKS served at ``/.well-known/jwks.json``, matched by ``kid`` (the key's RFC 7638 thumbprint), so
a rotated key can later be published beside the old one.

Envelopes are signed with ``alg: EdDSA``, which every JOSE library with OKP keys verifies;
RFC 9864's newer name ``Ed25519`` denotes the same signature and is accepted when verifying.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey
from joserfc.util import to_bytes

from contracts.envelope import ENVELOPE_JWS_TYP
from service.domain.canonical import canonical_json
from service.key_files import create_once

SIGNING_ALG = "EdDSA"
ACCEPTED_ALGS = ("EdDSA", "Ed25519")
# joserfc refuses a payload over 128,000 characters by default: less than the envelope of an
# event at the default size limit (about 350,000 in base64url). What it verifies here is an
# envelope, a checkpoint or a receipt, each bounded by the relay's own limits
# (``config.MAX_EVENT_BYTES_CEILING``).
MAX_PAYLOAD_CHARACTERS = 16 * 1024 * 1024
_REGISTRY = jws.JWSRegistry(algorithms=list(ACCEPTED_ALGS))
_REGISTRY.max_payload_length = MAX_PAYLOAD_CHARACTERS

warnings.filterwarnings("ignore", message="EdDSA is deprecated", module="joserfc")


class VerificationError(Exception):
    """The JWS is malformed, signed by an unknown key, or its signature does not verify."""


class KeyRing:
    """The service's signing key and every public key receivers may need to verify with: its
    own, and those of the keys it signed with before (``retired``), so that what they signed
    still verifies after a rotation."""

    def __init__(self, signing_key: OKPKey, retired: Sequence[OKPKey] = ()) -> None:
        self._signing_key = signing_key
        self.kid = signing_key.thumbprint()
        published = {key.thumbprint(): _published(key) for key in (signing_key, *retired)}
        self._jwks = {"keys": list(published.values())}

    @classmethod
    def from_file(
        cls, path: Path, *, create: bool = False, retired: Sequence[OKPKey] = ()
    ) -> KeyRing:
        """Load a PEM (PKCS#8) or JWK Ed25519 private key; with ``create``, make one if absent."""
        if create and not path.exists():
            write_new_key(path)
        try:
            data = path.read_bytes()
        except OSError as exc:  # a configured key that is missing is an error, not a new key
            raise ValueError(f"Signing key file {path} cannot be read: {exc.strerror}.") from exc
        try:
            key = OKPKey.import_key(json.loads(data) if data.lstrip().startswith(b"{") else data)
        except (JoseError, ValueError) as exc:
            raise ValueError(f"{path} does not hold an Ed25519 private key: {exc}") from exc
        if key.curve_name != "Ed25519" or not key.is_private:
            raise ValueError(f"{path} does not hold an Ed25519 private key.")
        return cls(key, retired)

    def jwks(self) -> dict[str, Any]:
        return self._jwks

    def sign(self, payload: dict[str, Any], typ: str = ENVELOPE_JWS_TYP) -> str:
        """The JWS, flattened JSON serialization, as the text that is sent and stored.

        ``typ`` says what is signed (an envelope, an audit checkpoint), so a verifier cannot be
        handed one in place of the other.
        """
        header = {"alg": SIGNING_ALG, "kid": self.kid, "typ": typ}
        signed = jws.serialize_json(
            {"protected": header}, canonical_json(payload), self._signing_key, registry=_REGISTRY
        )
        return json.dumps(signed, separators=(",", ":"))


def _published(key: OKPKey) -> dict[str, Any]:
    return {**key.as_dict(private=False), "kid": key.thumbprint(), "use": "sig", "alg": SIGNING_ALG}


def read_retired_keys(path: Path) -> list[OKPKey]:
    """The public keys in a JWKS file of keys the relay signed with before its current one.

    They are published beside the current key, so anything holding private key material is
    refused rather than published.
    """
    try:
        keys = [OKPKey.import_key(entry) for entry in json.loads(path.read_bytes())["keys"]]
    except (OSError, JoseError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{path} is not a JWKS of retired signing keys: {exc}") from exc
    if any(key.curve_name != "Ed25519" or key.is_private for key in keys):
        raise ValueError(f"{path} must hold public Ed25519 keys only.")
    return keys


def write_new_key(path: Path) -> bool:
    """Create a new Ed25519 private key as PEM, readable by its owner only, unless a file is
    already at ``path``; True if this call made it."""
    return create_once(path, OKPKey.generate_key("Ed25519").as_pem(private=True))


def verify(jws_text: str | bytes, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a JWS against a JWKS; return (protected header, payload) or raise."""
    try:
        document = json.loads(jws_text)
        keys = KeySet.import_key_set(jwks)
        result = jws.deserialize_json(document, keys, registry=_REGISTRY)
        payload = json.loads(to_bytes(result.payload))
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise VerificationError(f"Signature does not verify: {exc}") from exc
    return result.headers(), payload
