"""Envelopes are signed so that any standard JOSE library verifies them, and forgeries fail."""

import base64
import json
import stat

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc import jws as joserfc_jws
from joserfc.jwk import KeySet, OKPKey
from jwcrypto import jwk, jws

from service.authorities import TEST_JWS_TYP
from service.cli import main
from service.config import DEFAULT_MAX_EVENT_BYTES
from service.signing import KeyRing, VerificationError, read_retired_keys, verify


@pytest.fixture
def keyring(tmp_path):
    return KeyRing.from_file(tmp_path / "signing-key.pem", create=True)


def test_jwcrypto_verifies_what_the_relay_signs(keyring):
    signed = keyring.sign({"envelope_id": "e", "n": 1})
    token = jws.JWS()
    token.deserialize(signed)
    token.verify(jwk.JWK(**keyring.jwks()["keys"][0]))
    assert json.loads(token.payload) == {"envelope_id": "e", "n": 1}
    assert token.jose_header["kid"] == keyring.kid
    assert token.jose_header["alg"] == "EdDSA"


def test_the_jws_text_is_the_standard_librarys_compact_json_of_its_members(keyring):
    # What is stored, sent and hashed into the audit: written by orjson, it must stay the text
    # the standard library wrote, so that envelopes signed before and after read alike.
    signed = keyring.sign({"envelope_id": "e", "note": 'é\u2028"\\', "n": 1.5e-05})
    assert signed == json.dumps(json.loads(signed), separators=(",", ":"))
    assert set(json.loads(signed)) == {"payload", "protected", "signature"}


def test_an_envelope_of_an_event_at_the_size_limit_verifies_here_and_with_joserfc(keyring):
    envelope = {"envelope_id": "e", "event": {"note": "é" * DEFAULT_MAX_EVENT_BYTES}}
    signed = keyring.sign(envelope)
    assert len(json.loads(signed)["payload"]) > 128_000  # joserfc's default limit
    assert verify(signed, keyring.jwks())[1] == envelope
    # A receiver on joserfc allows EdDSA and a longer payload, as contracts/README.md says.
    registry = joserfc_jws.JWSRegistry(algorithms=["EdDSA"])
    registry.max_payload_length = 1024 * 1024
    keys = KeySet.import_key_set(keyring.jwks())
    verified = joserfc_jws.deserialize_json(json.loads(signed), keys, registry=registry)
    assert json.loads(verified.payload) == envelope


def test_a_changed_payload_does_not_verify(keyring):
    signed = json.loads(keyring.sign({"to": "E09000019"}))
    forged = base64.urlsafe_b64encode(b'{"to":"E09000001"}').rstrip(b"=").decode()
    with pytest.raises(VerificationError):
        verify(json.dumps({**signed, "payload": forged}), keyring.jwks())


def test_a_signature_by_another_key_with_the_same_kid_does_not_verify(keyring, tmp_path):
    other = KeyRing.from_file(tmp_path / "other.pem", create=True)
    signed = json.loads(other.sign({"a": 1}))
    header = {"alg": "EdDSA", "kid": keyring.kid}
    protected = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    with pytest.raises(VerificationError):
        verify(json.dumps({**signed, "protected": protected}), keyring.jwks())


def test_the_generated_key_is_reused_and_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "signing-key.pem"
    first = KeyRing.from_file(path, create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing.from_file(path).kid == first.kid


def test_a_pkcs8_pem_from_another_tool_is_accepted(tmp_path):
    path = tmp_path / "key.pem"
    path.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    keyring = KeyRing.from_file(path)
    assert verify(keyring.sign({"a": 1}), keyring.jwks())[1] == {"a": 1}


def test_a_key_that_is_not_ed25519_is_refused(tmp_path):
    path = tmp_path / "ec.pem"
    path.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ValueError, match="does not hold an Ed25519 private key"):
        KeyRing.from_file(path)


