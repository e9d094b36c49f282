"""Settings read from the environment: what a wrong one says, and forms accepted as meant."""

import pytest
from click.testing import CliRunner

from service.cli import main
from service.config import Settings


def _settings(**env: str) -> Settings:
    return Settings.from_env({f"CAF_RELAY_{name}": value for name, value in env.items()})


def test_a_plain_postgresql_url_is_taken_as_psycopgs():
    url = "postgresql://caf:pw@db.example:5432/caf_relay"
    assert _settings(DATABASE_URL=url).database_url == (
        "postgresql+psycopg://caf:pw@db.example:5432/caf_relay"
    )


def test_a_trailing_comma_in_the_secrets_keys_is_not_a_key():
    assert _settings(SECRETS_KEYS="first-key, second-key, ").secrets_keys == (
        "first-key",
        "second-key",
    )


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("LOG_LEVEL", "LOUD", "CAF_RELAY_LOG_LEVEL is one of DEBUG, INFO"),
        ("BROKER_URL", "http://guest:s3cret@rabbit:5672/", "CAF_RELAY_BROKER_URL must be an amqp"),
        ("DATABASE_URL", "mysql://caf:s3cret@db/caf", "CAF_RELAY_DATABASE_URL must be a sqlite"),
        ("PREFETCH", "many", "CAF_RELAY_PREFETCH must be a positive integer"),
        # SQLAlchemy would refuse these only when the store opens, with a traceback.
        ("DATABASE_URL", "sqlite:", "CAF_RELAY_DATABASE_URL names a SQLite file as sqlite:///"),
        ("DATABASE_URL", "sqlite://db/caf", "CAF_RELAY_DATABASE_URL names a SQLite file as"),
        ("DATABASE_URL", "sqlite://", "sqlite:// alone would be a database in memory, empty in"),
        ("DATABASE_URL", "sqlite:///:memory:", "sqlite:// alone would be a database in memory"),
        ("MAX_EVENT_BYTES", "8388609", "CAF_RELAY_MAX_EVENT_BYTES is at most 8388608, not"),
        (
            "DEAD_LETTER_RETENTION_DAYS",
            "0",
            "CAF_RELAY_DEAD_LETTER_RETENTION_DAYS must be a positive integer",
        ),
        # A claim lasting years (or past what a timedelta holds) would end after year 9999,
        # failing every claim, or crash start-up with an OverflowError.
        ("DELIVERY_LEASE_SECONDS", "9" * 30, "CAF_RELAY_DELIVERY_LEASE_SECONDS is at most 86400"),
        ("DELIVERY_LEASE_SECONDS", "315360000000", "CAF_RELAY_DELIVERY_LEASE_SECONDS is at most"),
        # Each retry setting is named, with what it may be, not as a dict of all of them.
        (
            "RETRY_MAX_ATTEMPTS",
            "0",
            r"^CAF_RELAY_RETRY_MAX_ATTEMPTS is a whole number from 1 to 1000, not '0'\.$",
        ),
        ("RETRY_MAX_ATTEMPTS", "1.5", "^CAF_RELAY_RETRY_MAX_ATTEMPTS is a whole number from 1"),
        (
            "RETRY_MAX_AGE_SECONDS",
            "nan",
            r"^CAF_RELAY_RETRY_MAX_AGE_SECONDS is a number from 1 to 7776000, not 'nan'\.$",
        ),
        ("RETRY_MAX_DELAY_SECONDS", "0", "^CAF_RELAY_RETRY_MAX_DELAY_SECONDS is a number from"),
        # A claim asks the database for 16 items a free thread: 10**30 threads would fail every
        # claim, with an integer the database cannot hold.
        ("DELIVERY_THREADS", "9" * 30, "CAF_RELAY_DELIVERY_THREADS is at most 1000, not"),
        ("DELIVERY_PER_RECIPIENT", "1001", "CAF_RELAY_DELIVERY_PER_RECIPIENT is at most 1000"),
        # Claims are stored under the name, in 128 characters: on PostgreSQL a longer name would
        # fail every claim.
        ("WORKER_NAME", "w" * 129, "CAF_RELAY_WORKER_NAME is at most 128 characters, not 129"),
        # AMQP carries the prefetch count in 16 bits: pika would refuse it only in the worker.
        ("PREFETCH", "65536", "CAF_RELAY_PREFETCH is at most 65535, not 65536"),
    ],
)
def test_a_wrong_setting_is_named_and_no_password_is_repeated(name, value, said):
    with pytest.raises(ValueError, match=said) as refused:
        _settings(**{name: value})
    assert "s3cret" not in str(refused.value)


def test_a_small_enough_prefetch_window_of_small_events_is_taken():
    assert _settings(PREFETCH="65535", MAX_EVENT_BYTES="1024").prefetch == 65535


