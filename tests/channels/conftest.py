"""Fixtures for the channel tests: real servers on loopback, never the network."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from aiosmtpd.controller import Controller

from ._servers import LocalHttpServer, Responder, SmtpRecorder, free_port


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy from the environment would take loopback requests off this machine.
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def http_server() -> Iterator[Callable[[Responder], LocalHttpServer]]:
    """Start local HTTP servers with the given responders; stop them afterwards."""
    started: list[LocalHttpServer] = []

    def start(responder: Responder) -> LocalHttpServer:
        server = LocalHttpServer(responder).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, SmtpRecorder]]:
    """A real SMTP server (aiosmtpd) on a free loopback port."""
    recorder = SmtpRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, recorder
    controller.stop()
