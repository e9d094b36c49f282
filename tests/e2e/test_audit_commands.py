"""The audit commands as a new user runs them after ``caf-relay demo``: verify, checkpoint and
check it offline, export one child's transfers; then an edit made behind the relay's back."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

CAF_RELAY = str(Path(sys.executable).with_name("caf-relay"))


def _run(*args: str, instance: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin"}
    if instance is not None:
        env["CAF_RELAY_INSTANCE_DIR"] = str(instance)
    return subprocess.run([CAF_RELAY, *args], capture_output=True, text=True, timeout=60, env=env)


def test_the_demos_audit_trail_verifies_exports_and_shows_tampering(tmp_path):
    assert _run("demo", "--dir", str(tmp_path)).returncode == 0

    verified = _run("audit", "verify", instance=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "Audit chain intact" in verified.stdout

    kept = tmp_path / "kept.jws"
    assert _run("audit", "checkpoint", "--out", str(kept), instance=tmp_path).returncode == 0
    offline = _run("audit", "verify-checkpoint", str(kept), "--jwks", str(tmp_path / "jwks.json"))
    assert offline.returncode == 0, offline.stderr
    assert "Checkpoint verifies" in offline.stdout
    forged = json.loads(kept.read_text())
    forged["payload"] = forged["payload"][:-2] + "fQ"
    kept.write_text(json.dumps(forged))
    refused = _run("audit", "verify-checkpoint", str(kept), "--jwks", str(tmp_path / "jwks.json"))
    assert refused.returncode == 1 and "does not verify" in refused.stderr

    page = tmp_path / "amara.html"
    export = _run(
        "audit",
        "subject-access",
        "--nhs-number",
        "9434765919",
        "--html",
        str(page),
        instance=tmp_path,
    )
    assert export.returncode == 0, export.stderr
    assert page.read_text().count("<section>") == 4

    with sqlite3.connect(tmp_path / "caf-relay.sqlite3") as db:
        db.execute("UPDATE audit_records SET detail = '{}' WHERE seq = 3")
    broken = _run("audit", "verify", instance=tmp_path)
    assert broken.returncode == 1
    assert "BROKEN at record 3: edited" in broken.stdout
