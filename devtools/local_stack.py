"""`make run`: the whole system on real parts, in the foreground until Ctrl-C.

Starts an embedded Postgres (unless DATABASE_URL is set) and a Tansu broker (unless
KAFKA_BOOTSTRAP_SERVERS is set), migrates, loads the demo catalog, writes demo credentials
and runs intake, tracker and notifier as child processes, on ports 8001, 8002 and 8003
unless DUBAN_LOCAL_INTAKE_PORT, DUBAN_LOCAL_TRACKER_PORT or DUBAN_LOCAL_NOTIFIER_PORT say
otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from devtools.demo_traffic import DemoClient, seed
from devtools.servers import free_port, port_open, start_broker, start_postgres
from shared.clock import SHANGHAI, OffsetClock

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
DEMO_DOCUMENT = Path(__file__).parent / "demo" / "2022_key_tasks.txt"
CREDENTIALS = VAR / "local" / "credentials.json"
DEFAULT_PORTS = {"intake": 8001, "tracker": 8002, "notifier": 8003}


def _ports(env: dict[str, str]) -> dict[str, int]:
    """Each service's port: DUBAN_LOCAL_<NAME>_PORT, else the service's documented default."""
    ports: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        variable = f"DUBAN_LOCAL_{name.upper()}_PORT"
        raw = env.get(variable, "").strip() or str(default)
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise SystemExit(f"{variable} 必须是 1 到 65535 之间的端口号 (got {raw!r})")
        ports[name] = int(raw)
    return ports


def _say(message: str) -> None:
    print(message, flush=True)


def _demo_offset(year: int) -> float:
    """Seconds that move today onto the same calendar day of the demo document's year."""
    now = dt.datetime.now(SHANGHAI)
    day = min(now.day, 28) if now.month == 2 else now.day
    target = now.replace(year=year, day=day)
    return (target - now).total_seconds()


def _prepare(env: dict[str, str]) -> tuple[dict[str, Any], bool]:
    """Migrate, import the demo catalog and issue demo keys.

    Returns the credentials and whether the catalog was new (and so wants demo traffic).
    """
    from sqlalchemy import func, select

    from services.tracker.catalog.parsing import parse_document
    from services.tracker.catalog.readers import read_document_text
    from services.tracker.importer import import_document
    from services.tracker.keys import create_key
    from services.tracker.orm import ApiKey, Task, Unit
    from shared.apikeys import hash_key
    from shared.db import UnitOfWork, make_engine, make_session_factory
    from shared.migrations import upgrade_head

    url = env["DATABASE_URL"]
    upgrade_head(ROOT / "services" / "tracker" / "migrations", url)
    upgrade_head(ROOT / "services" / "notifier" / "migrations", url)
    factory = make_session_factory(make_engine(url, pool_size=1))
    now = OffsetClock(dt.timedelta(seconds=float(env["DUBAN_CLOCK_OFFSET_SECONDS"]))).now()
    with UnitOfWork(factory) as uow:
        fresh = not uow.session.execute(select(func.count()).select_from(Task)).scalar_one()
        if fresh:
            text, fmt = read_document_text(DEMO_DOCUMENT.read_bytes(), DEMO_DOCUMENT.name)
            result = import_document(uow.session, parse_document(text, fmt=fmt), now=now)
            _say(f"已导入演示任务 {len(result.added)} 项 (demo catalog imported)")
        if CREDENTIALS.exists():
            saved: dict[str, Any] = json.loads(CREDENTIALS.read_text("utf-8"))
            live = set(
                uow.session.execute(
                    select(ApiKey.key_hash).where(ApiKey.revoked_at.is_(None))
                ).scalars()
            )
            keys = [*saved.get("units", {}).values(), saved.get("supervisor"), saved.get("admin")]
            if all(isinstance(k, str) and hash_key(k) in live for k in keys):
                uow.commit()
                return saved, fresh

        def issue(role: str, unit: str | None, label: str) -> str:
            return create_key(
                uow.session, role=role, unit_name=unit, label=label, expires_at=None, now=now
            ).plaintext

        agencies = uow.session.execute(
            select(Unit.name).where(Unit.kind == "agency").order_by(Unit.name)
        ).scalars()
        credentials: dict[str, Any] = {
            "units": {unit: issue("unit", unit, "演示") for unit in agencies},
            "supervisor": issue("supervisor", None, "演示 督查室"),
            "admin": issue("admin", None, "演示 管理员"),
        }
        uow.commit()
    CREDENTIALS.parent.mkdir(parents=True, exist_ok=True)
    CREDENTIALS.write_text(json.dumps(credentials, ensure_ascii=False, indent=2), "utf-8")
    CREDENTIALS.chmod(0o600)
    return credentials, fresh


