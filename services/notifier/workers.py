"""The notifier's background work: consume task events, tick escalation, dispatch digests.

Threads: the task-event consumer, the directory follower (API keys), an APScheduler with
the escalation tick and the config-file check, and the dispatcher. Each tick and each digest
composition is one transaction; ticks are serialised across replicas by an advisory lock.
A delivery is a lease claimed in one short transaction (SKIP LOCKED), a send with no
transaction open, and an outcome recorded in another, so replicas can run side by side and
no row lock is held while a receiver or SMTP relay takes its time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from kafka.errors import KafkaError
from sqlalchemy.orm import Session, sessionmaker

from services.notifier import metrics
from services.notifier.adapters.sql import unit_of_work_factory
from services.notifier.channels.base import Channel
from services.notifier.channels.dingtalk import DingTalkChannel
from services.notifier.channels.email import EmailChannel
from services.notifier.channels.inbox import InboxChannel
from services.notifier.channels.webhook import WebhookChannel
from services.notifier.channels.wecom import WeComChannel
from services.notifier.consumer import make_task_event_handler
from services.notifier.escalation.contacts import ContactBook, ContactsError, ContactsReloader
from services.notifier.escalation.engine import Recipient
from services.notifier.escalation.policy import (
    ChannelKind,
    EscalationPolicy,
    PolicyError,
    PolicyReloader,
    RecipientRole,
    policy_summary,
)
from services.notifier.settings import NotifierSettings
from services.notifier.usecases.delivery import DeliveryReport, deliver_next_digest
from services.notifier.usecases.digests import compose_digests
from services.notifier.usecases.tick import TickResult, count_pending, run_tick
from shared import topics
from shared.clock import Clock
from shared.directory import Directory, DirectoryFollower
from shared.kafka import ConsumerLoop, ensure_topics
from shared.workcal import load_calendar

log = structlog.get_logger(__name__)

TICK_JOB = "escalation-tick"
RELOAD_JOB = "config-reload"


def build_channels(settings: NotifierSettings) -> dict[ChannelKind, Channel]:
    """One channel object per kind, sharing the retry policy; e-mail only with an SMTP relay."""
    retry = settings.retry_policy()
    timeout = settings.http_timeout_seconds
    channels: dict[ChannelKind, Channel] = {
        ChannelKind.INBOX: InboxChannel(),
        ChannelKind.WEBHOOK: WebhookChannel(timeout=timeout, retry=retry),
        ChannelKind.WECOM: WeComChannel(timeout=timeout, retry=retry),
        ChannelKind.DINGTALK: DingTalkChannel(timeout=timeout, retry=retry),
    }
    smtp = settings.smtp()
    if smtp is not None:
        channels[ChannelKind.EMAIL] = EmailChannel(smtp, retry=retry)
    return channels


class NotifierWorkers:
    """Owns the policy and contacts in force, and every background thread of the notifier.

    Construction validates the policy, contacts and calendar override files: a malformed one
    raises PolicyError, ContactsError or CalendarError naming file and line, and the service
    does not start.
    """

    def __init__(
        self,
        settings: NotifierSettings,
        session_factory: sessionmaker[Session],
        clock: Clock,
        *,
        channels: Mapping[ChannelKind, Channel] | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.new_uow = unit_of_work_factory(session_factory)
        self.clock = clock
        self._policy_file = PolicyReloader(settings.effective_policy_path)
        self._contacts_file = ContactsReloader(settings.contacts_path)
        self._config_lock = threading.Lock()
        self._policy = self._effective(self._policy_file.policy)
        # Working days for quiet hours (shared/workcal.py); a bad override file stops start-up.
        self.calendar = load_calendar(settings.calendar_overrides)
        self._owns_channels = channels is None
        self.channels: dict[ChannelKind, Channel] = (
            dict(channels) if channels is not None else build_channels(settings)
        )
        self.directory = Directory()
        self.follower = DirectoryFollower(settings, self.directory)
        self.stop_event = threading.Event()
        self.consumer = ConsumerLoop(
            settings=settings,
            topic=topics.TASK_EVENTS,
            group_id=settings.consumer_group,
            handler=make_task_event_handler(
                self.new_uow,
                on_change=self.request_tick if settings.escalate_on_event else None,
            ),
            stop_event=self.stop_event,
        )
        # Names this process in the leases it takes (notifier.digests.lease_owner).
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.dispatcher_error: str | None = None
        self.last_tick: TickResult | None = None
        self._tick_requested = threading.Event()
        self._ticking = threading.Event()
        self._wake_dispatcher = threading.Event()
        self._scheduler = BackgroundScheduler(timezone=dt.UTC)
        self._threads: list[threading.Thread] = []
        self._logged_gaps: set[tuple[str, int, str, dt.datetime]] = set()
        self._config_errors: dict[str, str] = {}
        self._calendar_year: int | None = None
        self._started = False
        log.info(
            "escalation.policy", path=str(self._policy_file.path), **policy_summary(self._policy)
        )
        self._warn_unreachable()

    # ----------------------------------------------------------------- configuration

    def _effective(self, policy: EscalationPolicy) -> EscalationPolicy:
        office = self.settings.supervising_office
        if office and office != policy.supervising_office:
            return policy.model_copy(update={"supervising_office": office})
        return policy

    @property
    def policy(self) -> EscalationPolicy:
        """The escalation policy in force."""
        with self._config_lock:
            return self._policy

    @property
    def contacts(self) -> ContactBook:
        """The contact book in force."""
        with self._config_lock:
            return self._contacts_file.book

    def _warn_unreachable(self) -> None:
        policy = self.policy
        used = {c for level in policy.levels for rule in level.recipients for c in rule.channels}
        for channel in sorted(used - set(self.channels)):
            log.warning(
                "escalation.channel_not_configured",
                channel=channel.value,
                detail="notices on this channel will be recorded as failed",
            )
        office = Recipient(RecipientRole.SUPERVISING_OFFICE, policy.supervising_office)
        wanted = [
            (office, channel)
            for level in policy.levels
            for rule in level.recipients
            if rule.role is RecipientRole.SUPERVISING_OFFICE
            for channel in rule.channels
        ]
        for problem in self.contacts.missing(wanted):
            log.warning("escalation.missing_contact", error=str(problem))

    def reload_config(self) -> bool:
        """Pick up edits of the policy and contacts files; True if either changed."""
        changed = False
        try:
            with self._config_lock:
                policy_changed = self._policy_file.refresh()
                if policy_changed:
                    self._policy = self._effective(self._policy_file.policy)
            self._config_errors.pop("policy", None)
            if policy_changed:
                changed = True
                metrics.CONFIG_RELOADS.labels("policy", "applied").inc()
                log.info("escalation.policy_reloaded", **policy_summary(self.policy))
        except PolicyError as exc:
            self._config_rejected("policy", exc)
        try:
            with self._config_lock:
                contacts_changed = self._contacts_file.refresh()
            self._config_errors.pop("contacts", None)
            if contacts_changed:
                changed = True
                metrics.CONFIG_RELOADS.labels("contacts", "applied").inc()
                log.info("escalation.contacts_reloaded", path=str(self._contacts_file.path))
        except ContactsError as exc:
            self._config_rejected("contacts", exc)
        if changed:
            self._warn_unreachable()
            self.request_tick()
        return changed

    def _config_rejected(self, name: str, exc: Exception) -> None:
        message = str(exc)
        if self._config_errors.get(name) != message:
            # Logged once per distinct error, not on every check.
            self._config_errors[name] = message
            metrics.CONFIG_RELOADS.labels(name, "rejected").inc()
            log.error(f"escalation.{name}_rejected", error=message, detail="keeping the old one")

    # ----------------------------------------------------------------- escalation tick

    def tick(self) -> TickResult:
        """Run one escalation tick now, at the service clock, in one transaction."""
        policy = self.policy
        now = self.clock.now()
        year = now.astimezone(policy.zone).year
        if policy.quiet_hours is not None and year != self._calendar_year:
            # Quiet hours count working days: say once a year whether the calendar knows it.
            self._calendar_year = year
            self.calendar.report_year(year)
        try:
            with self.new_uow() as uow:
                result = run_tick(
                    uow,
                    policy=policy,
                    now=now,
                    system_url=self.settings.system_url,
                    calendar=self.calendar,
                )
                uow.commit()
        except Exception:
            metrics.TICKS.labels("failed").inc()
            raise
        for level, count in result.inserted_by_level.items():
            metrics.NOTIFICATIONS_PLANNED.labels(str(level)).inc(count)
        if result.inbox_digests:
            metrics.DELIVERIES.labels(ChannelKind.INBOX.value, "delivered").inc(
                result.inbox_digests
            )
        metrics.TICKS.labels("ok").inc()
        metrics.TICK_SECONDS.observe(result.seconds)
        metrics.LAST_TICK.set(time.time())
        self.last_tick = result
        self._log_gaps(result)
        if result.inserted or result.cancelled:
            log.info(
                "escalation.ticked",
                at=now.isoformat(),
                planned=result.planned,
                inserted=result.inserted_by_level,
                cancelled=result.cancelled,
                seconds=round(result.seconds, 4),
            )
        self._update_pending()
        self._wake_dispatcher.set()
        return result

    def _log_gaps(self, result: TickResult) -> None:
        if any(key[3] != result.window_start for key in self._logged_gaps):
            self._logged_gaps = {k for k in self._logged_gaps if k[3] == result.window_start}
        for gap in result.gaps:
            key = (gap.task_id, gap.level, gap.role.value, result.window_start)
            if key in self._logged_gaps:
                continue
            self._logged_gaps.add(key)
            metrics.RECIPIENT_GAPS.labels(str(gap.level), gap.role.value).inc()
            log.warning(
                "escalation.recipient_gap",
                task=gap.task_id,
                level=gap.level,
                role=gap.role.value,
                detail="the task names nobody in this role; nobody in it was notified",
            )

    def request_tick(self) -> None:
        """Ask for a tick soon (after the debounce), coalescing bursts of requests."""
        self._tick_requested.set()
        if not self._ticking.is_set():
            self._schedule_tick_soon()
        # Otherwise the running tick loop sees the request and ticks again.

    def _schedule_tick_soon(self) -> None:
        if not self._scheduler.running:
            return
        run_at = dt.datetime.now(dt.UTC) + dt.timedelta(
            seconds=self.settings.escalation_debounce_seconds
        )
        job = self._scheduler.get_job(TICK_JOB)
        if job is not None and (job.next_run_time is None or job.next_run_time > run_at):
            job.modify(next_run_time=run_at)

    def _tick_job(self) -> None:
        self._ticking.set()
        try:
            self._tick_requested.set()
            while self._tick_requested.is_set() and not self.stop_event.is_set():
                self._tick_requested.clear()
                try:
                    self.tick()
                except Exception as exc:
                    log.warning("escalation.tick_failed", error=repr(exc))
                    return
        finally:
            self._ticking.clear()
        # A request that arrived between the last check and clearing `_ticking`.
        if self._tick_requested.is_set() and not self.stop_event.is_set():
            self._schedule_tick_soon()

    # ----------------------------------------------------------------- dispatcher

    def dispatch_pending(self, *, limit: int | None = None) -> list[DeliveryReport]:
        """Compose pending notifications into digests, then deliver due digests one by one."""
        policy = self.policy
        with self.new_uow() as uow:
            composed = compose_digests(
                uow,
                zone=policy.zone,
                now=self.clock.now(),
                batch_size=self.settings.dispatch_batch_size,
                system_url=self.settings.system_url,
            )
            uow.commit()
        reports: list[DeliveryReport] = []
        while not self.stop_event.is_set() and (limit is None or len(reports) < limit):
            # Claims, sends and records in transactions of its own; none spans the send.
            report = deliver_next_digest(
                self.new_uow,
                worker=self.worker_id,
                lease_seconds=self.settings.delivery_lease_seconds,
                zone=policy.zone,
                contacts=self.contacts,
                channels=self.channels,
                clock=self.clock.now,
                rounds=self.settings.delivery_rounds,
                backoff_seconds=self.settings.redelivery_backoff_seconds,
                system_url=self.settings.system_url,
            )
            if report is None:
                break
            reports.append(report)
        if composed or reports:
            self._update_pending()
        return reports

    def _dispatch_loop(self) -> None:
        backoff = self.settings.dispatch_poll_seconds
        while not self.stop_event.is_set():
            try:
                self.dispatch_pending()
                self.dispatcher_error = None
                backoff = self.settings.dispatch_poll_seconds
            except Exception as exc:
                # The database is away or a bug: keep the thread, back off, say so.
                self.dispatcher_error = repr(exc)
                log.warning("dispatch.failed", error=repr(exc))
                backoff = min(backoff * 2, 10.0)
            self._wake_dispatcher.wait(backoff)
            self._wake_dispatcher.clear()

    def wake_dispatcher(self) -> None:
        """Make the dispatcher look for work now instead of at its next poll."""
        self._wake_dispatcher.set()

    def _update_pending(self) -> None:
        with self.new_uow() as uow:
            metrics.PENDING.set(count_pending(uow))

    # ----------------------------------------------------------------- lifecycle

    def _consume(self) -> None:
        # However the loop ends, it has logged why and says so in readiness and its metric.
        with contextlib.suppress(Exception):
            self.consumer.run()

    def start(self) -> None:
        """Start every background thread; the first tick runs at once."""
        try:
            ensure_topics(self.settings, topics.ALL)
        except KafkaError as exc:
            log.warning("notifier.topics_unavailable", error=str(exc))
        self.follower.start()
        self._threads = [threading.Thread(target=self._consume, name="task-events", daemon=True)]
        if self.settings.dispatcher_enabled:
            self._threads.append(
                threading.Thread(target=self._dispatch_loop, name="dispatcher", daemon=True)
            )
        for thread in self._threads:
            thread.start()
        self._scheduler.add_job(
            self._tick_job,
            IntervalTrigger(seconds=self.settings.escalation_interval_seconds),
            id=TICK_JOB,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=dt.datetime.now(dt.UTC),
        )
        self._scheduler.add_job(
            self.reload_config,
            IntervalTrigger(seconds=self.settings.config_reload_seconds),
            id=RELOAD_JOB,
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.start()
        self._started = True

    def stop(self) -> None:
        """Stop the threads; a digest being sent finishes and is recorded first."""
        self.stop_event.set()
        self._wake_dispatcher.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        for thread in self._threads:
            thread.join(timeout=30)
        if self._started:
            self.follower.stop()
        if self._owns_channels:
            for channel in self.channels.values():
                close = getattr(channel, "close", None)
                if callable(close):
                    close()

    def status(self) -> dict[str, Any]:
        """What readiness reports about the workers."""
        checks: dict[str, Any] = {
            **self.consumer.readiness(),
            **self.follower.readiness(),
        }
        if self.settings.dispatcher_enabled and self.dispatcher_error:
            checks["dispatcher"] = f"error: {self.dispatcher_error}"
        return checks
