"""digest lease

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 15:50:00.000000

A digest is leased to the dispatcher sending it (owner and expiry, committed before the send)
instead of being locked for the length of the send.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("digests", sa.Column("lease_owner", sa.Text(), nullable=True), schema="notifier")
    op.add_column(
        "digests",
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        schema="notifier",
    )


def downgrade() -> None:
    op.drop_column("digests", "leased_until", schema="notifier")
    op.drop_column("digests", "lease_owner", schema="notifier")
