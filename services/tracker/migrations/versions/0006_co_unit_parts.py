"""co-unit parts: the periods each co-unit's part stands for, and a report's citations

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "task_units",
        sa.Column(
            "reported_periods",
            postgresql.ARRAY(sa.String(10)),
            nullable=False,
            server_default="{}",
        ),
        schema="tracker",
    )
    op.add_column(
        "reports",
        sa.Column(
            "cites",
            postgresql.ARRAY(postgresql.UUID(as_uuid=True)),
            nullable=False,
            server_default="{}",
        ),
        schema="tracker",
    )
    # Co-units' reports were kept before they counted: their periods are their parts.
    op.execute(
        """
        UPDATE tracker.task_units tu SET reported_periods = parts.periods
        FROM (
            SELECT task_id, unit_id, array_agg(DISTINCT period ORDER BY period) AS periods
            FROM tracker.reports WHERE role = 'co' AND period IS NOT NULL
            GROUP BY task_id, unit_id
        ) parts
        WHERE tu.task_id = parts.task_id AND tu.unit_id = parts.unit_id AND tu.role = 'co'
        """
    )


def downgrade() -> None:
    op.drop_column("reports", "cites", schema="tracker")
    op.drop_column("task_units", "reported_periods", schema="tracker")
