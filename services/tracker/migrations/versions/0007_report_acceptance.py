"""report acceptance: the office accepts (接受) a lead report, which leaves the review queue

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "reports",
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        schema="tracker",
    )
    op.add_column(
        "reports", sa.Column("accept_comment", sa.Text(), nullable=True), schema="tracker"
    )


def downgrade() -> None:
    op.drop_column("reports", "accept_comment", schema="tracker")
    op.drop_column("reports", "accepted_at", schema="tracker")
