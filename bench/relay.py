"""Throughput and latency of caf-relay's whole pipeline against a raw pika relay, in one run.

    .venv/bin/python bench/relay.py            # the figures of issue 6 (1-1.5 minutes)
    .venv/bin/python bench/relay.py --quick    # a smoke test (well under a minute)

One invocation measures, against the real RabbitMQ and in a vhost of its own:
- the raw relay (bench/baseline.py): consume, republish persistently with confirms, ack;
- `caf-relay worker` on SQLite and on PostgreSQL, with one and with two worker processes,
  delivering routine transfers through the amqp adapter to a queue;
and prints one table: events/s from first publish to last delivered and its ratio to the raw
relay, CPU time per event and peak RSS and PSS of the relay processes, and the latency p50/p99 of an
open-loop stream at a fixed rate. bench/README.md says what each figure means.
"""

from __future__ import annotations

import sys
from pathlib import Path

if not __package__:  # run as a script: the imports below need the repo root, not bench/
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field

import pika
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from bench import caf, floor
from bench.isolation import POSTGRES_ADMIN_URL, Broker, own_database, own_vhost, rabbitmqctl
from bench.processes import (
    Child,
    HostCpu,
    PeakPss,
    broker_pids,
    cpu_seconds,
    machine,
    peak_rss_mb,
    wait_until,
)
from bench.traffic import (
    Collector,
    Publisher,
    event_id_of_envelope,
    event_id_of_event,
    large_routine_events,
    percentile,
    routine_events,
)
from contracts.vocabulary import EVENT_TYPE
from service.config import DEFAULT_MAX_EVENT_BYTES, DEFAULT_PREFETCH
from service.worker import DEAD_QUEUE, TRANSFERS_QUEUE

PREFETCH = DEFAULT_PREFETCH  # the worker's (CAF_RELAY_PREFETCH); the raw relay uses the same window
WARM_UP_EVENTS = 25  # opens every recipient's adapter connection before the clock starts
START_SECONDS = 90
# A latency run whose output rate falls below this share of the offered rate did not keep up.
KEPT_UP = 0.95
BENCH_DIR = str(Path(__file__).resolve().parent)
BASELINE_SCRIPT = str(Path(__file__).with_name("baseline.py"))
BASELINE_IN = "bench.baseline.in"
BASELINE_OUT = "bench.baseline.out"
STORES = ("sqlite", "postgresql")
# Events for the floor taken before and after the runs (bench/floor.py): a few seconds each.
FLOOR_EVENTS = 1000


@dataclass(frozen=True)
class Target:
    """A relay under test: where events go in, where they come out, which processes do it."""

    exchange: str
    routing_key: str
    input_queue: str
    output_queue: str
    event_id_of: Callable[[bytes], str]
    children: list[Child]


