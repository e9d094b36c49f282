"""``caf-relay dead-letter list``: the embedded queue's dead letters, found by the event id their
refusal is audited under, as an operator holding a ``rejected`` record looks for one; never what
they hold, which may be a child's case."""

from service.embedded import EMBEDDED_PROCESSING_FAILED, InProcessQueue
from tests.support import examples
from tests.support.cli import runner
from tests.support.crashing import CrashesOn
from tests.support.store_reads import audit_actions


def _refused(services) -> dict[str, bytes]:
    """Input of several kinds refused on the embedded queue, by the event id it names."""
    unknown_field = examples.event(examples.ROUTINE_WITH_ISP, id="refused-field", colour="red")
    unknown_authority = examples.event(examples.ROUTINE_WITH_ISP, id="refused-authority")
    unknown_authority["data"]["to_authority"] = "E09000099"
    poison = examples.event(examples.ROUTINE_WITH_ISP, id="embedded-poison")
    bodies = {
        "refused-field": examples.encode(unknown_field),
        "-": b"this is not json",
        "refused-authority": examples.encode(unknown_authority),
        "embedded-poison": examples.encode(poison),
    }
    queue = InProcessQueue(
        CrashesOn(services.relay, b"embedded-poison"), services.deliverer, services.store
    )
    for body in bodies.values():
        queue.publish(body)
    queue.drain()
    return bodies


def test_no_dead_letters_is_said_not_left_blank(services):
    listed = runner(services)("dead-letter", "list")

    assert listed.exit_code == 0, listed.output
    assert listed.output.startswith("No dead letters; retention removes letters ")


def test_dead_letters_are_listed_with_the_event_id_their_refusal_is_audited_under(services):
    bodies = _refused(services)

    listed = runner(services)("dead-letter", "list")

    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert [line.split()[2] for line in lines] == list(bodies)
    assert lines[3].endswith(f"  embedded-poison  {EMBEDDED_PROCESSING_FAILED}")
    # The case (the child's name, the case reference) is never printed, only the reason.
    child = examples.event(examples.ROUTINE_WITH_ISP)["data"]["case"]["child_identity"]
    assert child["family_name"] not in listed.output
    assert examples.event(examples.ROUTINE_WITH_ISP)["subject"] not in listed.output


def test_a_rejected_audit_records_dead_letter_is_found_by_its_event_id(services):
    _refused(services)
    run = runner(services)

    found = run("dead-letter", "list", "--event-id", "refused-authority")
    never_sent = run("dead-letter", "list", "--event-id", "never-sent")

    ((_, action, detail),) = audit_actions(services.store, "refused-authority")
    assert action == "rejected"
    assert found.exit_code == 0, found.output
    ((letter_id, received_at, event_id, *reason),) = [
        line.split() for line in found.output.splitlines()
    ]
    assert (event_id, " ".join(reason)) == ("refused-authority", detail["reason"])
    assert never_sent.exit_code == 0, never_sent.output
    assert never_sent.output.startswith("No dead letters with event id never-sent; retention ")


def test_dead_letters_are_listed_a_page_at_a_time(services):
    bodies = _refused(services)
    run = runner(services)

    first = run("dead-letter", "list", "--page-size", "3")
    last_id = first.output.splitlines()[2].split()[0]
    rest = run("dead-letter", "list", "--page-size", "3", "--after", last_id)

    assert first.exit_code == 0, first.output
    assert first.output.splitlines()[3] == f"More: --after {last_id}"
    assert [line.split()[2] for line in rest.output.splitlines()] == list(bodies)[3:]


def test_a_poison_messages_letter_and_its_audited_refusal_are_found_by_the_same_event_id(
    services,
):
    """The letter of a message whose processing kept failing names the id read from it; its
    refusal in the audit must be under that id too, or an operator holding the letter finds
    nothing by it: ``transfer show`` said only that there was no such transfer."""
    _refused(services)
    run = runner(services)

    shown = run("transfer", "show", "embedded-poison")

    assert shown.exit_code == 1
    assert "'embedded-poison': refused 1 time, last at " in shown.output
    assert f"(processing_failed: {EMBEDDED_PROCESSING_FAILED})" in shown.output
    (letter,) = run("dead-letter", "list", "--event-id", "embedded-poison").output.splitlines()
    assert letter.endswith(f"  embedded-poison  {EMBEDDED_PROCESSING_FAILED}")
