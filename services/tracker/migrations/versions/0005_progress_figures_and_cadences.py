"""progress figures and cadences: target direction, stored progress, document due day,
period keys for every cadence (2022-W05)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.tracker.catalog.targets import extract_targets

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _backfill_directions() -> None:
    # Stored targets were read without their direction; read it again from the task text.
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT t.id, t.indicator, t.value, t.unit, k.text FROM tracker.targets t "
            "JOIN tracker.tasks k ON k.id = t.task_id"
        )
    ).all()
    texts: dict[str, list[tuple[str, object, str, str]]] = {}
    for target_id, indicator, value, unit, text in rows:
        if text not in texts:
            texts[text] = [
                (t.indicator, t.value, t.unit, t.direction.value) for t in extract_targets(text)
            ]
        for found_indicator, found_value, found_unit, direction in texts[text]:
            if (found_indicator, found_value, found_unit) == (indicator, value, unit):
                connection.execute(
                    sa.text("UPDATE tracker.targets SET direction = :d WHERE id = :id"),
                    {"d": direction, "id": target_id},
                )
                break


def upgrade() -> None:
    op.add_column(
        "targets",
        sa.Column("direction", sa.String(10), nullable=False, server_default="at_least"),
        schema="tracker",
    )
    op.add_column(
        "tasks", sa.Column("report_due_day", sa.Integer(), nullable=True), schema="tracker"
    )
    op.add_column("tasks", sa.Column("progress", sa.Numeric(5, 1), nullable=True), schema="tracker")
    op.alter_column(
        "tasks",
        "reported_periods",
        type_=postgresql.ARRAY(sa.String(10)),
        existing_type=postgresql.ARRAY(sa.String(7)),
        schema="tracker",
    )
    op.alter_column(
        "reports",
        "period",
        type_=sa.String(10),
        existing_type=sa.String(7),
        existing_nullable=True,
        schema="tracker",
    )
    _backfill_directions()
    # Light every open task again by the new rules at the next scan.
    op.execute("UPDATE tracker.tasks SET next_evaluation_at = now() WHERE status <> 'closed'")


def downgrade() -> None:
    # Keys longer than seven characters (weekly periods) do not fit the old columns; the
    # reports stay on record without their period.
    op.execute("UPDATE tracker.reports SET period = NULL WHERE length(period) > 7")
    op.execute(
        "UPDATE tracker.tasks SET reported_periods = "
        "ARRAY(SELECT p FROM unnest(reported_periods) p WHERE length(p) <= 7)"
    )
    op.alter_column(
        "reports",
        "period",
        type_=sa.String(7),
        existing_type=sa.String(10),
        existing_nullable=True,
        schema="tracker",
    )
    op.alter_column(
        "tasks",
        "reported_periods",
        type_=postgresql.ARRAY(sa.String(7)),
        existing_type=postgresql.ARRAY(sa.String(10)),
        schema="tracker",
    )
    op.drop_column("tasks", "progress", schema="tracker")
    op.drop_column("tasks", "report_due_day", schema="tracker")
    op.drop_column("targets", "direction", schema="tracker")
