"""The README's first command: `caf-relay demo` on the embedded default, then `caf-relay verify`."""

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CAF_RELAY = str(Path(sys.executable).with_name("caf-relay"))


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
