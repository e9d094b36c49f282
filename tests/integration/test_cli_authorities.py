"""``caf-relay authority|adapter|secrets ...`` on the database under test, as an operator."""

import json

import pytest
from cryptography.fernet import Fernet
from joserfc.jwk import OKPKey

from service.signing import KeyRing, verify
from tests.support.cli import environment, runner
from tests.support.https_receiver import HttpsReceiver
from tests.support.store_reads import audit_actions, broker_publisher

ISLINGTON = "E09000019"
SECRET = "cli-s3cret-for-islington-77aa01"


@pytest.fixture
def env(services):
    return environment(services)


@pytest.fixture
def run(services):
    return runner(services)


@pytest.fixture
def receiver(tmp_path):
    with HttpsReceiver(tmp_path / "tls") as running:
        yield running


def _set_https(run, receiver, tmp_path, **extra):
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"bearer_token": SECRET}))
    settings = {"url": receiver.url, "ca_bundle": str(receiver.ca_bundle)}
    return run(
        "adapter",
        "set",
        ISLINGTON,
        "https",
        "--settings",
        json.dumps(settings),
        "--secrets-file",
        str(secrets),
        **extra,
    )


def _audited(services, action):
    return [d for _, a, d in audit_actions(services.store) if a == action]


def test_list_prints_a_table_or_json(run):
    table = run("authority", "list")
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["CODE", "NAME", "KIND", "ADAPTER_TYPE"]
    assert "E09000012  Hackney" in table.output
    assert len(lines) == 34

    rows = json.loads(run("authority", "list", "--json").output)
    assert {"code": ISLINGTON, "name": "Islington", "kind": "local_authority"}.items() <= {
        r["code"]: r for r in rows
    }[ISLINGTON].items()


def test_an_organisation_is_added_edited_and_given_receipt_keys(run, services, tmp_path):
    added = run("authority", "add", "MPS", "--name", "Metropolitan Police", "--kind", "police")
    assert added.exit_code == 0, added.output
    assert "MPS   Metropolitan Police  police" in added.output

    again = run("authority", "add", "MPS", "--name", "Met", "--kind", "police")
    assert again.exit_code == 1 and "An authority MPS exists already." in again.output

    borough = KeyRing.from_file(tmp_path / "mps.pem", create=True)
    jwks_file = tmp_path / "mps.jwks"
    jwks_file.write_text(json.dumps(borough.jwks()))
    edited = run("authority", "edit", "MPS", "--name", "Met Police", "--jwks", str(jwks_file))
    assert edited.exit_code == 0, edited.output

    shown = json.loads(run("authority", "show", "MPS", "--json").output)
    assert shown[0]["name"] == "Met Police" and shown[0]["jwks"] == borough.jwks()
    assert borough.kid in run("authority", "show", "MPS").output
    assert [d["by"]["name"] for d in _audited(services, "authority_edited")] == ["command line"]


def test_keys_refuses_a_private_key_and_keeps_the_old_ones(run, services, tmp_path):
    private = tmp_path / "private.jwks"
    private.write_text(json.dumps({"keys": [OKPKey.generate_key("Ed25519").as_dict(private=True)]}))

    result = run("authority", "keys", ISLINGTON, str(private))

    assert result.exit_code == 1
    assert "private or symmetric key material" in result.output
    assert services.store.authority_keys(ISLINGTON) is None


def test_a_publisher_is_set_and_removed(run, services):
    assert run("authority", "publisher", "set", ISLINGTON, "islington-mosaic").exit_code == 0
    assert broker_publisher(services.store, "islington-mosaic") == ISLINGTON

    other = run("authority", "publisher", "set", "E09000012", "islington-mosaic")
    assert other.exit_code == 1 and "publishes for E09000019" in other.output

    removed = run("authority", "publisher", "remove", ISLINGTON, "islington-mosaic", "--json")
    assert removed.exit_code == 0 and json.loads(removed.output)[0]["publishers"] == []
    assert broker_publisher(services.store, "islington-mosaic") is None


def test_an_adapter_is_set_shown_by_secret_name_tested_and_removed(
    run, services, receiver, tmp_path
):
    assert _set_https(run, receiver, tmp_path).exit_code == 0

    shown = run("adapter", "show", ISLINGTON)
    assert "bearer_token" in shown.output and SECRET not in shown.output
    assert json.loads(run("adapter", "show", ISLINGTON, "--json").output)[0]["type"] == "https"

    tested = run("adapter", "test", ISLINGTON, "--json")
    assert tested.exit_code == 0, tested.output
    [result] = json.loads(tested.output)
    assert result["delivered"] is True
    [arrived] = receiver.requests
    _, payload = verify(arrived.body, services.keyring.jwks())
    assert payload["test"] is True and payload["test_id"] == result["test_id"]
    assert arrived.headers["Authorization"] == f"Bearer {SECRET}"

    receiver.respond_with(503)
    failed = run("adapter", "test", ISLINGTON)
    assert failed.exit_code == 1 and "HTTP 503" in failed.output

    assert run("adapter", "remove", ISLINGTON).exit_code == 0
    verified = run("audit", "verify")
    assert verified.exit_code == 0, "what the tests recorded keeps the chain intact"
    assert "Audit chain intact" in verified.output
    gone = run("adapter", "show", ISLINGTON)
    assert gone.exit_code == 1 and "E09000019 has no adapter configured." in gone.output