@dataclass
class Figures:
    """One row of the table; None where a figure was not measured."""

    run: str
    events: int = 0
    delivered: int = 0
    seconds: float | None = None
    events_per_second: float | None = None
    first_quarter_per_second: float | None = None
    last_quarter_per_second: float | None = None
    ratio_to_baseline: float | None = None
    cpu_ms_per_event: float | None = None
    peak_rss_mb: list[float] = field(default_factory=list)
    peak_pss_mb: list[float] = field(default_factory=list)
    host_cpu_busy: float | None = None
    broker_cpu_ms_per_event: float | None = None
    latency: dict[str, float] | None = None
    problems: list[str] = field(default_factory=list)


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, help="events per throughput run (2000; quick 300)")
    parser.add_argument("--rate", type=float, default=200.0, help="latency run's events/s")
    parser.add_argument(
        "--latency-events", type=int, help="events per latency run (2000; quick 400); 0 skips"
    )
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated: %(default)s")
    parser.add_argument("--workers", default="1,2", help="worker processes per run: %(default)s")
    parser.add_argument("--quick", action="store_true", help="a smoke test: fewer events")
    parser.add_argument(
        "--large", action="store_true", help="events just under the size limit, not of ~2 KB"
    )
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="PATH", help="also write the figures as JSON"
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="most seconds per phase")
    parser.add_argument(
        "--stall", type=float, default=30.0, help="give up a phase after this long with no output"
    )
    parser.add_argument("--broker-host", default="127.0.0.1")
    parser.add_argument("--broker-port", type=int, default=5672)
    parser.add_argument(
        "--postgres-url",
        default=POSTGRES_ADMIN_URL,
        help="a database to connect to while creating the run's own: %(default)s",
    )
    options = parser.parse_args(argv)
    options.events = options.events or (300 if options.quick else 2000)
    if options.latency_events is None:
        options.latency_events = 400 if options.quick else 2000
    options.stores = [s.strip() for s in options.stores.split(",") if s.strip()]
    options.workers = [int(w) for w in options.workers.split(",") if w.strip()]
    if unknown := set(options.stores) - set(STORES):
        parser.error(f"unknown store(s): {', '.join(sorted(unknown))}")
    return options


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    began = time.monotonic()
    # The same code's CPU cost moves with this shared machine by the hour: the floor before and
    # after says how fast the machine was while these figures were taken.
    floor_before = _floor_ms()
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="caf-bench-")))
        broker = stack.enter_context(own_vhost(options.broker_host, options.broker_port))
        runs = run_all(options, broker, folder)
    report = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": machine(),
        "floor_ms_per_event": {"before": floor_before, "after": _floor_ms()},
        "software": software(options),
        "settings": {
            "events": options.events,
            "warm_up_events": WARM_UP_EVENTS,
            "latency_events": options.latency_events,
            "rate": options.rate,
            "prefetch": PREFETCH,
            "large_events": options.large,
        },
        "seconds": round(time.monotonic() - began, 1),
        "runs": [asdict(figures) for figures in runs],
    }
    print_report(report, runs, options)
    if options.json:
        write_json(report, options.json)
    return 1 if any(f.delivered < f.events or f.events == 0 for f in runs) else 0


def _floor_ms() -> float:
    _progress(f"the machine's speed: bench/floor.py over {FLOOR_EVENTS} events")
    return round(sum(floor.measure(FLOOR_EVENTS).values()), 3)


def _exit_on_sigterm(*_) -> None:
    raise SystemExit(128 + signal.SIGTERM)  # so that every finally runs and cleans up


def run_all(options: argparse.Namespace, broker: Broker, folder: Path) -> list[Figures]:
    """The baseline first, then caf-relay on each store with each number of workers."""
    runs = [_guarded("baseline", lambda: run_baseline(broker, options, folder))]
    for store in options.stores:
        for workers in options.workers:
            name = f"caf-relay {store} {workers}w"
            runs.append(
                _guarded(
                    name, lambda s=store, w=workers: run_caf_relay(s, w, broker, options, folder)
                )
            )
    baseline = runs[0].events_per_second
    for figures in runs[1:]:
        if baseline and figures.events_per_second:
            figures.ratio_to_baseline = figures.events_per_second / baseline
    return runs


def _guarded(name: str, run: Callable[[], Figures]) -> Figures:
    """One run's figures, or a row saying why it failed, so the other runs still report."""
    _progress(f"{name}: starting")
    try:
        figures = run()
    except Exception as exc:
        # The bench's own line: a library's (pathlib reading /proc, pika) says less.
        frames = traceback.extract_tb(exc.__traceback__)
        where = ([f for f in frames if f.filename.startswith(BENCH_DIR)] or frames)[-1]
        failure = f"{exc!r} at {Path(where.filename).name}:{where.lineno} ({where.line})"
        _progress(f"{name}: failed: {failure}")
        return Figures(name, problems=[f"run failed: {failure}"])
    _progress(f"{name}: done")
    return figures


