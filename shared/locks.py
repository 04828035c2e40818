"""Every Postgres advisory lock key in the code base, in one place, so no two ever collide.

The services may share one database (the tests and `make run` do), so a tracker lock and a
notifier lock with the same number would serialise unrelated work. `@unique` makes a clash an
import-time error.
"""

from enum import IntEnum, unique

# "duban" in ASCII, shifted left a byte; the low byte names the lock.
_BASE = 0x6475_6261_6E00


@unique
class AdvisoryLock(IntEnum):
    """The advisory lock keys (pg_advisory_xact_lock / pg_try_advisory_xact_lock)."""

    # tracker
    OUTBOX_RELAY = _BASE + 0x01
    CATALOG_IMPORT = _BASE + 0x11
    # notifier
    ESCALATION_TICK = _BASE + 0x21
    DIGEST_COMPOSE = _BASE + 0x22
