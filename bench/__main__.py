"""`make bench`: performance goals as ratios against baselines measured in the same run.

1. scan: the index-driven overdue scan with 50 tasks due, in catalogs of 500 and 5,000
   tasks, against evaluating every task of the large catalog (what a naive scan does).
   Goal: the large-catalog scan costs about what the small one does (ratio near 1) and a
   small fraction of the full evaluation.
2. intake: reports through intake's HTTP path (auth, validation, publish with acks=all)
   against publishing the same events with a bare producer. Goal: overhead under 3x.
3. apply: the tracker applying reports (decode, dedupe, history, state, light, outbox, one
   transaction each) against inserting the same rows with one INSERT each. Goal: under 5x.
4. directory: intake's time to ready (start to `/readyz` 200) after 10,000 key rotations
   (each a new key and a revocation tombstone, published by the tracker while an intake
   with a checkpoint directory runs) against the same live state published once to a fresh
   directory topic. Goal: an intake restarting from its checkpoint within 1.5x. Also shown:
   a brand-new replica without a checkpoint, which on Tansu (no compaction) reads the whole
   history; on Kafka compaction shrinks it once segments close and tombstones expire.

`python -m bench directory` runs only item 4 (names: scan, flow, directory).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from kafka import KafkaProducer
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from devtools.servers import Broker, start_broker, start_postgres
from services.intake.api import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.tracker.assessment import assess
from services.tracker.catalog.model import Deadline, ParsedDocument, ParsedTask
from services.tracker.consumer import make_report_handler
from services.tracker.importer import import_document
from services.tracker.keys import create_key, revoke_key
from services.tracker.orm import Task
from services.tracker.outbox import drain
from services.tracker.settings import TrackerSettings
from services.tracker.workers import scan_once
from shared import topics
from shared.apikeys import IssuedKey
from shared.clock import SHANGHAI, FixedClock
from shared.db import UnitOfWork, make_engine, make_session_factory
from shared.events import ProgressReport, ProgressReportSubmitted, encode
from shared.kafka import ensure_topics
from shared.migrations import upgrade_head
from shared.vocabulary import DeadlineKind

ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2022, 7, 1, 9, 0, tzinfo=SHANGHAI)


def catalog(size: int, *, code: str) -> ParsedDocument:
    """A synthetic catalog of `size` tasks over 20 units."""
    tasks = tuple(
        ParsedTask(
            code=f"{code}-{n:05d}",
            section="一、基准测试",
            item=str(n),
            text=f"基准任务{n}。",
            text_original=f"基准任务{n}。",
            lead_units=(f"基准单位{n % 20:02d}",),
            co_units=(),
            leaders=("基准领导",),
            deadline=Deadline(
                text="年底前完成", kind=DeadlineKind.COMPLETE, due=dt.date(2022, 12, 31)
            ),
            milestones=(),
            targets=(),
            line=n,
        )
        for n in range(size)
    )
    return ParsedDocument(title=f"基准{code}", year=2022, format="txt", tasks=tasks, code=code)


def timed(fn: Callable[[], Any], *, repeat: int = 5) -> float:
    """Median wall time of `fn` over `repeat` runs."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def database(server: Any, name: str) -> Any:
    url = server.create_database(name)
    upgrade_head(ROOT / "services" / "tracker" / "migrations", url)
    return make_session_factory(make_engine(url))


def bench_scan(server: Any) -> dict[str, float]:
    results: dict[str, float] = {}
    for size in (500, 5000):
        factory = database(server, f"bench_scan_{size}")
        with UnitOfWork(factory) as uow:
            import_document(uow.session, catalog(size, code=f"S{size}"), now=NOW)
            uow.commit()
        scan_once(factory, now=NOW, batch_size=1000)  # first evaluation of everything

        def rearm(factory: Any = factory) -> None:
            with UnitOfWork(factory) as uow:
                ids = uow.session.execute(select(Task.id).order_by(Task.id).limit(50)).scalars()
                uow.session.execute(
                    update(Task).where(Task.id.in_(list(ids))).values(next_evaluation_at=NOW)
                )
                uow.commit()

        def scan(factory: Any = factory) -> None:
            rearm(factory)
            scan_once(factory, now=NOW, batch_size=1000)

        results[f"scan_{size}"] = timed(scan) - timed(rearm)
        if size == 5000:

            def full(factory: Any = factory) -> None:
                with UnitOfWork(factory) as uow:
                    for task in uow.session.execute(select(Task)).scalars():
                        assess(task, now=NOW)

            results["full_evaluation_5000"] = timed(full, repeat=3)
    return results


