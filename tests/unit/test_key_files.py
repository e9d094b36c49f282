"""Processes starting together on a new instance folder end up with the same keys."""

import multiprocessing
import stat
from concurrent.futures import ProcessPoolExecutor

import pytest
from click.testing import CliRunner

from service.cli import main
from service.config import Settings
from service.domain.child_keys import identifier_from
from service.key_files import create_once
from service.secrets import SecretBox
from service.signing import KeyRing

PROCESSES = 6
CHILD = identifier_from({"nhs_number": "9434765919"})


def _start(instance: str, barrier) -> tuple[str, str, str]:
    """What a starting process makes of its keys: its signing key's id, a secret it sealed,
    and a child key."""
    settings = Settings.from_env({"CAF_RELAY_INSTANCE_DIR": instance})
    barrier.wait()
    sealed = settings.secret_box().seal({"password": "s3cret"})
    return settings.keyring().kid, sealed, settings.child_keys().key(CHILD)


def test_processes_starting_at_once_share_one_of_each_key(tmp_path):
    instance = tmp_path / "instance"
    with multiprocessing.Manager() as manager:
        barrier = manager.Barrier(PROCESSES)
        with ProcessPoolExecutor(PROCESSES) as pool:
            started = list(pool.map(_start, [str(instance)] * PROCESSES, [barrier] * PROCESSES))
    kids, sealed, child_keys = zip(*started, strict=True)
    assert len(set(kids)) == 1 and len(set(child_keys)) == 1
    box = SecretBox.from_file(instance / "secrets.key")
    assert all(box.open(token) == {"password": "s3cret"} for token in sealed)
    keys = sorted(path.name for path in instance.iterdir() if "key" in path.name)
    assert keys == ["audit.key", "secrets.key", "signing-key.pem"]
    for name in keys:
        assert stat.S_IMODE((instance / name).stat().st_mode) == 0o600


def test_a_file_already_there_is_kept(tmp_path):
    path = tmp_path / "secrets.key"
    assert create_once(path, b"first\n") is True
    assert create_once(path, b"second\n") is False
    assert path.read_bytes() == b"first\n"
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.key"]


def test_keys_generate_writes_a_signing_key_once_and_refuses_to_overwrite_it(tmp_path):
    path = tmp_path / "signing-key.pem"
    made = CliRunner().invoke(main, ["keys", "generate", str(path)])
    assert made.exit_code == 0 and "Wrote a new Ed25519 signing key" in made.output
    kid = KeyRing.from_file(path).kid
    again = CliRunner().invoke(main, ["keys", "generate", str(path)])
    assert again.exit_code == 2 and "refusing to overwrite" in again.output
    assert KeyRing.from_file(path).kid == kid


# A directory in a key file's place fails to read as a file another user owns does, which a test
# run as root cannot otherwise show. Before, the secrets and audit keys' were tracebacks.
KEY_FILES = ["secrets.key", "audit.key", "signing-key.pem"]


@pytest.mark.parametrize("name", KEY_FILES)
def test_a_key_file_that_cannot_be_read_is_a_one_line_error_naming_it(tmp_path, name):
    instance = tmp_path / "instance"
    (instance / name).mkdir(parents=True)
    result = _failing_command_in(instance)
    assert f"{instance / name} cannot be read: Is a directory." in result.output


def test_an_instance_folder_that_cannot_be_made_is_a_one_line_error_naming_it(tmp_path):
    (tmp_path / "file").write_text("")
    instance = tmp_path / "file" / "instance"
    result = _failing_command_in(instance)
    assert f"CAF_RELAY_INSTANCE_DIR {instance} cannot be made: Not a directory." in result.output


def _failing_command_in(instance):
    """Any command, run with ``instance`` as its instance folder; it must fail in one line."""
    result = CliRunner().invoke(
        main, ["authority", "list"], env={"CAF_RELAY_INSTANCE_DIR": str(instance)}
    )
    assert result.exit_code == 1, result.exception
    return result


def test_keys_generate_says_in_one_line_where_it_cannot_write(tmp_path):
    (tmp_path / "file").write_text("")
    made = CliRunner().invoke(
        main, ["keys", "generate", str(tmp_path / "file" / "keys" / "key.pem")]
    )
    assert made.exit_code == 1, made.exception
    assert "cannot be written: Not a directory." in made.output


def test_an_audit_key_file_shorter_than_an_audit_key_setting_may_be_is_refused(tmp_path):
    # An empty file (a touch, a truncated copy) would key every child's hash with nothing.
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "audit.key").write_text("short\n")
    with pytest.raises(ValueError, match="audit.key must hold at least 32 characters"):
        Settings.from_env({"CAF_RELAY_INSTANCE_DIR": str(instance)}).child_keys()
