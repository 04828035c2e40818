"""Apply the notifier's migrations: `python -m services.notifier.migrate`."""

from pathlib import Path

from services.notifier.settings import NotifierSettings
from shared.migrations import upgrade_head

MIGRATIONS = Path(__file__).parent / "migrations"


def main() -> None:
    """Upgrade the notifier schema to head."""
    upgrade_head(MIGRATIONS, NotifierSettings().sqlalchemy_url)


if __name__ == "__main__":
    main()
