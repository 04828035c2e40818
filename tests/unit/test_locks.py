"""Advisory lock keys: one registry, no two services sharing a number."""

from shared.locks import AdvisoryLock


def test_every_advisory_lock_key_is_distinct_and_fits_a_bigint() -> None:
    values = [int(lock) for lock in AdvisoryLock]
    assert len(set(values)) == len(values)
    assert all(0 < value < 2**63 for value in values)


def test_the_services_use_the_registry() -> None:
    from services.notifier import delivery, planning
    from services.tracker import importer, outbox

    used = {
        outbox.RELAY_LOCK_ID,
        importer.IMPORT_LOCK_ID,
        planning.ESCALATION_LOCK_KEY,
        delivery.COMPOSE_LOCK_KEY,
    }
    assert used == {int(lock) for lock in AdvisoryLock}
