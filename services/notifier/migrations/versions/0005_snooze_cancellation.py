"""snooze cancellation

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 16:40:00.000000

The office may cancel a snooze before it ends: when, by whom (the name shown on the
timeline) and with which key. A cancelled snooze no longer silences anything.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "snoozes",
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        schema="notifier",
    )
    op.add_column(
        "snoozes",
        sa.Column("cancelled_by", sa.String(length=200), nullable=True),
        schema="notifier",
    )
    op.add_column(
        "snoozes",
        sa.Column("cancelled_key_id", sa.String(length=64), nullable=True),
        schema="notifier",
    )


def downgrade() -> None:
    for column in ("cancelled_key_id", "cancelled_by", "cancelled_at"):
        op.drop_column("snoozes", column, schema="notifier")