def test_a_missing_configured_key_is_an_error_not_a_new_key(tmp_path):
    with pytest.raises(ValueError, match="absent.pem cannot be read: No such file or directory"):
        KeyRing.from_file(tmp_path / "absent.pem")
    assert not (tmp_path / "absent.pem").exists()


def test_the_verify_command_says_a_signed_test_envelope_is_not_an_envelope(keyring, tmp_path):
    signed = tmp_path / "test-envelope.json"
    signed.write_text(keyring.sign({"note": "adapter test"}, typ=TEST_JWS_TYP))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(keyring.jwks()))
    result = CliRunner().invoke(main, ["verify", str(signed), "--jwks", str(jwks)])
    assert result.exit_code == 1
    assert "not an envelope: its typ is 'caf-test+jws'" in result.output


def test_after_a_rotation_what_the_retired_key_signed_still_verifies(keyring, tmp_path):
    signed_before = keyring.sign({"envelope_id": "before-rotation"})
    retired_file = tmp_path / "retired.jwks.json"
    retired_file.write_text(json.dumps(keyring.jwks()))
    rotated = KeyRing.from_file(
        tmp_path / "new.pem", create=True, retired=read_retired_keys(retired_file)
    )
    published = rotated.jwks()["keys"]
    assert [key["kid"] for key in published] == [rotated.kid, keyring.kid]
    assert all("d" not in key for key in published)
    assert verify(signed_before, rotated.jwks())[1] == {"envelope_id": "before-rotation"}
    assert verify(rotated.sign({"a": 1}), rotated.jwks())[0]["kid"] == rotated.kid


def test_a_retired_keys_file_holding_a_private_key_is_refused(tmp_path):
    retired_file = tmp_path / "retired.jwks.json"
    private = OKPKey.generate_key("Ed25519").as_dict(private=True)
    retired_file.write_text(json.dumps({"keys": [private]}))
    with pytest.raises(ValueError, match="must hold public Ed25519 keys only"):
        read_retired_keys(retired_file)


def test_a_jws_under_rfc_9864s_name_ed25519_verifies(keyring, tmp_path):
    # A recipient's newer JOSE library may sign its receipt as alg Ed25519 (RFC 9864), the same
    # signature as EdDSA: it must verify, or the audit would call a good receipt unverified.
    key = OKPKey.generate_key("Ed25519")
    registry = joserfc_jws.JWSRegistry(algorithms=["Ed25519"])
    signed = joserfc_jws.serialize_json(
        {"protected": {"alg": "Ed25519", "kid": key.thumbprint()}},
        json.dumps({"envelope_id": "e"}),
        key,
        registry=registry,
    )
    public = {"keys": [{**key.as_dict(private=False), "kid": key.thumbprint()}]}
    header, payload = verify(json.dumps(signed), public)
    assert (header["alg"], payload) == ("Ed25519", {"envelope_id": "e"})


def test_a_public_key_is_refused_as_the_signing_key(tmp_path):
    # Configured by mistake, a public key would only fail at the first envelope to sign.
    path = tmp_path / "public.jwk"
    path.write_text(json.dumps(OKPKey.generate_key("Ed25519").as_dict(private=False)))
    with pytest.raises(ValueError, match="does not hold an Ed25519 private key"):
        KeyRing.from_file(path)


# What a JWK file may say about the key beyond the key itself. Only the key material counts:
# the relay signs as it always does and publishes what any verifier accepts. Before, the first
# three failed every signature (each event requeued and in the end dead-lettered), and the last
# was published as a key for signing only, which jwcrypto and the relay itself then refused to
# verify with.
JWK_METADATA = {
    "RFC 9864's alg name": {"alg": "Ed25519"},
    "use for encryption": {"use": "enc"},
    "verify only": {"key_ops": ["verify"]},
    "sign only, as RFC 7517 suggests for a private key": {"key_ops": ["sign"]},
}


