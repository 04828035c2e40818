"""Debian's `prometheus` package for the ops tests: installed on first use, never left serving.

The tests run their own Prometheus on a free loopback port with a temporary data directory.
Debian's postinst may start the packaged service on :9090; if it does, it is stopped and
disabled again, so the test set-up leaves no system Prometheus behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.servers import port_open

APT_LOCK_TIMEOUT = ("-o", "DPkg::Lock::Timeout=600")
SYSTEM_PORT = 9090


class PrometheusUnavailable(RuntimeError):
    """Debian's prometheus package is missing and could not be installed."""


@dataclass(frozen=True)
class PrometheusBinaries:
    """Where the installed binaries are."""

    prometheus: Path
    promtool: Path


def _found() -> PrometheusBinaries | None:
    prometheus = shutil.which("prometheus") or "/usr/bin/prometheus"
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if Path(prometheus).is_file() and Path(promtool).is_file():
        return PrometheusBinaries(Path(prometheus), Path(promtool))
    return None


def _run(command: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, check=False, timeout=900
    )
    if result.returncode != 0:
        raise PrometheusUnavailable(
            f"`{' '.join(command)}` failed with exit code {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )


def _stop_system_service() -> None:
    """Stop and disable the packaged service if the postinst started it."""
    commands: list[list[str]] = []
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        commands.append(["systemctl", "disable", "--now", "prometheus"])
    if Path("/etc/init.d/prometheus").exists():
        commands.append(["/etc/init.d/prometheus", "stop"])
        if shutil.which("update-rc.d"):
            commands.append(["update-rc.d", "prometheus", "disable"])
    for command in commands:
        subprocess.run(command, capture_output=True, check=False, timeout=60)
    deadline = time.monotonic() + 20
    while port_open("127.0.0.1", SYSTEM_PORT):
        if time.monotonic() > deadline:
            raise PrometheusUnavailable(
                "the packaged Prometheus service still listens on :9090 after stopping it"
            )
        time.sleep(0.2)


def ensure_prometheus() -> PrometheusBinaries:
    """The prometheus and promtool binaries, installing Debian's package if they are missing."""
    found = _found()
    if found is not None:
        return found
    if not shutil.which("apt-get"):
        raise PrometheusUnavailable("prometheus is not installed and there is no apt-get")
    if os.geteuid() != 0:
        raise PrometheusUnavailable(
            "prometheus is not installed; run the tests as root or `apt-get install prometheus`"
        )
    system_port_was_busy = port_open("127.0.0.1", SYSTEM_PORT)
    _run(["apt-get", *APT_LOCK_TIMEOUT, "update"])
    _run(
        [
            "apt-get",
            *APT_LOCK_TIMEOUT,
            "install",
            "-y",
            "--no-install-recommends",
            "prometheus",
        ]
    )
    if not system_port_was_busy:
        _stop_system_service()
    found = _found()
    if found is None:
        raise PrometheusUnavailable("apt-get installed prometheus but its binaries are missing")
    return found
