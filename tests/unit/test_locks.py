"""Advisory lock keys: one registry, no two services sharing a number."""

from shared.locks import AdvisoryLock


def test_every_advisory_lock_key_is_distinct_and_fits_a_bigint() -> None:
    values = [int(lock) for lock in AdvisoryLock]
    assert len(set(values)) == len(values)
    assert all(0 < value < 2**63 for value in values)
