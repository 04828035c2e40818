"""Alembic environment for the notifier's schema."""

from services.notifier.orm import SCHEMA, Base
from shared.migrations import run_env

run_env(Base.metadata, SCHEMA)