def test_a_broken_adapter_config_names_the_field(run, tmp_path):
    result = run("adapter", "set", ISLINGTON, "https", "--settings", '{"url": "http://x.org/in"}')
    assert result.exit_code == 1
    assert "Must be an https:// URL." in result.output
    assert "bearer_token" in result.output


def test_adapter_settings_that_are_not_a_json_object_are_refused_by_name(run, services):
    result = run("adapter", "set", ISLINGTON, "https", "--settings", '["https://x.example"]')
    assert result.exit_code == 1, result.output
    assert '{"settings": {"_schema": ["Invalid input type."]}' in result.output
    assert services.store.organisations.adapter(ISLINGTON) is None


def test_adapter_settings_secrets_or_receipt_keys_giving_a_field_twice_are_refused(
    run, services, tmp_path
):
    """As the API refuses such a body: read as the last value, the relay would deliver to, or
    trust keys from, what the admin who wrote the JSON did not see as the one in force."""
    twice = '{"url": "https://islington.example/caf", "url": "https://elsewhere.example/caf"}'
    settings = run("adapter", "set", ISLINGTON, "https", "--settings", twice)
    assert settings.exit_code == 2 and "'url' given twice" in settings.output, settings.output

    secrets = tmp_path / "secrets.json"
    secrets.write_text(f'{{"bearer_token": "{SECRET}", "bearer_token": "{SECRET}-2"}}')
    settings_json = json.dumps({"url": "https://islington.example/caf"})
    given = run(
        "adapter",
        "set",
        ISLINGTON,
        "https",
        "--settings",
        settings_json,
        "--secrets-file",
        str(secrets),
    )
    assert given.exit_code == 2 and "'bearer_token' given twice" in given.output, given.output
    assert SECRET not in given.output
    assert services.store.organisations.adapter(ISLINGTON) is None

    keys = KeyRing.from_file(tmp_path / "islington.pem", create=True).jwks()["keys"]
    jwks = tmp_path / "islington.jwks"
    jwks.write_text(f'{{"keys": {json.dumps(keys)}, "keys": []}}')
    refused = run("authority", "keys", ISLINGTON, str(jwks))
    assert refused.exit_code == 1 and "'keys' given twice" in refused.output, refused.output
    assert services.store.authority_keys(ISLINGTON) is None


def test_a_bearer_token_file_ending_in_a_line_break_is_refused_without_quoting_it(
    run, services, tmp_path
):
    secrets = tmp_path / "token.json"  # as `jq -Rs` makes it from a file the token ends a line of
    secrets.write_text(json.dumps({"bearer_token": SECRET + "\n"}))
    settings = json.dumps({"url": "https://islington.example/caf"})
    result = run(
        "adapter", "set", ISLINGTON, "https", "--settings", settings, "--secrets-file", str(secrets)
    )
    assert result.exit_code == 1
    assert "bearer_token" in result.output and "no spaces or line breaks" in result.output
    assert SECRET not in result.output
    assert services.store.organisations.adapter(ISLINGTON) is None


def test_an_adapter_setting_the_store_could_not_hold_is_refused_by_name(run, services):
    result = run("adapter", "set", ISLINGTON, "directory", "--settings", '{"path": "/in\\u0000"}')
    assert result.exit_code == 1
    assert "settings" in result.output and "a string holds the NUL character." in result.output
    assert services.store.organisations.adapter(ISLINGTON) is None


def test_after_rotating_the_old_key_can_go_and_the_adapter_still_delivers(
    run, env, services, receiver, tmp_path
):
    old_key, new_key = env["CAF_RELAY_SECRETS_KEYS"], Fernet.generate_key().decode()
    assert _set_https(run, receiver, tmp_path).exit_code == 0
    only_new = {"CAF_RELAY_SECRETS_KEYS": new_key}
    before = run("adapter", "test", ISLINGTON, "--json", **only_new)
    assert before.exit_code == 1, "the new key alone cannot open what the old one sealed"
    assert "cannot be decrypted" in json.loads(before.output)[0]["detail"]

    rotated = run("secrets", "rotate", "--json", CAF_RELAY_SECRETS_KEYS=f"{new_key},{old_key}")
    assert rotated.exit_code == 0, rotated.output
    assert json.loads(rotated.output) == [{"authority": ISLINGTON}]

    after = run("adapter", "test", ISLINGTON, "--json", **only_new)
    assert after.exit_code == 0, after.output
    assert receiver.requests[-1].headers["Authorization"] == f"Bearer {SECRET}"
    assert run("adapter", "test", ISLINGTON, "--json").exit_code == 1, "the old key is done"
    [audit] = _audited(services, "adapter_secrets_rotated")
    assert audit == {"authorities": [ISLINGTON], "by": audit["by"]}
    assert audit["by"]["name"] == "command line"


def test_rotation_with_a_key_missing_rotates_nothing(run, env, receiver, tmp_path):
    assert _set_https(run, receiver, tmp_path).exit_code == 0
    other = Fernet.generate_key().decode()

    result = run("secrets", "rotate", CAF_RELAY_SECRETS_KEYS=other)

    assert result.exit_code == 1 and "Nothing rotated: E09000019" in result.output
    assert run("adapter", "test", ISLINGTON).exit_code == 0, "still sealed under the old key"
