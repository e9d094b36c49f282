"""``caf-relay audit ...`` and ``caf-relay retention ...``: the audit trail for operators,
auditors and subject access requests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from contracts.api.audit import MOMENT_TEXT
from service.access import OPERATOR
from service.audit import AuditReport, read_checkpoint
from service.cli_common import (
    load_services,
    read_jwks,
    read_text,
    require_known_authority,
    write_text,
)
from service.domain.child_keys import CHILD_RECORD_READ, IdentifierError
from service.retention import DEAD_LETTER_PERIOD
from service.signing import VerificationError
from service.subject_access import render_html

IDENTIFIER_OPTIONS = [
    ("nhs-number", "The child's NHS number."),
    ("upn", "The child's unique pupil number."),
]
NAME_OPTIONS = [
    ("given-name", "With --family-name and --date-of-birth."),
    ("family-name", "With --given-name and --date-of-birth."),
    ("date-of-birth", "YYYY-MM-DD, with the names."),
]


def _child_options(*options: tuple[str, str]):
    """The ways to name a child: a search may use names, a subject access request may not."""

    def add(command):
        for name, help_text in reversed(options):
            command = click.option(f"--{name}", help=help_text)(command)
        return command

    return add


def _child_params(options: dict) -> dict[str, str | None]:
    return {
        "nhs_number": options.pop("nhs_number"),
        "unique_pupil_number": options.pop("upn"),
        "given_name": options.pop("given_name", None),
        "family_name": options.pop("family_name", None),
        "date_of_birth": options.pop("date_of_birth", None),
    }


def _describe(report: AuditReport) -> str:
    v = report.verification
    lines = []
    if v.finding is None:
        lines.append(
            f"Audit chain intact: {v.records} records, head seq {v.head_seq} {v.head_hash}."
        )
    else:
        finding = v.finding
        lines.append(
            f"Audit chain BROKEN at record {finding.seq}: {finding.damage.value}. {finding.reason}"
        )
    lines.append(f"Checkpoints matched against the chain: {report.checkpoints_checked}.")
    lines += [f"Checkpoint problem: {error}" for error in report.checkpoint_errors]
    judgements = report.judgements
    checked = f"Judgements checked against their digests in the chain: {judgements.checked}"
    if judgements.not_checked:
        checked += f"; {judgements.not_checked} recorded before the chain held digests, not checked"
    lines.append(checked + ".")
    lines += [f"Judgement problem: {problem}" for problem in judgements.problems]
    if report.index_errors:
        lines += [f"Search index problem: {problem}" for problem in report.index_errors]
    else:
        lines.append("Search index matches the records.")
    return "\n".join(lines)


@click.group()
def audit() -> None:
    """The tamper-evident audit trail."""


@audit.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A checkpoint kept elsewhere (JWS file) that the chain must still match; repeatable.",
)
@click.option(
    "--jwks", "jwks_source", help="JWKS file or URL with keys beside the current one (retired)."
)
@click.option("--no-checkpoint", is_flag=True, help="Do not sign a checkpoint of the head.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def audit_verify(checkpoint_files, jwks_source, no_checkpoint, as_json) -> None:
    """Walk the chain; exit 1 naming the first bad record, a judgement that no longer matches
    its digest, or where the search index differs from the records. An intact head is
    checkpointed."""
    jwks = read_jwks(jwks_source) if jwks_source else None
    kept = [read_text(path, "the checkpoint") for path in checkpoint_files]
    services = load_services()
    try:
        report = services.audit.verify(kept, jwks)
        signed = None if no_checkpoint else services.audit.sign_checkpoint(report)
    finally:
        services.close()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        click.echo(_describe(report))
        if signed is not None:
            click.echo(f"Signed a checkpoint of record {signed.seq}.")
    sys.exit(0 if report.intact else 1)


@audit.command("checkpoint")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the JWS here.")
def audit_checkpoint(out: Path | None) -> None:
    """Verify the chain, then sign its head; print the checkpoint (a JWS) to keep elsewhere."""
    services = load_services()
    try:
        report = services.audit.verify()
        signed = services.audit.sign_checkpoint(report)
    finally:
        services.close()
    if signed is None:
        reason = "the chain is empty" if report.chain_intact else _describe(report)
        raise click.ClickException(f"No checkpoint signed: {reason}")
    if out is None:
        click.echo(signed.jws)
    else:
        write_text(out, signed.jws + "\n", f"the checkpoint of record {signed.seq}")
        click.echo(f"Checkpoint of record {signed.seq} written to {out}")


@audit.command("verify-checkpoint")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--jwks", "jwks_source", required=True, help="The relay's JWKS, a file or URL.")
def audit_verify_checkpoint(file: Path, jwks_source: str) -> None:
    """Check a checkpoint's signature offline, with the published JWKS; needs no database."""
    try:
        checkpoint = read_checkpoint(read_text(file, "the checkpoint"), read_jwks(jwks_source))
    except VerificationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"Checkpoint verifies (kid {checkpoint.kid}): audit record {checkpoint.seq} had hash "
        f"{checkpoint.hash} at {checkpoint.at}."
    )


