"""Fixtures for the fault suite: a fresh database and broker per test (from tests/conftest.py)
and a stack of service processes that is torn down whatever the test did to it."""

from __future__ import annotations

import datetime as dt
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devtools.servers import Broker
from shared.clock import SHANGHAI
from tests.faults.harness import FaultStack

# A working day in the middle of the 2022 document's year: tasks are green until reported on.
MAY_20 = dt.datetime(2022, 5, 20, 10, 0, tzinfo=SHANGHAI)

StackFactory = Callable[..., FaultStack]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this directory is a fault test, whether or not its module says so."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def stack_factory(tmp_path: Path, database_url: str, broker: Broker) -> Iterator[StackFactory]:
    """Builds the test's stack (once) on its own database and broker; stops it afterwards."""
    made: list[FaultStack] = []

    def make(clock_at: dt.datetime = MAY_20) -> FaultStack:
        assert not made, "one stack per test"
        stack = FaultStack(
            workdir=tmp_path / "services",
            database_url=database_url,
            broker=broker,
            clock_at=clock_at,
        )
        made.append(stack)
        return stack

    yield make
    # A test that paused the broker must not leave it stopped for the fixture's teardown.
    if broker.process.poll() is None:
        os.kill(broker.process.pid, signal.SIGCONT)
    for stack in made:
        print(f"\n[logs] {stack.logs()}")
        stack.close()
