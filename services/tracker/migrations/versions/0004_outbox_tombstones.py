"""outbox tombstones: a null payload deletes its key on a compacted topic

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column(
        "outbox", "payload", existing_type=sa.LargeBinary(), nullable=True, schema="tracker"
    )


def downgrade() -> None:
    # A tombstone has no value to restore; the directory is reconciled again on start.
    op.execute("DELETE FROM tracker.outbox WHERE payload IS NULL")
    op.alter_column(
        "outbox", "payload", existing_type=sa.LargeBinary(), nullable=False, schema="tracker"
    )