def test_a_window_of_events_too_big_for_a_worker_is_refused_saying_what_would_fit():
    """Raising the event limit alone would let a worker hold 64 of them unacknowledged: at the
    ceiling, 512 MiB against a target of 150 MB a worker."""
    with pytest.raises(ValueError) as refused:
        _settings(MAX_EVENT_BYTES="8388608")
    assert str(refused.value) == (
        "CAF_RELAY_PREFETCH (64) messages of CAF_RELAY_MAX_EVENT_BYTES (8388608) each are"
        " 512 MiB in a worker's window; at most 64 MiB: set CAF_RELAY_PREFETCH to 8 or less."
    )
    assert _settings(MAX_EVENT_BYTES="8388608", PREFETCH="8").prefetch == 8
    assert _settings(MAX_EVENT_BYTES="1048576").prefetch == 64


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BROKER_URL", "amqp://guest:s3cret/part@rabbit:5672/"),
        ("BROKER_URL", "amqps://guest:s3cret#part@rabbit/"),
        ("BROKER_URL", "amqp://guest:s3cret[part]@rabbit/"),
        ("DATABASE_URL", "postgresql://caf:s3cret@part@db:5432/caf"),
        ("DATABASE_URL", "postgresql://caf@db:5432x/caf"),
    ],
)
def test_a_url_whose_password_would_be_read_as_its_host_or_port_is_refused_unquoted(name, value):
    with pytest.raises(ValueError, match=f"CAF_RELAY_{name} cannot be read as a URL") as refused:
        _settings(**{name: value})
    assert "s3cret" not in str(refused.value) and "part" not in str(refused.value)
    encode = "(%2F, %3F, %23)" if name == "BROKER_URL" else "'@' percent-encoded (%40)"
    assert encode in str(refused.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BROKER_URL", "amqp://guest:s3cret%2Fpart%40x@rabbit:5672/%2F"),
        ("BROKER_URL", "amqp://guest:s3cret@part@rabbit:5672/"),  # pika reads it whole
        ("BROKER_URL", "amqps://caf:pw@[::1]:5671/relay"),
        ("DATABASE_URL", "postgresql://caf:s3cret%40part@db:5432/caf?sslmode=require"),
        ("DATABASE_URL", "postgresql://caf:Zm9v/YmFy?x@db/caf"),  # SQLAlchemy reads it whole
        ("DATABASE_URL", "postgresql://caf@/caf?host=/var/run/postgresql"),
        ("DATABASE_URL", "postgresql://caf:pw@db/caf?application_name=relay@prod"),
        ("DATABASE_URL", "postgresql://caf:pw@[::1]:5432/caf"),
        ("DATABASE_URL", "sqlite:////var/lib/caf@relay/caf.sqlite3"),
    ],
)
def test_a_url_with_its_password_encoded_is_taken(name, value):
    setting = getattr(_settings(**{name: value}), name.lower())
    assert setting.endswith(value.split("://", 1)[1])


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("LOG_LEVEL", "LOUD", "Error: CAF_RELAY_LOG_LEVEL is one of DEBUG"),
        ("DELIVERY_LEASE_SECONDS", "9" * 30, "Error: CAF_RELAY_DELIVERY_LEASE_SECONDS is at most"),
        ("SECRETS_KEYS", "not-a-key", "Error: CAF_RELAY_SECRETS_KEYS holds a key that is not a"),
    ],
)
def test_the_command_line_says_which_setting_is_wrong_in_one_line(tmp_path, name, value, said):
    env = {"CAF_RELAY_INSTANCE_DIR": str(tmp_path), f"CAF_RELAY_{name}": value}
    result = CliRunner().invoke(main, ["transfer", "list"], env=env)
    assert result.exit_code == 1
    assert result.output.startswith(said) and result.output.count("\n") == 1
    assert "Traceback" not in result.output


def test_the_command_line_says_in_one_line_that_the_signing_key_file_is_missing(tmp_path):
    absent = tmp_path / "signing-key-elsewhere.pem"
    env = {"CAF_RELAY_INSTANCE_DIR": str(tmp_path), "CAF_RELAY_SIGNING_KEY_FILE": str(absent)}
    result = CliRunner().invoke(main, ["audit", "verify"], env=env)
    assert result.exit_code == 1
    assert result.output == (
        f"Error: Signing key file {absent} cannot be read: No such file or directory.\n"
    )
    assert not absent.exists()


def test_the_command_line_says_in_one_line_that_the_database_cannot_be_reached(tmp_path):
    env = {
        "CAF_RELAY_INSTANCE_DIR": str(tmp_path),
        "CAF_RELAY_DATABASE_URL": "postgresql://caf:s3cret@127.0.0.1:1/caf_relay",
    }
    for command in (["db", "upgrade"], ["transfer", "list"]):
        result = CliRunner().invoke(main, command, env=env)
        assert result.exit_code == 1, command
        assert result.output.startswith("Error: The database is unavailable: "), command
        assert "s3cret" not in result.output and "Traceback" not in result.output


def test_the_settings_shown_in_a_log_or_traceback_hold_no_secret():
    shown = repr(
        _settings(
            DATABASE_URL="postgresql://caf:db-password@db.example/caf",
            BROKER_URL="amqps://caf:broker-password@mq.example/",
            SECRETS_KEYS="a-fernet-key",
            AUDIT_KEY="an-audit-key",
        )
    )
    for secret in ("db-password", "broker-password", "a-fernet-key", "an-audit-key"):
        assert secret not in shown
    assert "instance_dir" in shown
