"""``caf-relay demo``: the whole job on the embedded default, with what happened to each example.

It sets up the 33 authorities, the example pan-London CAF ISP and a directory adapter per
receiving authority under the output folder, publishes the example events on the in-process
queue, and checks the signature of every envelope that arrived.

Each run starts afresh by deleting the database and inbox in its folder, and signs with the
folder's key, so it runs only in a folder a demo made or one holding no instance's files:
pointed at an instance folder by mistake, it would otherwise delete that instance's store, or
sign example transfers as that authority. A demo marks its folder with
``.caf-relay-demo`` (a folder from before the mark has the demo's ``jwks.json`` and ``inbox/``
beside the database, which an instance folder has not). The mark is also the run's lock, so two
runs at once in one folder do not delete each other's work.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from contracts.vocabulary import TransferState
from service.bootstrap import build_services
from service.config import Settings
from service.embedded import InProcessQueue
from service.signing import VerificationError, verify

EXAMPLES = files("contracts") / "examples"
DEMO_MARK = ".caf-relay-demo"
DATABASE = "caf-relay.sqlite3"
# What an instance keeps in its folder (``service.config``). A folder holding any of them that
# no demo made is an instance's, on PostgreSQL too (with no database file there): the demo
# would delete its store, or sign its example transfers with the authority's own key.
INSTANCE_FILES = (DATABASE, "signing-key.pem", "secrets.key", "audit.key")
DEMO_ISP = "isp-pan-london-caf.json"
# One example of each outcome, in the order the README explains them.
DEMO_EVENTS = (
    "event-routine-with-isp.json",
    "event-ad-hoc-with-judgement.json",
    "event-routine-without-basis.json",
    "event-judgement-not-to-share.json",
)


class DemoRefused(Exception):
    """Why the demo cannot run in the folder it was given, in one line for the user."""


@dataclass(frozen=True)
class DemoResult:
    example: str
    route: str
    outcome: str
    signature: str


def example_events() -> dict[str, bytes]:
    return {name: (EXAMPLES / name).read_bytes() for name in DEMO_EVENTS}


def run_demo(out_dir: Path, echo: Callable[[str], None]) -> list[DemoResult]:
    out_dir = out_dir.resolve()
    with _afresh(out_dir):
        results = _run(out_dir)
    echo(f"caf-relay demo: embedded default (SQLite + in-process queue) in {out_dir}")
    for r in results:
        echo(f"\n{r.example}\n  {r.route}\n  {r.outcome}\n  {r.signature}")
    echo(
        f"\nDelivered envelopes are in {out_dir / 'inbox'}; check one with\n"
        f"  {_console_script()} verify {out_dir / 'inbox'}/<authority>/<envelope id>.json "
        f"--jwks {out_dir / 'jwks.json'}"
    )
    return results


@contextmanager
def _afresh(out_dir: Path) -> Iterator[None]:
    """``out_dir`` for this run alone, emptied of the last run but for its keys, so that what
    the run prints is all that happened; ``DemoRefused`` if it cannot be."""
    try:
        found = [name for name in INSTANCE_FILES if (out_dir / name).exists()]
        if found and not _made_by_a_demo(out_dir):
            raise DemoRefused(
                f"{out_dir} holds a caf-relay instance's {', '.join(found)}, which the demo did "
                "not make; the demo deletes its folder's database and signs with its key, so "
                "give --dir a new or empty folder."
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        mark = (out_dir / DEMO_MARK).open("a")
    except OSError as exc:
        raise DemoRefused(f"Cannot use {out_dir} for the demo: {exc.strerror}.") from exc
    with mark:
        try:
            fcntl.flock(mark, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DemoRefused(
                f"Another caf-relay demo is running in {out_dir}; wait for it to finish, "
                "or give --dir another folder."
            ) from None
        try:
            for stale in out_dir.glob(f"{DATABASE}*"):
                stale.unlink()
            if (out_dir / "inbox").exists():
                shutil.rmtree(out_dir / "inbox")
        except OSError as exc:
            raise DemoRefused(f"Cannot clear {exc.filename} for the demo: {exc.strerror}.") from exc
        yield


def _made_by_a_demo(out_dir: Path) -> bool:
    if (out_dir / DEMO_MARK).exists():
        return True
    return (out_dir / "jwks.json").is_file() and (out_dir / "inbox").is_dir()


def _run(out_dir: Path) -> list[DemoResult]:
    settings = Settings.from_env({"CAF_RELAY_INSTANCE_DIR": str(out_dir)})
    try:
        services = build_services(settings)
    except ValueError as exc:  # a key file it cannot write or read
        raise DemoRefused(str(exc)) from exc
    try:
        store = services.store
        store.initialise()
        store.add_isp(json.loads((EXAMPLES / DEMO_ISP).read_text()))
        events = {name: json.loads(body) for name, body in example_events().items()}
        for event in events.values():
            code = event["data"]["to_authority"]
            store.organisations.set_adapter(
                code, "directory", {"path": str(out_dir / "inbox" / code)}, {}
            )
        jwks = services.keyring.jwks()
        (out_dir / "jwks.json").write_text(json.dumps(jwks, indent=2) + "\n")

        queue = InProcessQueue(services.relay, services.deliverer, store)
        for body in example_events().values():
            queue.publish(body)
        queue.drain()

        names = store.authorities()
        results = []
        for name, event in events.items():
            view = store.transfers.view(event["id"])
            route = f"{names[view['from_authority']]} -> {names[view['to_authority']]}"
            results.append(DemoResult(name, route, _outcome(view), _signature(view, out_dir, jwks)))
    finally:
        services.close()
    return results


def _console_script() -> str:
    """The command as a shell will find it: the demo runs from a venv not on the PATH."""
    installed = Path(sys.executable).with_name("caf-relay")
    return str(installed) if installed.exists() else "caf-relay"


def _outcome(view: dict) -> str:
    decision, state = view["decision"], view["state"]
    categories = next((e["detail"] for e in view["timeline"] if e["action"] == "minimised"), None)
    if state == TransferState.DELIVERED:
        if "isp" in decision:
            basis = f"ISP {decision['isp']['id']} v{decision['isp']['version']}"
        else:
            basis = _judgement_by(decision["judgement"])
        withheld = ", ".join(categories["withheld"]) or "nothing"
        return f"DELIVERED with {basis}; withheld: {withheld}"
    if state == TransferState.AWAITING_JUDGEMENT:
        return f"PARKED awaiting judgement: {decision['reason']}"
    if state == TransferState.WITHHELD:
        judgement = decision["judgement"]
        return f"WITHHELD by {_judgement_by(judgement)}: {judgement['reasons']['necessity']}"
    detail = view["deliveries"][-1]["detail"] if view["deliveries"] else decision["reason"]
    return f"{state.upper()}: {detail}"


def _judgement_by(judgement: dict) -> str:
    practitioner = judgement["practitioner"]
    return f"judgement of {practitioner['name']} ({practitioner['role']})"


def _signature(view: dict, out_dir: Path, jwks: dict) -> str:
    if view["state"] != TransferState.DELIVERED:
        return "nothing sent, nothing signed"
    envelope = view["envelope"]
    path = out_dir / "inbox" / view["to_authority"] / f"{envelope['envelope_id']}.json"
    try:
        header, payload = verify(path.read_bytes(), jwks)
    except (OSError, VerificationError) as exc:
        return f"SIGNATURE DOES NOT VERIFY: {exc}"
    if payload["envelope_id"] != envelope["envelope_id"]:
        return "SIGNATURE VERIFIES but the envelope id does not match the file name"
    return f"signature verifies ({header['alg']}, kid {header['kid'][:12]}...)"