def _unit_key(session: Session, unit: str) -> IssuedKey:
    """A unit's key without expiry, issued the tracker's way."""
    return create_key(session, role="unit", unit_name=unit, label="bench", expires_at=None, now=NOW)


def bench_intake_and_apply(server: Any, bootstrap: str, count: int = 400) -> dict[str, float]:
    factory = database(server, "bench_flow")
    clock = FixedClock(NOW)
    with UnitOfWork(factory) as uow:
        import_document(uow.session, catalog(20, code="F"), now=NOW)
        uow.session.flush()
        key = _unit_key(uow.session, "基准单位00").plaintext
        uow.commit()
    settings = TrackerSettings(
        database_url=str(factory.kw["bind"].url), kafka_bootstrap_servers=bootstrap
    )
    ensure_topics(settings, topics.ALL)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    drain(factory, producer, now=NOW)

    def event(n: int) -> ProgressReportSubmitted:
        return ProgressReportSubmitted(
            event_id=uuid.uuid4(),
            occurred_at=NOW,
            task_code="F-00000",
            unit="基准单位00",
            key_id="bench",
            report=ProgressReport(percent=n % 100, summary=f"第{n}次报告。"),
        )

    def bare() -> None:
        for n in range(count):
            producer.send(topics.PROGRESS_REPORTS, key=b"F-00000", value=encode(event(n))).get(10)

    results = {"bare_publish": timed(bare, repeat=3) / count}
    # The per-key rate limit would measure the limiter, not the path: lift it for the run.
    intake_settings = IntakeSettings(
        kafka_bootstrap_servers=bootstrap, rate_limit_per_minute=1e9, rate_limit_burst=10**6
    )
    intake = TestClient(create_intake(intake_settings, clock))
    with intake:
        deadline = time.monotonic() + 30
        while intake.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {key}"}

        def through_intake() -> None:
            for n in range(count):
                response = intake.post(
                    "/v1/reports",
                    headers=auth,
                    json={"task_code": "F-00000", "percent": n % 100, "summary": f"第{n}次报告。"},
                )
                assert response.status_code == 202, response.text

        results["intake_publish"] = timed(through_intake, repeat=3) / count
    producer.close()

    handler = make_report_handler(factory, clock)
    messages = [
        type(
            "Message",
            (),
            {
                "value": encode(event(n)),
                "topic": topics.PROGRESS_REPORTS,
                "partition": 0,
                "offset": n,
            },
        )()
        for n in range(count)
    ]
    started = time.perf_counter()
    for message in messages:
        handler(message)
    results["tracker_apply"] = (time.perf_counter() - started) / count

    def bare_insert() -> None:
        with factory() as session:
            for n in range(count):
                session.execute(
                    text(
                        "INSERT INTO tracker.processed_events"
                        " (event_id, topic, partition, \"offset\") VALUES (:id, 'bench', 0, :n)"
                    ),
                    {"id": uuid.uuid4(), "n": n},
                )
                session.commit()

    results["bare_insert"] = timed(bare_insert, repeat=3) / count
    return results


