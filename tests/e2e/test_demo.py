"""The README's first command: `caf-relay demo` on the embedded default, then `caf-relay verify`."""

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.amqp import wait_until

CAF_RELAY = str(Path(sys.executable).with_name("caf-relay"))
REPOSITORY = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CAF_RELAY, *args], capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin"}
    )


def test_the_demo_prints_the_four_outcomes_and_every_delivered_envelope_verifies(tmp_path):
    demo = _run("demo", "--dir", str(tmp_path))

    assert demo.returncode == 0, demo.stderr
    blocks = [block.splitlines() for block in demo.stdout.split("\n\n")[1:5]]
    said = {lines[0]: [line.strip() for line in lines[1:]] for lines in blocks}
    assert list(said) == [
        "event-routine-with-isp.json",
        "event-ad-hoc-with-judgement.json",
        "event-routine-without-basis.json",
        "event-judgement-not-to-share.json",
    ]
    route, outcome, signature = said["event-routine-with-isp.json"]
    assert route == "Hackney -> Islington"
    assert outcome == "DELIVERED with ISP pan-london-caf v1; withheld: family_and_environment"
    assert signature.startswith("signature verifies (EdDSA, kid ")
    route, outcome, signature = said["event-ad-hoc-with-judgement.json"]
    assert route == "Lambeth -> Southwark"
    assert outcome == (
        "DELIVERED with judgement of Jo Reid (Early help team manager); withheld: family_members,"
        " development_of_child, parents_and_carers, family_and_environment, education"
    )
    assert signature.startswith("signature verifies (EdDSA, kid ")
    assert said["event-routine-without-basis.json"] == [
        "Newham -> Tower Hamlets",
        "PARKED awaiting judgement: No applicable ISP; a practitioner judgement is needed to"
        " share.",
        "nothing sent, nothing signed",
    ]
    route, outcome, signature = said["event-judgement-not-to-share.json"]
    assert route == "Barnet -> Enfield"
    assert outcome.startswith("WITHHELD by judgement of Priya Shah (Social worker): ")
    assert signature == "nothing sent, nothing signed"
    delivered = sorted((tmp_path / "inbox").glob("*/*.json"))
    assert [path.parent.name for path in delivered] == ["E09000019", "E09000028"]
    # The command it ends with runs as printed, from a shell whose PATH has no venv on it.
    check = demo.stdout.splitlines()[-1].strip()
    command = check.replace(
        "<authority>/<envelope id>.json", str(delivered[0].relative_to(tmp_path / "inbox"))
    )
    verified = subprocess.run(
        command, shell=True, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin"}
    )
    assert verified.returncode == 0, verified.stderr


def test_verify_accepts_a_delivered_envelope_and_refuses_an_altered_one(tmp_path):
    assert _run("demo", "--dir", str(tmp_path)).returncode == 0
    (envelope,) = (tmp_path / "inbox" / "E09000019").glob("*.json")
    jwks = str(tmp_path / "jwks.json")

    verified = _run("verify", str(envelope), "--jwks", jwks)
    assert verified.returncode == 0, verified.stderr
    assert "Signature verifies" in verified.stdout
    assert "Hackney -> Islington, basis: ISP pan-london-caf v1" in verified.stdout

    altered = json.loads(envelope.read_text())
    altered["payload"] = altered["payload"][:-4] + (
        "AAAA" if altered["payload"][-4:] != "AAAA" else "BBBB"
    )
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(altered))
    refused = _run("verify", str(forged), "--jwks", jwks)
    assert refused.returncode == 1
    assert "Signature does not verify" in refused.stderr

    missing = _run("verify", str(envelope), "--jwks", str(tmp_path / "nowhere.json"))
    assert missing.returncode == 1
    assert "Cannot read the JWKS" in missing.stderr

    unprotected = _run("verify", str(envelope), "--jwks", "http://relay.example/jwks.json")
    assert unprotected.returncode == 1
    assert "Fetch the JWKS over https" in unprotected.stderr


