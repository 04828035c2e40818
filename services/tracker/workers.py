"""The tracker's background work: report consumer, outbox relay and scheduled scan."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from kafka import KafkaProducer
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from services.tracker import metrics, outbox
from services.tracker.adapters.sql import SqlUnitOfWork
from services.tracker.consumer import make_report_handler
from services.tracker.orm import Task, TaskUnit, Unit
from services.tracker.policy.supervision import SupervisionPolicyError, in_force, policy_summary
from services.tracker.service import reconcile_directory
from services.tracker.settings import TrackerSettings
from services.tracker.usecases.evaluation import scan_due_tasks
from shared import topics
from shared.clock import Clock, shanghai_date
from shared.db import UnitOfWork
from shared.directory import Directory, DirectoryFollower
from shared.kafka import ConsumerLoop, ensure_topics, make_producer
from shared.vocabulary import Light, TaskStatus, UnitRole

log = structlog.get_logger(__name__)


def scan_once(session_factory: sessionmaker[Session], *, now: dt.datetime, batch_size: int) -> int:
    """One scan tick in one transaction per batch; returns tasks evaluated."""
    total = 0
    started = time.perf_counter()
    while True:
        with UnitOfWork(session_factory) as uow:
            count = scan_due_tasks(SqlUnitOfWork(uow.session), now=now, batch_size=batch_size)
            uow.commit()
        total += count
        if count < batch_size:
            break
    metrics.SCAN_DURATION.observe(time.perf_counter() - started)
    metrics.SCAN_TASKS.inc(total)
    metrics.SCAN_LAST_SUCCESS.set(time.time())
    return total


def reevaluate_open_tasks(session_factory: sessionmaker[Session], *, now: dt.datetime) -> int:
    """Bring every open task's next evaluation forward to `now` (one UPDATE): the scan then
    lights them again by the policy in force. Returns how many tasks it touched."""
    with UnitOfWork(session_factory) as uow:
        result = uow.session.execute(
            update(Task).where(Task.status != TaskStatus.CLOSED).values(next_evaluation_at=now)
        )
        uow.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def reload_policy(session_factory: sessionmaker[Session], *, now: dt.datetime) -> bool:
    """Pick up an edit of the supervision policy file; True when the policy in force changed.

    A malformed edit raises SupervisionPolicyError and the policy in force stays.
    """
    source = in_force()
    if not source.refresh():
        return False
    touched = reevaluate_open_tasks(session_factory, now=now)
    log.info(
        "supervision.policy_reloaded", tasks_to_reevaluate=touched, **policy_summary(source.policy)
    )
    return True


def sync_directory(
    session_factory: sessionmaker[Session], published: Directory, *, now: dt.datetime
) -> int:
    """Queue the directory entries that the topic (as `published` read it) lacks or has wrong."""
    with UnitOfWork(session_factory) as uow:
        queued = reconcile_directory(uow.session, published.entries(), now=now)
        uow.commit()
    if queued:
        log.info("directory.reconciled", queued=queued)
    return queued


def refresh_business_gauges(session_factory: sessionmaker[Session]) -> None:
    """Recompute the supervision gauges (lights by lead unit, section and leader)."""
    leader = func.unnest(Task.leaders)
    with UnitOfWork(session_factory) as uow:
        db = uow.session
        by_unit = db.execute(
            select(Task.light, Unit.name, func.count())
            .join(TaskUnit, TaskUnit.task_id == Task.id)
            .join(Unit, Unit.id == TaskUnit.unit_id)
            .where(TaskUnit.role == UnitRole.LEAD)
            .group_by(Task.light, Unit.name)
        ).all()
        by_section = db.execute(
            select(Task.light, func.coalesce(Task.section, "（无）"), func.count()).group_by(
                Task.light, Task.section
            )
        ).all()
        # A task with several leaders counts once for each of them.
        by_leader = db.execute(
            select(Task.light, leader, func.count()).group_by(Task.light, leader)
        ).all()
    gauges = (
        (metrics.TASKS_BY_LIGHT, by_unit),
        (metrics.TASKS_BY_SECTION, by_section),
        (metrics.TASKS_BY_LEADER, by_leader),
    )
    for gauge, rows in gauges:
        gauge.clear()
        for light, name, count in rows:
            gauge.labels(light, name).set(count)
    metrics.OVERDUE_BY_LEADER.clear()
    for light, name, count in by_leader:
        if light == Light.RED:
            metrics.OVERDUE_BY_LEADER.labels(name).set(count)
    metrics.OUTBOX_BACKLOG.set(outbox.backlog(session_factory))


class TrackerWorkers:
    """Starts and stops the consumer, relay and scheduler threads."""

    def __init__(
        self,
        settings: TrackerSettings,
        session_factory: sessionmaker[Session],
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.clock = clock
        self.stop_event = threading.Event()
        self.consumer = ConsumerLoop(
            settings=settings,
            topic=topics.PROGRESS_REPORTS,
            group_id=settings.consumer_group,
            handler=make_report_handler(session_factory, clock),
            stop_event=self.stop_event,
        )
        self.scheduler = BackgroundScheduler(timezone="Asia/Shanghai")
        self._threads: list[threading.Thread] = []
        self._policy_error: str | None = None
        self._calendar_year: int | None = None
        self._producer: KafkaProducer | None = None
        # The tracker reads its own directory topic, so it publishes only what changed.
        self.directory = Directory()
        self.follower = DirectoryFollower(settings, self.directory)

    def start(self) -> None:
        """Create topics, then start every background thread and job."""
        ensure_topics(self.settings, topics.ALL)
        self._producer = make_producer(self.settings)
        self.follower.start()
        self._spawn("report-consumer", self._consume)
        self._spawn("outbox-relay", self._relay)
        self._spawn("directory-sync", self._sync_directory)
        now = dt.datetime.now(dt.UTC)
        self.scheduler.add_job(
            self._scan,
            "interval",
            seconds=self.settings.scan_interval_seconds,
            id="scan",
            next_run_time=now,
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self._check_policy,
            "interval",
            seconds=self.settings.policy_check_seconds,
            id="policy-reload",
            next_run_time=now,
            coalesce=True,
        )
        self.scheduler.add_job(
            self._purge_outbox,
            "interval",
            seconds=self.settings.directory_refresh_seconds,
            id="outbox-purge",
            coalesce=True,
        )
        self.scheduler.add_job(
            self._refresh_gauges,
            "interval",
            seconds=15,
            id="gauges",
            next_run_time=now,
            coalesce=True,
        )
        self.scheduler.start()

    def stop(self) -> None:
        """Stop the threads and wait for them."""
        self.stop_event.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        for thread in self._threads:
            thread.join(timeout=15)
        self.follower.stop()
        if self._producer is not None:
            self._producer.close(timeout=5)

    @property
    def ready(self) -> bool:
        """True while the consumer is connected and not halted."""
        return self.consumer.healthy

    def _spawn(self, name: str, target: object) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _consume(self) -> None:
        # However the loop ends, it has logged why and says so in readiness and its metric.
        with contextlib.suppress(Exception):
            self.consumer.run()

    def _relay(self) -> None:
        assert self._producer is not None
        outbox.run_relay(
            self.session_factory,
            self._producer,
            stop_event=self.stop_event,
            poll_seconds=self.settings.outbox_poll_seconds,
            clock=self.clock,
        )

    def _scan(self) -> None:
        try:
            scan_once(
                self.session_factory,
                now=self.clock.now(),
                batch_size=self.settings.scan_batch_size,
            )
        except Exception:
            log.exception("scan.failed")

    def _check_policy(self) -> None:
        """Reload the policy file if edited; say once a year whether the calendar knows it."""
        now = self.clock.now()
        year = shanghai_date(now).year
        if year != self._calendar_year:
            self._calendar_year = year
            in_force().calendar.report_year(year)
        try:
            changed = reload_policy(self.session_factory, now=now)
        except SupervisionPolicyError as exc:
            if self._policy_error != str(exc):
                self._policy_error = str(exc)
                metrics.POLICY_RELOADS.labels("rejected").inc()
                log.error(
                    "supervision.policy_rejected", error=str(exc), detail="keeping the old one"
                )
            return
        except Exception:
            log.exception("supervision.policy_reload_failed")
            return
        self._policy_error = None
        if changed:
            metrics.POLICY_RELOADS.labels("applied").inc()

    def _sync_directory(self) -> None:
        """Once the topic is read, reconcile it with the database; again every interval."""
        while not self.follower.caught_up.wait(0.2):
            if self.stop_event.is_set():
                return
        while not self.stop_event.is_set():
            try:
                sync_directory(self.session_factory, self.directory, now=self.clock.now())
            except Exception:
                log.exception("directory.reconcile_failed")
            self.stop_event.wait(self.settings.directory_refresh_seconds)

    def _purge_outbox(self) -> None:
        try:
            outbox.purge_published(
                self.session_factory, older_than=self.clock.now() - dt.timedelta(days=7)
            )
        except Exception:
            log.exception("outbox.purge_failed")

    def _refresh_gauges(self) -> None:
        try:
            refresh_business_gauges(self.session_factory)
        except Exception:
            log.exception("gauges.refresh_failed")
