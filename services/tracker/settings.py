"""Tracker settings (env prefix DUBAN_)."""

from pathlib import Path

from shared.settings import CommonSettings


class TrackerSettings(CommonSettings):
    """Everything the tracker reads from its environment."""

    host: str = "127.0.0.1"
    port: int = 8002
    consumer_group: str = "tracker"
    scan_interval_seconds: float = 30.0
    scan_batch_size: int = 500
    outbox_poll_seconds: float = 0.2
    # How often the directory topic is reconciled with the database (only differences are
    # published) and published outbox rows older than a week are purged.
    directory_refresh_seconds: float = 300.0
    run_workers: bool = True
    # The supervision policy file (DUBAN_SUPERVISION_POLICY); unset: the shipped
    # services/tracker/policy/default_supervision.yaml. Checked for edits this often.
    supervision_policy: Path | None = None
    policy_check_seconds: float = 10.0
