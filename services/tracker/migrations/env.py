"""Alembic environment for the tracker's schema."""

from services.tracker.orm import SCHEMA, Base
from shared.migrations import run_env

run_env(Base.metadata, SCHEMA)
