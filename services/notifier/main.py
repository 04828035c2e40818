"""Notifier entrypoint: `python -m services.notifier.main`."""

from __future__ import annotations

import sys

import structlog
import uvicorn
from fastapi import FastAPI

from services.notifier.api import create_app
from services.notifier.settings import NotifierSettings
from shared.db import database_engine, make_session_factory, workers_engine
from shared.logging import configure_logging
from shared.yamlmarks import MarkedFileError

log = structlog.get_logger(__name__)
EXIT_BAD_CONFIG = 2


def build(settings: NotifierSettings | None = None) -> FastAPI:
    """Wire the notifier from its settings; raises if the policy or contacts file is bad."""
    settings = settings or NotifierSettings()
    configure_logging(settings, service="notifier")
    engine = database_engine(settings, name="notifier")
    clock = settings.clock()
    workers = make_session_factory(workers_engine(settings, name="notifier"))
    return create_app(
        settings, make_session_factory(engine), clock, workers_session_factory=workers
    )


def main() -> None:
    """Serve the notifier API and run its workers; refuse to start on a malformed config file."""
    settings = NotifierSettings()
    try:
        app = build(settings)
    except MarkedFileError as exc:
        log.critical("notifier.refused_to_start", error=str(exc))
        print(f"督办 notifier 拒绝启动 (refusing to start):\n{exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from exc
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
