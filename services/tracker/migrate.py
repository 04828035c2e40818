"""Apply the tracker's migrations: `python -m services.tracker.migrate`."""

from pathlib import Path

from services.tracker.settings import TrackerSettings
from shared.migrations import upgrade_head

MIGRATIONS = Path(__file__).parent / "migrations"


def main() -> None:
    """Upgrade the tracker schema to head."""
    upgrade_head(MIGRATIONS, TrackerSettings().sqlalchemy_url)


if __name__ == "__main__":
    main()