def run_baseline(broker: Broker, options: argparse.Namespace, folder: Path) -> Figures:
    with broker.channel() as channel:
        channel.queue_declare(BASELINE_IN, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_declare(BASELINE_OUT, durable=True)
    argv = [sys.executable, BASELINE_SCRIPT, broker.url, BASELINE_IN, BASELINE_OUT, str(PREFETCH)]
    child = Child("baseline", argv, dict(os.environ), folder / "baseline.log")
    target = Target("", BASELINE_IN, BASELINE_IN, BASELINE_OUT, event_id_of_event, [child])
    return measure("baseline", target, broker, options, with_latency=True)


def run_caf_relay(
    store: str, workers: int, broker: Broker, options: argparse.Namespace, folder: Path
) -> Figures:
    label = f"{store}-{workers}w"
    run_folder = folder / label
    run_folder.mkdir()
    with _database(store, options.postgres_url, run_folder) as database_url:
        secrets_key = Fernet.generate_key().decode()
        env = caf.relay_env(run_folder / "instance", database_url, broker, secrets_key, PREFETCH)
        caf.prepare_store(env, broker)
        caf.declare_queues(broker)
        children = caf.workers(env, workers, run_folder, label)
        target = Target(
            "caf.events",
            EVENT_TYPE,
            TRANSFERS_QUEUE,
            caf.OUTPUT_QUEUE,
            event_id_of_envelope,
            children,
        )
        name = f"caf-relay {store} {workers}w"
        figures = measure(name, target, broker, options, with_latency=workers == 1)
        if dead := broker.messages(DEAD_QUEUE):
            figures.problems.append(f"{dead} messages dead-lettered to {DEAD_QUEUE}")
        figures.problems += caf.store_problems(env)
    return figures


@contextmanager
def _database(store: str, postgres_url: str, folder: Path) -> Iterator[str]:
    if store == "postgresql":
        with own_database(postgres_url) as url:
            yield url
    else:
        yield f"sqlite:///{folder / 'caf-relay.sqlite3'}"


def measure(
    name: str,
    target: Target,
    broker: Broker,
    options: argparse.Namespace,
    *,
    with_latency: bool,
) -> Figures:
    """Start the relay's processes, warm up, measure, and stop them, whatever happens."""
    children = target.children
    try:
        for child in children:
            child.start()
        wait_until(
            lambda: (
                broker.consumers(target.input_queue) == len(children)
                or not all(c.alive() for c in children)
            ),
            START_SECONDS,
            f"{name} to start consuming",
        )
        if not all(c.alive() for c in children):
            raise RuntimeError(f"{name} exited at start: {[c.output()[-5:] for c in children]}")
        tag = name.replace(" ", "-")
        with PeakPss([c.pid for c in children]) as pss:
            _progress(f"{name}: warming up with {WARM_UP_EVENTS} events")
            warm_up(target, broker, options, tag)
            _progress(f"{name}: throughput, {options.events} events at once")
            figures = throughput(name, target, broker, options, tag)
            if with_latency and options.latency_events:
                _progress(f"{name}: latency, {options.latency_events} events at {options.rate:g}/s")
                figures.latency = latency(target, broker, options, tag, figures.problems)
            figures.peak_rss_mb = [round(peak_rss_mb(c.pid), 1) for c in children]
        figures.peak_pss_mb = [round(mb, 1) for mb in pss.peaks_mb]
    finally:
        exits = [(child, child.stop()) for child in children]
    figures.problems += [f"{c.name} exited with {code}" for c, code in exits if code != 0]
    for child in children:
        if lines := child.output():
            figures.problems.append(f"{child.name} wrote {len(lines)} lines: {_sample(lines)}")
    return figures


def events(options: argparse.Namespace, prefix: str, count: int) -> dict[str, bytes]:
    """The run's events by event id: routine transfers of about 2 KB, or with ``--large`` as
    large as the relay takes (the bench then holds them all in its own memory, not the relay)."""
    if options.large:
        return dict(large_routine_events(prefix, count, DEFAULT_MAX_EVENT_BYTES))
    return routine_events(prefix, count)


def warm_up(target: Target, broker: Broker, options: argparse.Namespace, tag: str) -> None:
    """Relay a few events untimed, so connections and caches are as in a sustained stream."""
    bodies = events(options, f"{tag}-warm", WARM_UP_EVENTS)
    collector = Collector(broker, target.output_queue, target.event_id_of, bodies)
    with collector, Publisher(broker, target.exchange, target.routing_key) as publisher:
        publisher.burst(bodies.values())
        if collector.wait(options.timeout, options.stall) < len(bodies):
            raise RuntimeError(f"only {collector.arrived} of {len(bodies)} warm-up events arrived")


def throughput(
    name: str, target: Target, broker: Broker, options: argparse.Namespace, tag: str
) -> Figures:
    """Publish every event at once; time from the first publish to the last one delivered."""
    bodies = events(options, f"{tag}-burst", options.events)
    pids = [child.pid for child in target.children]
    collector = Collector(broker, target.output_queue, target.event_id_of, bodies)
    with collector, Publisher(broker, target.exchange, target.routing_key) as publisher:
        beam = broker_pids()
        cpu_before, host_before = sum(map(cpu_seconds, pids)), HostCpu.now()
        broker_before = sum(map(cpu_seconds, beam))
        started = publisher.burst(bodies.values())
        delivered = collector.wait(options.timeout, options.stall)
        cpu_used, host_after = sum(map(cpu_seconds, pids)) - cpu_before, HostCpu.now()
        broker_used = sum(map(cpu_seconds, beam)) - broker_before
    figures = Figures(name, events=len(bodies), delivered=delivered)
    figures.problems += _delivery_problems("throughput", collector, bodies, broker, target)
    if delivered:
        figures.seconds = collector.last_arrival() - started
        figures.events_per_second = delivered / figures.seconds
        first, last = collector.quarter_rates(started)
        figures.first_quarter_per_second, figures.last_quarter_per_second = first, last
        figures.cpu_ms_per_event = cpu_used * 1000 / delivered
        figures.host_cpu_busy = host_after.busy_since(host_before)
        if beam:
            figures.broker_cpu_ms_per_event = broker_used * 1000 / delivered
    return figures


def latency(
    target: Target, broker: Broker, options: argparse.Namespace, tag: str, problems: list[str]
) -> dict[str, float]:
    """Publish at a fixed rate, open loop; each latency counts from the event's scheduled time."""
    bodies = events(options, f"{tag}-paced", options.latency_events)
    collector = Collector(broker, target.output_queue, target.event_id_of, bodies)
    with collector, Publisher(broker, target.exchange, target.routing_key) as publisher:
        scheduled, worst_lag = publisher.paced(bodies, options.rate)
        collector.wait(options.timeout, options.stall)
    problems += _delivery_problems("latency", collector, bodies, broker, target)
    ms = [
        (collector.arrivals[i] - due) * 1000
        for i, due in scheduled.items()
        if i in collector.arrivals
    ]
    if not ms:
        return {"rate": options.rate, "events": len(bodies), "delivered": 0}
    kept_up = len(ms) / (collector.last_arrival() - min(scheduled.values()))
    if kept_up < KEPT_UP * options.rate:
        problems.append(
            f"latency: delivered {kept_up:.0f}/s of the {options.rate:g}/s offered, so the "
            "latencies are mostly queueing and grow with the run's length (--latency-events)"
        )
    return {
        "rate": options.rate,
        "events": len(bodies),
        "delivered": len(ms),
        "delivered_per_second": kept_up,
        "p50_ms": percentile(ms, 0.50),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms),
        "publisher_worst_lag_ms": worst_lag * 1000,
    }


