"""audit log

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 10:00:00.000000

The notifier's API audit log (签收, snoozes and refused attempts), the same columns as the
tracker's: both are written by shared.edge.audit.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=True),
        sa.Column("unit", sa.String(length=200), nullable=True),
        sa.Column("leader", sa.String(length=50), nullable=True),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("object", sa.String(length=200), nullable=True),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        schema="notifier",
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False, schema="notifier")
    op.create_index(
        "ix_audit_log_key_id_at", "audit_log", ["key_id", "at"], unique=False, schema="notifier"
    )
    op.create_index(
        "ix_audit_log_object_at", "audit_log", ["object", "at"], unique=False, schema="notifier"
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_object_at", table_name="audit_log", schema="notifier")
    op.drop_index("ix_audit_log_key_id_at", table_name="audit_log", schema="notifier")
    op.drop_index("ix_audit_log_at", table_name="audit_log", schema="notifier")
    op.drop_table("audit_log", schema="notifier")