def _relay_all(factory: Any, bootstrap: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    try:
        drain(factory, producer, now=NOW)
    finally:
        producer.close()


def _intake_ready_seconds(bootstrap: str, cache_dir: Path | None = None) -> float:
    """Wall time from intake's start to its first `/readyz` 200 (the directory loaded)."""
    settings = IntakeSettings(kafka_bootstrap_servers=bootstrap, directory_cache_dir=cache_dir)
    started = time.perf_counter()
    with TestClient(create_intake(settings, FixedClock(NOW))) as intake:
        deadline = time.monotonic() + 120
        while intake.get("/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("intake not ready after 120s")
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        directory = intake.app.state.directory  # type: ignore[attr-defined]
        assert len(directory.keys) == 20, len(directory.keys)
        follower = intake.app.state.follower  # type: ignore[attr-defined]
        assert cache_dir is None or follower.checkpoint_outcome == "restored"
    return elapsed


def bench_directory(server: Any, rotations: int = 10_000) -> dict[str, float]:
    """Intake's start after `rotations` key rotations vs. the same state published once.

    After the rotations: an intake restarting from the checkpoint an intake running through
    them left (the goal), and a brand-new replica without one (the whole history on Tansu).
    """
    results: dict[str, float] = {}
    for name, rounds in (("fresh", 0), ("rotated", rotations)):
        broker: Broker = start_broker()
        cache = Path(tempfile.mkdtemp(prefix="duban-bench-directory-"))
        try:
            factory = database(server, f"bench_directory_{name}")
            with UnitOfWork(factory) as uow:
                import_document(uow.session, catalog(20, code=f"D{name[0].upper()}"), now=NOW)
                uow.session.flush()
                live = {
                    unit: _unit_key(uow.session, unit).key_id
                    for unit in (f"基准单位{n:02d}" for n in range(20))
                }
                uow.commit()
            ensure_topics(TrackerSettings(kafka_bootstrap_servers=broker.bootstrap), topics.ALL)
            _relay_all(factory, broker.bootstrap)
            running = IntakeSettings(
                kafka_bootstrap_servers=broker.bootstrap, directory_cache_dir=cache
            )
            # An intake runs through the rotations; it leaves its checkpoint when it stops.
            with TestClient(create_intake(running, FixedClock(NOW))) as intake:
                done = 0
                while done < rounds:
                    # The tracker's own path: issue the new key, revoke the old (a tombstone).
                    with UnitOfWork(factory) as uow:
                        for n in range(done, min(done + 500, rounds)):
                            unit = f"基准单位{n % 20:02d}"
                            old = live[unit]
                            live[unit] = _unit_key(uow.session, unit).key_id
                            revoke_key(uow.session, key_id=old, now=NOW)
                        uow.commit()
                    done = min(done + 500, rounds)
                    _relay_all(factory, broker.bootstrap)
                _relay_all(factory, broker.bootstrap)
                followed = intake.app.state.directory  # type: ignore[attr-defined]
                wanted = {f"key:{key_id}" for key_id in live.values()}
                deadline = time.monotonic() + 120
                while not wanted <= followed.entries().keys() or len(followed.keys) != 20:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the running intake did not follow the rotations")
                    time.sleep(0.05)
            results[f"directory_ready_{name}"] = timed(
                functools.partial(_intake_ready_seconds, broker.bootstrap), repeat=3
            )
            if rounds:
                results[f"directory_ready_{name}_checkpoint"] = timed(
                    functools.partial(_intake_ready_seconds, broker.bootstrap, cache), repeat=3
                )
        finally:
            broker.stop()
            shutil.rmtree(cache, ignore_errors=True)
    return results


ITEMS = ("scan", "flow", "directory")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks named on the command line (default: all) and print the ratios."""
    wanted = argv if argv is not None else sys.argv[1:]
    unknown = set(wanted) - set(ITEMS)
    if unknown:
        raise SystemExit(f"unknown benchmark {sorted(unknown)}; choose from {', '.join(ITEMS)}")
    run = set(wanted) or set(ITEMS)
    base = Path(tempfile.mkdtemp(prefix="duban-bench-"))
    base.chmod(0o755)
    server = start_postgres(base / "pg")
    broker = start_broker()
    scan: dict[str, float] = {}
    flow: dict[str, float] = {}
    directory: dict[str, float] = {}
    try:
        if "scan" in run:
            scan = bench_scan(server)
        if "flow" in run:
            flow = bench_intake_and_apply(server, broker.bootstrap)
        if "directory" in run:
            directory = bench_directory(server)
    finally:
        broker.stop()
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    ratios: dict[str, float] = {}
    if scan:
        ratios["scan 5000 tasks / scan 500 tasks (50 due in each)"] = (
            scan["scan_5000"] / scan["scan_500"]
        )
        ratios["scan 5000 tasks / evaluate all 5000"] = (
            scan["scan_5000"] / scan["full_evaluation_5000"]
        )
    if flow:
        ratios["intake report / bare producer publish"] = (
            flow["intake_publish"] / flow["bare_publish"]
        )
        ratios["tracker apply / bare INSERT + COMMIT"] = flow["tracker_apply"] / flow["bare_insert"]
    if directory:
        fresh = directory["directory_ready_fresh"]
        ratios["intake restart after 10,000 key rotations, from its checkpoint / fresh"] = (
            directory["directory_ready_rotated_checkpoint"] / fresh
        )
        ratios["new intake replica after 10,000 rotations, no checkpoint / fresh"] = (
            directory["directory_ready_rotated"] / fresh
        )
    print("\n督办 benchmark (ratios against baselines measured in this run)")
    for name, seconds in {**scan, **flow, **directory}.items():
        print(f"  {name:<36} {seconds * 1000:9.3f} ms")
    for name, ratio in ratios.items():
        print(f"  {name:<72} {ratio:6.2f}x")
    out = ROOT / "var" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps(
            {"seconds": {**scan, **flow, **directory}, "ratios": ratios},
            ensure_ascii=False,
            indent=2,
        ),
        "utf-8",
    )


if __name__ == "__main__":
    main()
