"""schemathesis against intake's and tracker's OpenAPI specs, in process, with every check.

The apps run on the real broker and database of a security stack (generous rate limits, so
random data does not trip them). Each operation gets positive and negative examples as
several callers; a server error, an undocumented status, a response that does not match its
schema, or schema-valid data refused all fail the test. Examples are derandomised, so a run
is repeatable; `DUBAN_FUZZ_EXAMPLES` raises the count for a longer hunt.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.result import Err
from schemathesis.python import asgi
from starlette.types import ASGIApp, Receive, Scope, Send

from .conftest import OWN, SecureStack

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("DUBAN_FUZZ_EXAMPLES", "15"))

# Statuses a schema-valid request may still get: the caller's key, the object's existence
# and state, and (only where a domain rule reads the task's dates) 422 are not in a schema.
POSITIVE = ["2xx", "401", "403", "404", "409", "429"]
CONFIG: dict[str, Any] = {
    "checks": {"positive_data_acceptance": {"expected-statuses": POSITIVE}},
    "operations": [
        {
            # `new_due` must be later than the task's due date in force: a rule on stored state.
            "include-path-regex": "/extension-requests$",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE, "422"]}},
        },
        {
            # Unit and leader names must be ones the catalog holds.
            "include-path": "/v1/keys",
            "include-method": "POST",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE, "422"]}},
        },
        {
            # An uploaded file must be a task-division document the parsers can read.
            "include-path": "/v1/catalog/imports",
            "checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE, "422"]}},
        },
    ],
}


def requests_only(app: ASGIApp) -> ASGIApp:
    """The app without its lifespan: the harness already runs its workers."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("lifespan handled by the test harness")
        await app(scope, receive, send)

    return serve


def every_check() -> list[Any]:
    """All of schemathesis' built-in checks."""
    load_all_checks()
    return list(CHECKS.get_all())


SEEN: Counter[tuple[str, int]] = Counter()


def explore(
    strategy: Any, *, checks: list[Any], prepare: Callable[[Any], None] | None = None
) -> None:
    """Send the strategy's examples; raise on the first failed check."""

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if prepare is not None:
            prepare(case)
        response = case.call_and_validate(checks=checks)
        SEEN[(case.operation.label, response.status_code)] += 1

    # Unsatisfiable: nothing to negate in an operation without parameters or body.
    with contextlib.suppress(Unsatisfiable):
        run()


def fuzz(
    app: ASGIApp,
    *,
    tokens: dict[str, str | None],
    choose: Callable[[str, str], list[str]],
    path_parameters: dict[str, str] | None = None,
    prepare: Callable[[Any], None] | None = None,
) -> Iterator[str]:
    """Run every operation as the callers `choose` names; yield one line per failure.

    Each caller's key is schemathesis' configured bearer auth, so it knows the credentials
    are real, leaves them out where a negative case drops the Authorization header, and
    probes whether the operation still answers without them.
    """
    checks = every_check()
    for caller, token in tokens.items():
        config = dict(CONFIG)
        if token is not None:
            config["auth"] = {"openapi": {"HTTPBearer": {"bearer": token}}}
        schema = schemathesis.openapi.from_asgi(
            "/openapi.json", requests_only(app), config=schemathesis.Config.from_dict(config)
        )
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                yield f"unusable operation in the schema: {result.err()}"
                continue
            operation = result.ok()
            if caller not in choose(operation.method.upper(), operation.path):
                continue
            params = {
                k: v for k, v in (path_parameters or {}).items() if "{" + k + "}" in operation.path
            }
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                strategy = operation.as_strategy(mode, path_parameters=params or None)
                try:
                    explore(strategy, checks=checks, prepare=prepare)
                except (Exception, BaseExceptionGroup) as exc:  # one line per failing run
                    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
                    yield f"{operation.label} [{mode.value}, {caller}]: " + " | ".join(lines[:14])


def tracker_callers(method: str, path: str) -> list[str]:
    """Who fuzzes which tracker operation: its intended caller and one refused."""
    if path.startswith("/v1/keys") or path.startswith("/v1/ops"):
        return ["admin", "unit_lead"]
    if path.startswith("/v1/catalog"):
        return ["supervisor"]
    if path.startswith("/v1/tasks/{code}/") and method == "POST":
        lead = path.endswith(("/extension-requests", "/completion-requests"))
        return ["unit_lead" if lead else "supervisor", "leader"]
    if path.startswith("/v1/tasks"):
        return ["unit_lead", "operator"]
    return ["anonymous"]


@pytest.fixture(scope="module", autouse=True)
def _stop_schemathesis_portal() -> Iterator[None]:
    yield
    asgi.shutdown_lifespans()
    for (label, status), count in sorted(SEEN.items()):
        print(f"{label}: {status} x{count}")


def own_task_half_the_time(case: Any) -> None:
    """Point every other valid report at the caller's own task, so some are accepted."""
    valid = case.meta is not None and case.meta.generation.mode.is_positive
    if valid and isinstance(case.body, dict) and hash(str(case.body)) % 2 == 0:
        case.body["task_code"] = OWN


def test_intake_openapi_fuzz(secured: SecureStack) -> None:
    failures = list(
        fuzz(
            secured.intake.app,
            tokens=tokens(secured, "unit_lead", "supervisor", "anonymous"),
            choose=lambda method, path: (
                ["unit_lead", "supervisor"] if path == "/v1/reports" else ["anonymous"]
            ),
            prepare=own_task_half_the_time,
        )
    )
    assert not failures, "\n".join(failures)


def tokens(secured: SecureStack, *names: str) -> dict[str, str | None]:
    """The callers' keys by name; `anonymous` has none."""
    return {name: None if name == "anonymous" else secured.keys[name] for name in names}


TRACKER_CALLERS = ("admin", "supervisor", "unit_lead", "leader", "operator", "anonymous")


def test_tracker_openapi_fuzz(secured: SecureStack) -> None:
    callers = tokens(secured, *TRACKER_CALLERS)
    failures = list(fuzz(secured.tracker.app, tokens=callers, choose=tracker_callers))
    # Once more on objects that exist, so the state rules and 200s are reached too.
    failures += fuzz(
        secured.tracker.app,
        tokens=callers,
        choose=tracker_callers,
        path_parameters={"code": OWN, "key_id": secured.key_ids["operator"]},
    )
    assert not failures, "\n".join(failures)
