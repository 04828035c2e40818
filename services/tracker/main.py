"""Tracker entrypoint: `python -m services.tracker.main`."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from services.tracker.api import create_app
from services.tracker.settings import TrackerSettings
from shared.db import database_engine, make_session_factory, workers_engine
from shared.logging import configure_logging


def build(settings: TrackerSettings | None = None) -> FastAPI:
    """Wire the tracker from its settings."""
    settings = settings or TrackerSettings()
    configure_logging(settings, service="tracker")
    engine = database_engine(settings, name="tracker")
    clock = settings.clock()
    return create_app(
        settings,
        make_session_factory(engine),
        clock,
        run_workers=settings.run_workers,
        workers_session_factory=make_session_factory(workers_engine(settings, name="tracker")),
    )


def main() -> None:
    """Serve the tracker API and run its workers."""
    settings = TrackerSettings()
    uvicorn.run(build(settings), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
