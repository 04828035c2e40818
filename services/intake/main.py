"""Intake entrypoint: `python -m services.intake.main`."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from services.intake.api import create_app
from services.intake.settings import IntakeSettings
from shared.logging import configure_logging


def build(settings: IntakeSettings | None = None) -> FastAPI:
    """Wire intake from its settings."""
    settings = settings or IntakeSettings()
    configure_logging(settings, service="intake")
    return create_app(settings, settings.clock())


def main() -> None:
    """Serve the intake API."""
    settings = IntakeSettings()
    uvicorn.run(build(settings), host=settings.host, port=settings.port, log_config=None)


if __name__ == "__main__":
    main()
