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

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OKPKey
from joserfc.util import to_bytes

from contracts.envelope import ENVELOPE_JWS_TYP
from service.documents import read_json
from service.domain.canonical import canonical_json
from service.key_files import create_once, read_key_file

SIGNING_ALG = "EdDSA"
# What an Ed25519 public key is (RFC 8037); the private key adds ``d``.
PUBLIC_PARAMETERS = ("kty", "crv", "x")
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
    own, and those published beside it (``retired``, named after the setting that holds them):
    the keys it signed with before, so that what they signed still verifies after a rotation,
    and, ahead of a rotation, the next key, so that receivers hold it before it signs."""

    def __init__(self, signing_key: OKPKey, retired: Sequence[OKPKey] = ()) -> None:
        self._signing_key = signing_key
        self.kid = signing_key.thumbprint()
        published = {key.thumbprint(): _published(key) for key in (signing_key, *retired)}
        self._jwks = {"keys": list(published.values())}

    @classmethod
    def from_file(
        cls, path: Path, *, create: bool = False, retired: Sequence[OKPKey] = ()
    ) -> KeyRing:
        """Load a PEM (PKCS#8) or JWK Ed25519 private key; with ``create``, make one if absent
        (a configured key that is missing is an error, not a new key)."""
        data = read_key_file(path, "Signing key", _new_key_pem if create else None)
        try:
            key = _private_key(data)
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
        # Its members are base64url text, which orjson writes as the standard library's compact
        # form does, about twenty times as fast: the standard library's escaping of the payload
        # was about 2% of intake's instructions.
        return orjson.dumps(signed).decode()


def _private_key(data: bytes) -> OKPKey:
    """The key in a PEM or JWK file. Of a JWK, only the key itself counts: what it says of its
    use (``alg``, ``use``, ``key_ops``) would otherwise stop the relay signing as it does (as
    ``alg: Ed25519`` would), or be published and stop receivers verifying (as ``key_ops: sign``
    would)."""
    if not data.lstrip().startswith(b"{"):
        return OKPKey.import_key(data)
    return OKPKey.import_key(_parameters(json.loads(data), (*PUBLIC_PARAMETERS, "d")))


def _published(key: OKPKey) -> dict[str, Any]:
    """The public key as receivers verify with it: for signatures, as the relay signs."""
    public = _parameters(key.as_dict(private=False), PUBLIC_PARAMETERS)
    return {**public, "kid": key.thumbprint(), "use": "sig", "alg": SIGNING_ALG}


def _parameters(jwk: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {name: value for name, value in jwk.items() if name in names}


def read_retired_keys(path: Path) -> list[OKPKey]:
    """The public keys in the JWKS file ``CAF_RELAY_RETIRED_KEYS_FILE`` names: the keys the
    relay signed with before its current one and, ahead of a rotation, the next one.

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
    already at ``path``; True if this call made it. A ``ValueError`` says why it cannot be."""
    try:
        return create_once(path, _new_key_pem())
    except OSError as exc:
        raise ValueError(f"Signing key file {path} cannot be written: {exc.strerror}.") from exc


def _new_key_pem() -> bytes:
    return OKPKey.generate_key("Ed25519").as_pem(private=True)


def verify(jws_text: str | bytes, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Check a JWS against a JWKS; return (protected header, payload) or raise."""
    try:
        document = _flattened(read_json(jws_text))
        keys = KeySet.import_key_set(jwks)
        result = jws.deserialize_json(document, keys, registry=_REGISTRY)
        payload = read_json(to_bytes(result.payload))
    except (JoseError, ValueError, TypeError, KeyError, RecursionError) as exc:
        raise VerificationError(f"Signature does not verify: {exc}") from exc
    return result.headers(), payload


def _flattened(document: Any) -> dict[str, Any]:
    """``document`` in the flattened JSON serialization, which joserfc's result gives one
    header for. The general serialization with a single signature is the same JWS (RFC 7515,
    7.2.2), as a recipient's library may sign its receipt; with several, which signer vouches
    for the payload would be a guess. Anything else that is not a JWS is refused here, as
    joserfc would fail on it with an ``AttributeError``."""
    if not isinstance(document, dict) or not isinstance(document.get("payload"), str):
        raise ValueError("not a JWS in JSON serialization (an object with a text payload).")
    signatures = document.get("signatures")
    if signatures is None:
        return document
    if not isinstance(signatures, list) or not all(isinstance(s, dict) for s in signatures):
        raise ValueError("its signatures are not a list of objects.")
    if len(signatures) != 1:
        raise ValueError(f"it holds {len(signatures)} signatures; one is expected.")
    (signature,) = signatures
    return {
        **_parameters(signature, ("protected", "header", "signature")),
        "payload": document["payload"],
    }