def _delivery_problems(
    phase: str, collector: Collector, bodies: dict[str, bytes], broker: Broker, target: Target
) -> list[str]:
    problems = []
    if missing := [event_id for event_id in bodies if event_id not in collector.arrivals]:
        problems.append(
            f"{phase}: {len(missing)} of {len(bodies)} never arrived ({_sample(missing)}); "
            + broker.depths(target.input_queue, target.output_queue)
        )
    if collector.duplicates:
        problems.append(f"{phase}: {collector.duplicates} delivered more than once")
    if collector.strays:
        problems.append(f"{phase}: {collector.strays} unexpected messages on the output queue")
    return problems


def _sample(items: list[str], count: int = 3) -> str:
    shown = " | ".join(item.strip()[:200] for item in items[:count])
    return shown + (" | ..." if len(items) > count else "")


def software(options: argparse.Namespace) -> dict[str, str]:
    postgresql = "not used"
    if "postgresql" in options.stores:
        postgresql = _version(lambda: _psql_version(options.postgres_url))
    return {
        "rabbitmq": _version(lambda: rabbitmqctl("version")),
        "postgresql": postgresql,
        "python": platform.python_version(),
        "pika": pika.__version__,
    }


def _version(read: Callable[[], str]) -> str:
    try:
        return read()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({type(exc).__name__})"