@pytest.mark.parametrize("metadata", JWK_METADATA.values(), ids=JWK_METADATA.keys())
def test_a_jwk_signing_key_signs_and_verifies_whatever_else_its_file_says(tmp_path, metadata):
    generated = jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="relay-2026")
    path = tmp_path / "signing-key.jwk"
    path.write_text(json.dumps({**json.loads(generated.export_private()), **metadata}))
    keyring = KeyRing.from_file(path)

    signed = keyring.sign({"envelope_id": "e"})

    assert verify(signed, keyring.jwks())[1] == {"envelope_id": "e"}
    (published,) = keyring.jwks()["keys"]
    assert published == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": json.loads(generated.export_public())["x"],
        "kid": keyring.kid,
        "use": "sig",
        "alg": "EdDSA",
    }
    token = jws.JWS()
    token.deserialize(signed)
    token.verify(jwk.JWKSet.from_json(json.dumps(keyring.jwks())).get_key(keyring.kid))


def _one_signature_in_general_form(flattened: str) -> str:
    signed = json.loads(flattened)
    signature = {"protected": signed["protected"], "signature": signed["signature"]}
    return json.dumps({"payload": signed["payload"], "signatures": [signature]})


def test_a_jws_in_the_general_json_serialization_with_one_signature_verifies(keyring):
    # RFC 7515's JSON serialization has two forms; a recipient's library may sign its receipt
    # in the general one. Before, verifying it raised AttributeError.
    general = _one_signature_in_general_form(keyring.sign({"envelope_id": "e"}))
    header, payload = verify(general, keyring.jwks())
    assert (header["kid"], payload) == (keyring.kid, {"envelope_id": "e"})


def test_a_jws_with_two_signatures_is_refused_saying_so(keyring, tmp_path):
    other = KeyRing.from_file(tmp_path / "other.pem", create=True)
    first, second = (json.loads(k.sign({"a": 1})) for k in (keyring, other))
    both = {
        "payload": first["payload"],
        "signatures": [{k: s[k] for k in ("protected", "signature")} for s in (first, second)],
    }
    with pytest.raises(VerificationError, match="2 signatures; one is expected"):
        verify(json.dumps(both), {"keys": keyring.jwks()["keys"] + other.jwks()["keys"]})


def test_a_jws_giving_a_member_twice_does_not_verify(keyring):
    # Read as its last, a payload given twice would be checked on one value and another
    # reader of the same text could take the other (RFC 7515 section 5.2 says reject it).
    signed = json.loads(keyring.sign({"a": 1}))
    other = json.loads(keyring.sign({"a": 2}))["payload"]
    twice = json.dumps(signed)[:-1] + f', "payload": "{other}"}}'
    with pytest.raises(VerificationError, match="'payload' given twice"):
        verify(twice, keyring.jwks())


NOT_A_JWS = {
    "a JSON array": "[]",
    "a JSON string": '"signed"',
    "a payload that is a number": '{"payload": 1, "protected": "e30", "signature": "AAAA"}',
    "a list of signatures that is not a list": '{"payload": "e30", "signatures": {}}',
    "nested deeper than Python reads": "[" * 100_000,
}


@pytest.mark.parametrize("text", NOT_A_JWS.values(), ids=NOT_A_JWS.keys())
def test_json_that_is_not_a_jws_does_not_verify_and_says_why(keyring, text):
    # Before, each raised AttributeError or RecursionError: a traceback from `caf-relay verify`,
    # and a receipt recorded as "Not checked: AttributeError" with a traceback in the log.
    with pytest.raises(VerificationError, match="Signature does not verify: "):
        verify(text, keyring.jwks())


@pytest.mark.parametrize("text", NOT_A_JWS.values(), ids=NOT_A_JWS.keys())
def test_the_verify_command_says_in_one_line_that_a_file_is_not_a_jws(keyring, tmp_path, text):
    envelope = tmp_path / "envelope.json"
    envelope.write_text(text)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(keyring.jwks()))
    result = CliRunner().invoke(main, ["verify", str(envelope), "--jwks", str(jwks)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: Signature does not verify: ")
