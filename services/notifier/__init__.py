"""The notifier: 催办、督办、通报 from the tracker's task events (docs/domain.md §6).

Flow (see `workers.py`): the consumer folds each `task.condition_changed` into
`notifier.task_conditions` and asks for a tick; the escalation tick (APScheduler: at start,
every `DUBAN_ESCALATION_INTERVAL_SECONDS`, and shortly after events, 签收 and snoozes)
plans in one transaction under an advisory lock and records notifications idempotently;
inbox notifications are delivered in that transaction (storing them is their delivery);
the dispatcher composes the rest into digests, commits each digest before sending it, and
records it delivered only after the send succeeded.

Policy: `DUBAN_POLICY_PATH`; unset, `escalation/default_policy.yaml` in production and
`escalation/local_policy.yaml` (the same ladder, every recipient on the inbox) elsewhere.
Contacts: `DUBAN_CONTACTS_PATH` (format in `escalation/contacts.py`). Both are validated at
start-up (a malformed file stops the service, naming file, line and column) and re-read
when they change (a bad edit is logged and the file in force stays in force).
"""