def _psql_version(postgres_url: str) -> str:
    url = make_url(postgres_url)
    argv = ["psql", "-Atc", "SHOW server_version"]
    for flag, value in (("-h", url.host), ("-p", url.port), ("-U", url.username)):
        argv += [flag, str(value)] if value else []
    argv += ["-d", url.database] if url.database else []
    return subprocess.run(
        argv, check=True, capture_output=True, text=True, timeout=30
    ).stdout.strip()


def print_report(report: dict, runs: list[Figures], options: argparse.Namespace) -> None:
    m, s = report["machine"], report["software"]
    print(
        f"\nmachine: {m['cpu_model']}; {m['cpuinfo_processors']} processors in /proc/cpuinfo, "
        f"os.cpu_count() {m['os_cpu_count']}; {m['ram_gb']} GB RAM; Linux {m['kernel']}"
    )
    speed = report["floor_ms_per_event"]
    print(
        f"machine speed: bench/floor.py's floor {speed['before']:.3f} CPU ms/event before the "
        f"runs, {speed['after']:.3f} after (the same code: lower is a faster machine)"
    )
    print(
        f"software: RabbitMQ {s['rabbitmq']}, PostgreSQL {s['postgresql']}, "
        f"Python {s['python']}, pika {s['pika']}"
    )
    print(f"command: {report['command']}")
    print(
        f"events: {'just under the size limit' if options.large else 'about 2 KB'}; "
        f"throughput: {options.events} events published at once (after {WARM_UP_EVENTS} "
        f"untimed warm-up events); latency: {options.latency_events} events at "
        f"{options.rate:g}/s, open loop, one worker; prefetch {PREFETCH}\n"
    )
    print(_table(runs, options.rate))
    print(
        "\nevents/s: first publish to last delivered; CPU ms/event: relay processes only (a "
        "worker and its delivery process), summed over workers; peak RSS and PSS: per worker, "
        "over its processes (RSS counts the pages they share twice, PSS once); broker CPU: "
        "RabbitMQ's (beam.smp) over the throughput run; host CPU: busy share of all cores over "
        "the throughput run"
    )
    print("\nproblems seen:")
    problems = [(f.run, p) for f in runs for p in f.problems]
    for run, problem in problems:
        print(f"  {run}: {problem}")
    if not problems:
        print("  none: every event delivered once, no worker output, store and audit chain clean")
    print(f"\ntook {report['seconds']:.0f} s")


def _table(runs: list[Figures], rate: float) -> str:
    at = f"@{rate:g}/s"
    header = (
        *("run", "events", "seconds", "events/s", "x baseline", "CPU ms/event", "peak RSS MB"),
        *("peak PSS MB", "broker CPU ms/event", "host CPU"),
        *(f"p50 ms {at}", f"p99 ms {at}", "max ms", "lost"),
    )
    rows = [header, *(_row(f) for f in runs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _row(f: Figures) -> tuple[str, ...]:
    lat = f.latency or {}
    return (
        f.run,
        str(f.events) if f.events else "-",
        _fmt(f.seconds, "{:.2f}"),
        _fmt(f.events_per_second, "{:.0f}"),
        _fmt(f.ratio_to_baseline, "{:.2f}x"),
        _fmt(f.cpu_ms_per_event, "{:.2f}"),
        "/".join(f"{mb:.0f}" for mb in f.peak_rss_mb) or "-",
        "/".join(f"{mb:.0f}" for mb in f.peak_pss_mb) or "-",
        _fmt(f.broker_cpu_ms_per_event, "{:.2f}"),
        _fmt(None if f.host_cpu_busy is None else f.host_cpu_busy * 100, "{:.0f}%"),
        _fmt(lat.get("p50_ms"), "{:.1f}"),
        _fmt(lat.get("p99_ms"), "{:.1f}"),
        _fmt(lat.get("max_ms"), "{:.1f}"),
        str(f.events - f.delivered) if f.events else "-",
    )


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def write_json(report: dict, path: str) -> None:
    text = json.dumps(report, indent=2)
    if path == "-":
        print(text)
    else:
        Path(path).write_text(text + "\n")


def _progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