def _create_topics(env: dict[str, str]) -> None:
    """Create the contract topics with their settings (the directory is compacted) up front.

    Tansu keeps `cleanup.policy=compact` but its memory storage does not compact; the
    directory follower keeps the last value per key either way (docs/operations.md).
    """
    from shared import topics
    from shared.kafka import ensure_topics
    from shared.settings import CommonSettings

    settings = CommonSettings(kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"])
    ensure_topics(settings, topics.ALL)


def main() -> None:
    """Run the local stack until interrupted."""
    (VAR / "log").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    ports = _ports(env)
    broker = None
    if not env.get("DATABASE_URL"):
        postgres = start_postgres(VAR / "pgdata")
        env["DATABASE_URL"] = postgres.create_database("duban")
        _say(f"嵌入式 Postgres: {VAR / 'pgdata'}")
    if not env.get("KAFKA_BOOTSTRAP_SERVERS"):
        port = 9092 if not port_open("127.0.0.1", 9092) else free_port()
        broker = start_broker(port, log_path=VAR / "log" / "tansu.log")
        env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
        _say(f"Tansu 消息代理 (memory only): {broker.bootstrap}")
    env.setdefault("DUBAN_CLOCK_OFFSET_SECONDS", str(_demo_offset(2022)))
    env.setdefault("DUBAN_ENV", "development")
    # One console user clicking around, plus the demo traffic, from a handful of keys.
    env.setdefault("DUBAN_RATE_LIMIT_PER_MINUTE", "600")
    env.setdefault("DUBAN_RATE_LIMIT_BURST", "100")
    _create_topics(env)
    credentials, fresh = _prepare(env)
    children: dict[str, subprocess.Popen[bytes]] = {}
    for name, port in ports.items():
        log = open(VAR / "log" / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
        children[name] = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", f"services.{name}.main"],
            env={
                "DUBAN_DIRECTORY_CACHE_DIR": str(VAR / "directory-cache" / name),
                **env,
                "DUBAN_PORT": str(port),
            },
            stdout=log,
            stderr=log,
            cwd=ROOT,
        )
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for name, port in ports.items():
            _wait_healthy(name, port, children[name])
        demo_now = (
            OffsetClock(dt.timedelta(seconds=float(env["DUBAN_CLOCK_OFFSET_SECONDS"])))
            .now()
            .astimezone(SHANGHAI)
        )
        if fresh:
            client = DemoClient(
                credentials,
                intake=f"http://127.0.0.1:{ports['intake']}",
                tracker=f"http://127.0.0.1:{ports['tracker']}",
            )
            _say(f"演示进展已报送 (demo reports sent): {dict(seed(client, now=demo_now))}")
        _say(
            "\n督办 Duban 已启动 (running):\n"
            f"  intake   http://127.0.0.1:{ports['intake']}  (POST /v1/reports)\n"
            f"  tracker  http://127.0.0.1:{ports['tracker']}  (GET /v1/tasks)\n"
            f"  notifier http://127.0.0.1:{ports['notifier']}  (GET /v1/notifications)\n"
            "  metrics  /metrics on each; docs at /docs\n"
            f"  演示时钟 (demo clock): {demo_now:%Y-%m-%d %H:%M} Asia/Shanghai\n"
            f"  演示密钥 (demo keys):  {CREDENTIALS}\n"
            f"  日志 (logs):           {VAR / 'log'}/\n"
            f"  督查室密钥 supervisor key: {credentials['supervisor'][:18]}…\n"
            "按 Ctrl-C 停止 (Ctrl-C to stop)."
        )
        while not stopping:
            for name, child in children.items():
                if child.poll() is not None:
                    _say(f"{name} 已退出 (exited with {child.returncode}); 见 var/log/{name}.log")
                    stopping = True
            time.sleep(0.5)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if broker is not None:
            broker.stop()
        _say("已停止 (stopped).")


def _wait_healthy(name: str, port: int, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"{name} 启动失败 (failed to start); 见 var/log/{name}.log")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{name} 未就绪 (not ready after 60s); 见 var/log/{name}.log")


if __name__ == "__main__":
    main()
