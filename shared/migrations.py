"""Alembic helpers: each service keeps its own migrations, version table and schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, create_engine, pool, text


def alembic_config(script_location: Path, url: str) -> Config:
    """An Alembic config for one service's migrations, without an ini file."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade_head(script_location: Path, url: str) -> None:
    """Apply every pending migration of one service."""
    command.upgrade(alembic_config(script_location, url), "head")


def run_env(metadata: MetaData, schema: str) -> None:
    """Body of a service's `env.py`: online migrations in the service's own schema."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=lambda name, type_, _parent: type_ != "schema" or name == schema,
        )
        with context.begin_transaction():
            context.run_migrations()
