"""quiet hours: a notification held until the hours open records when it may go

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 17:30:00.000000

`not_before` is null for a notice that may go at once; the dispatcher composes a held one
only from that instant on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "notifications",
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        schema="notifier",
    )


def downgrade() -> None:
    op.drop_column("notifications", "not_before", schema="notifier")