@audit.command("search")
@click.option("--case-reference")
@click.option("--event-id", help="Every record made under this event id, a refusal of it too.")
@_child_options(*IDENTIFIER_OPTIONS, *NAME_OPTIONS)
@click.option("--authority", help="A transfer's sending or receiving authority (GSS code).")
@click.option("--basis", type=click.Choice(["isp", "judgement", "none"]))
@click.option("--action", help=f"Records of this action only, e.g. {CHILD_RECORD_READ}.")
@click.option("--since", help=f"From this: {MOMENT_TEXT}")
@click.option("--until", help=f"Before this: {MOMENT_TEXT}")
@click.option("--page-size", default="50", show_default=True, help="Records a page, at most 500.")
@click.option("--after", default="0", help="The seq a previous page ended at.")
@click.option("--json", "as_json", is_flag=True, help="The page as JSON.")
def audit_search(as_json: bool, **options) -> None:
    """Find audit records by case, event id, child, authority, basis, action and time; a page
    at a time.

    A search naming a child is audited as a read of its record, as an export is: with
    --action child_record_read, the child's name finds the reads made by that identifier."""
    params = {**_child_params(options), **options}
    services = load_services()
    try:
        require_known_authority(services, options["authority"])
        page = services.audit_searches.page(params, OPERATOR)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    finally:
        services.close()
    if as_json:
        click.echo(json.dumps({"records": page.records, "next_after": page.next_after}, indent=2))
        return
    for record in page.records:
        click.echo(
            f"{record['seq']:>8}  {record['recorded_at']}  {record['action']:<18}  "
            f"{record['event_id'] or '-'}"
        )
    if page.next_after is not None:
        click.echo(f"More: --after {page.next_after}")


@audit.command("subject-access")
@_child_options(*IDENTIFIER_OPTIONS)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a printable HTML page here; without it the export is printed as JSON.",
)
def audit_subject_access(html_path: Path | None, **options) -> None:
    """Every transfer of one child: basis, parties, dates, categories shared and withheld."""
    services = load_services()
    try:
        export = services.subject_access.export(_child_params(options), OPERATOR)
    except IdentifierError as exc:
        raise click.UsageError(str(exc)) from exc
    finally:
        services.close()
    if html_path is None:
        click.echo(json.dumps(export, indent=2, ensure_ascii=False))
        return
    write_text(html_path, render_html(export), "the export")
    click.echo(f"{len(export['transfers'])} transfers written to {html_path}")


@click.group()
def retention() -> None:
    """Retention of delivered and withheld transfers' payloads, and of dead letters."""


@retention.command("run")
def retention_run() -> None:
    """Purge the payloads of delivered and withheld transfers past their retention period, and
    the dead letters kept past theirs; audit each."""
    services = load_services()
    try:
        ran = services.retention.run()
    finally:
        services.close()
    for item in ran.payloads:
        click.echo(f"purged {item.event_id} ({item.period_days} days, {item.source})")
    click.echo(f"{len(ran.payloads)} payloads purged.")
    days = services.settings.dead_letter_retention_days
    click.echo(f"{ran.dead_letters} dead letters removed (kept {days} days, {DEAD_LETTER_PERIOD}).")
