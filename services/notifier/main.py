"""Notifier entrypoint: `python -m services.notifier.main`."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from services.notifier.api import create_app
from services.notifier.settings import NotifierSettings
from shared.db import make_engine, make_session_factory
from shared.logging import configure_logging


def build(settings: NotifierSettings | None = None) -> FastAPI:
    """Wire the notifier from its settings."""
    settings = settings or NotifierSettings()
    configure_logging(settings, service="notifier")
    engine = make_engine(settings.sqlalchemy_url)
    clock = settings.clock()
    return create_app(settings, make_session_factory(engine), clock)


def main() -> None:
    """Serve the notifier API and run its consumer."""
    settings = NotifierSettings()
    uvicorn.run(build(settings), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