class _MovedToPlainHttp(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(302)
        self.send_header("Location", "http://relay.example/jwks.json")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_verify_follows_no_redirect_for_the_jwks(tmp_path):
    assert _run("demo", "--dir", str(tmp_path)).returncode == 0
    (envelope,) = (tmp_path / "inbox" / "E09000019").glob("*.json")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MovedToPlainHttp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = f"http://127.0.0.1:{server.server_port}/jwks.json"
        moved = _run("verify", str(envelope), "--jwks", source)
    finally:
        server.shutdown()
        server.server_close()

    assert moved.returncode == 1
    assert f"{source} redirects to http://relay.example/jwks.json" in moved.stderr


def _started(tmp_path: Path) -> subprocess.Popen:
    """A demo run in ``tmp_path``, once it has begun storing (its database is there)."""
    demo = subprocess.Popen(
        [CAF_RELAY, "demo", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin"},
    )
    wait_until(lambda: (tmp_path / "caf-relay.sqlite3").exists() or demo.poll() is not None, 60)
    assert demo.poll() is None, "the demo ended before it could be caught running"
    return demo


def test_a_folder_the_demo_cannot_use_is_named_in_one_line(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")

    for folder in (a_file, a_file / "demo"):
        refused = _run("demo", "--dir", str(folder))

        assert refused.returncode == 1
        assert "Traceback" not in refused.stderr
        assert refused.stderr.startswith(f"Error: Cannot use {folder} for the demo: ")
        assert a_file.read_text() == "not a folder\n"


def test_the_demo_deletes_no_database_it_did_not_make(tmp_path):
    instance = tmp_path / "instance"
    env = {"PATH": "/usr/bin", "CAF_RELAY_INSTANCE_DIR": str(instance)}
    upgraded = subprocess.run(
        [CAF_RELAY, "db", "upgrade"], capture_output=True, text=True, timeout=60, env=env
    )
    assert upgraded.returncode == 0, upgraded.stderr
    before = subprocess.run(
        [CAF_RELAY, "audit", "verify"], capture_output=True, text=True, timeout=60, env=env
    )

    refused = _run("demo", "--dir", str(instance))

    assert refused.returncode == 1
    assert "holds a caf-relay instance's caf-relay.sqlite3" in refused.stderr
    after = subprocess.run(
        [CAF_RELAY, "audit", "verify"], capture_output=True, text=True, timeout=60, env=env
    )
    assert after.returncode == 0, after.stderr
    assert after.stdout == before.stdout


def test_the_demo_does_not_sign_with_the_key_of_an_instance_whose_store_is_elsewhere(tmp_path):
    """An instance on PostgreSQL keeps no database file in its folder, but its signing key:
    the demo's example transfers, signed with it, would be the authority's own signatures."""
    instance = tmp_path / "instance"
    instance.mkdir()
    key = subprocess.run(
        [CAF_RELAY, "keys", "generate", str(instance / "signing-key.pem")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert key.returncode == 0, key.stderr
    kept = (instance / "signing-key.pem").read_bytes()

    refused = _run("demo", "--dir", str(instance))

    assert refused.returncode == 1
    assert "signing-key.pem" in refused.stderr
    assert "the demo did not make" in refused.stderr
    assert not (instance / "inbox").exists()
    assert (instance / "signing-key.pem").read_bytes() == kept


def test_a_folder_an_earlier_demo_left_before_it_was_marked_is_run_again(tmp_path):
    assert _run("demo", "--dir", str(tmp_path)).returncode == 0
    (tmp_path / ".caf-relay-demo").unlink()

    again = _run("demo", "--dir", str(tmp_path))

    assert again.returncode == 0, again.stderr
    assert again.stdout.count("signature verifies") == 2
    assert len(list((tmp_path / "inbox").glob("*/*.json"))) == 2


def test_a_second_demo_in_the_same_folder_at_once_is_refused_and_the_first_finishes(tmp_path):
    first = _started(tmp_path)
    first.send_signal(signal.SIGSTOP)
    try:
        second = _run("demo", "--dir", str(tmp_path))
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=60)

    assert second.returncode == 1
    assert second.stderr == (
        f"Error: Another caf-relay demo is running in {tmp_path}; wait for it to finish, "
        "or give --dir another folder.\n"
    )
    assert first.returncode == 0, err
    assert out.count("signature verifies") == 2
    assert len(list((tmp_path / "inbox").glob("*/*.json"))) == 2


def test_an_interrupted_demo_says_what_it_left_and_the_next_run_starts_afresh(tmp_path):
    for signum in (signal.SIGINT, signal.SIGTERM):
        folder = tmp_path / signum.name
        demo = _started(folder)
        demo.send_signal(signum)
        out, err = demo.communicate(timeout=60)

        assert demo.returncode == 128 + signum
        assert out == ""
        assert "Traceback" not in err
        assert err.endswith(
            f"Interrupted: the demo stopped part-way, so {folder} holds only part of a run."
            " Run it again to start afresh.\n"
        )

        again = _run("demo", "--dir", str(folder))
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("signature verifies") == 2


def _checkout(tmp_path: Path) -> Path:
    """scripts/demo and scripts/bootstrap in a checkout of their own, whose .venv is this one's
    (its commands linked in) and marked installed for this pyproject.toml, as bootstrap marks it."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    for script in ("demo", "bootstrap"):
        shutil.copy2(REPOSITORY / "scripts" / script, checkout / "scripts" / script)
    shutil.copy2(REPOSITORY / "pyproject.toml", checkout / "pyproject.toml")
    venv = checkout / ".venv"
    (venv / "bin").mkdir(parents=True)
    for command in ("python", "pip", "caf-relay"):
        (venv / "bin" / command).symlink_to(Path(sys.executable).with_name(command))
    digest = hashlib.sha256((checkout / "pyproject.toml").read_bytes()).hexdigest()[:16]
    (venv / f".installed-{digest}-base").touch()
    return checkout


def test_scripts_demo_takes_dir_from_where_it_is_run_and_defaults_to_the_checkouts(tmp_path):
    checkout = _checkout(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    for args, folder in (((), checkout / "demo-output"), (("--dir", "mine"), elsewhere / "mine")):
        demo = subprocess.run(
            [str(checkout / "scripts" / "demo"), *args],
            cwd=elsewhere,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin"},
        )

        assert demo.returncode == 0, demo.stderr
        assert demo.stdout.splitlines()[0].endswith(f" in {folder}")
        assert len(list((folder / "inbox").glob("*/*.json"))) == 2
    assert not (checkout / "mine").exists()
