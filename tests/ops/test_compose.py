"""docker-compose.yml agrees with the code: ports, env names, topics, health and start order.

No Docker engine runs here, so the file is read as data and checked against the settings
classes, shared/topics.py and the Prometheus scrape config.
"""

from __future__ import annotations

import base64
import importlib.util
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from services.intake.settings import IntakeSettings
from services.notifier.settings import NotifierSettings
from services.tracker.cli import app as duban_cli
from services.tracker.settings import TrackerSettings
from shared import topics

from .conftest import DEPLOY, ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))
SERVICES: dict[str, Any] = COMPOSE["services"]
APPS: dict[str, type[BaseSettings]] = {
    "intake": IntakeSettings,
    "tracker": TrackerSettings,
    "notifier": NotifierSettings,
}
SECRETS = ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class MissingVariable(Exception):
    """A `${VAR:?message}` whose variable is unset or empty: compose refuses to start."""


def interpolate(value: str, environ: Mapping[str, str]) -> str:
    """Compose's variable substitution for `${VAR}`, `${VAR:-default}` and `${VAR:?error}`."""

    def replace(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        current = environ.get(name)
        if operator == ":?" and not current:
            raise MissingVariable(f"{name}: {argument}")
        if operator == "?" and current is None:
            raise MissingVariable(f"{name}: {argument}")
        if operator == ":-" and not current:
            return argument
        if operator == "-" and current is None:
            return argument
        return current or ""

    return _VARIABLE.sub(replace, value.replace("$$", "\x00")).replace("\x00", "$")


def resolved_environment(service: str, environ: Mapping[str, str]) -> dict[str, str]:
    """A service's environment after substitution."""
    env = SERVICES[service].get("environment", {})
    return {key: interpolate(str(value), environ) for key, value in env.items()}


def env_names(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def required_variables() -> set[str]:
    text = (ROOT / "docker-compose.yml").read_text("utf-8")
    return {m.group(1) for m in _VARIABLE.finditer(text) if m.group(2) in (":?", "?")}


def all_variables() -> set[str]:
    text = (ROOT / "docker-compose.yml").read_text("utf-8").replace("$$", "")
    return {m.group(1) for m in _VARIABLE.finditer(text)}


FULL_ENVIRONMENT = {name: f"test-{name.lower()}-value" for name in SECRETS}


def container_port(service: str) -> int:
    (mapping,) = SERVICES[service]["ports"]
    return int(str(mapping).rsplit(":", 1)[1])


def healthcheck_url(service: str) -> str:
    test = SERVICES[service]["healthcheck"]["test"]
    command = " ".join(test[1:]) if isinstance(test, list) else str(test)
    match = re.search(r"https?://[^'\" ]+", command)
    assert match, f"{service}: healthcheck has no URL: {command}"
    return match.group(0)


# --- the whole stack is there -------------------------------------------------------------


def test_the_stack_has_every_part() -> None:
    assert {
        "postgres",
        "redis",
        "kafka",
        "kafka-topics",
        "migrate",
        "intake",
        "tracker",
        "notifier",
        "prometheus",
        "grafana",
    } <= set(SERVICES)


def test_named_volumes_are_declared() -> None:
    used = {
        str(volume).split(":", 1)[0]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
        if not str(volume).startswith((".", "/"))
    }
    assert used <= set(COMPOSE.get("volumes", {}))


# --- Kafka ----------------------------------------------------------------------------------


def test_kafka_runs_in_kraft_mode() -> None:
    env = SERVICES["kafka"]["environment"]
    assert not any("ZOOKEEPER" in key for key in env), "KRaft needs no ZooKeeper"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node = str(env["KAFKA_NODE_ID"])
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert any(v.startswith(f"{node}@") for v in voters), voters
    listeners = dict(part.split("://") for part in env["KAFKA_LISTENERS"].split(","))
    protocols = dict(
        part.split(":") for part in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners and controller in protocols
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners
    # Each voter's port is the controller listener's port.
    controller_port = listeners[controller].rsplit(":", 1)[1]
    assert all(v.rsplit(":", 1)[1] == controller_port for v in voters)
    cluster_id = interpolate(env["CLUSTER_ID"], {})
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, "CLUSTER_ID must be a UUID"


def test_services_bootstrap_from_the_advertised_listener() -> None:
    env = SERVICES["kafka"]["environment"]
    advertised = {urlsplit(part).netloc for part in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for service in (*APPS, "migrate"):
        bootstrap = resolved_environment(service, FULL_ENVIRONMENT)["KAFKA_BOOTSTRAP_SERVERS"]
        assert set(bootstrap.split(",")) <= advertised, service
    internal = {h.split(":")[0] for h in advertised}
    assert internal <= set(SERVICES) | {SERVICES["kafka"].get("hostname")}


def test_the_topic_step_creates_every_contract_topic_and_its_dlq() -> None:
    step = SERVICES["kafka-topics"]
    assert str(step.get("restart")) == "no"
    env = step["environment"]
    assert env["DUBAN_TOPICS"].split() == list(topics.ALL)
    script = "\n".join(step["command"])
    assert 'for name in "$$topic" "$$topic-dlq"' in script
    assert topics.dlq("x") == "x-dlq", "the script assumes the <topic>-dlq naming"
    assert "--if-not-exists" in script
    # Same partition and replication settings as the services, which create missing topics.
    tracker = SERVICES["tracker"]["environment"]
    for key in ("DUBAN_TOPIC_PARTITIONS", "DUBAN_TOPIC_REPLICATION_FACTOR"):
        assert env[key] == tracker[key], key
        assert f"$${key}" in script
    kafka = SERVICES["kafka"]["environment"]
    assert str(kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"


def test_the_topic_step_makes_the_directory_a_compacted_topic_as_the_services_do() -> None:
    step = SERVICES["kafka-topics"]
    env = step["environment"]
    assert env["DUBAN_DIRECTORY_TOPIC"] == topics.DIRECTORY
    configured = dict(pair.split("=", 1) for pair in env["DUBAN_DIRECTORY_TOPIC_CONFIG"].split(","))
    # The same settings `ensure_topics` gives the topic (shared/topics.py).
    assert configured == dict(topics.DIRECTORY_CONFIG)
    assert configured["cleanup.policy"] == "compact"
    script = "\n".join(step["command"])
    # Applied after the create loop, so a directory topic that already existed gets them too.
    alter = script.index("kafka-configs.sh")
    assert alter > script.index("kafka-topics.sh --bootstrap-server kafka:9092 --create")
    assert "--alter" in script[alter:]
    assert '--entity-type topics --entity-name "$$DUBAN_DIRECTORY_TOPIC"' in script
    assert '--add-config "$$DUBAN_DIRECTORY_TOPIC_CONFIG"' in script


# --- the three services ---------------------------------------------------------------------


@pytest.mark.parametrize("name", APPS)
def test_service_runs_its_entrypoint(name: str) -> None:
    command = SERVICES[name]["command"]
    assert command[:2] == ["python", "-m"]
    assert command[2] == f"services.{name}.main"
    assert importlib.util.find_spec(command[2]) is not None


@pytest.mark.parametrize("name", APPS)
def test_service_env_names_are_settings_fields(name: str) -> None:
    allowed = env_names(APPS[name])
    unknown = set(SERVICES[name]["environment"]) - allowed
    assert not unknown, f"{name} sets variables its settings never read: {unknown}"


@pytest.mark.parametrize("name", APPS)
def test_service_settings_load_from_the_compose_environment(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(env_names(APPS[name])):
        monkeypatch.delenv(key, raising=False)
    for key, value in resolved_environment(name, FULL_ENVIRONMENT).items():
        monkeypatch.setenv(key, value)
    settings = APPS[name]()
    assert settings.env == "production"  # type: ignore[attr-defined]
    assert settings.host == "0.0.0.0"  # type: ignore[attr-defined]
    port = settings.port  # type: ignore[attr-defined]
    assert port == container_port(name), f"{name}: DUBAN_PORT and the published port differ"
    assert port == APPS[name].model_fields["port"].default, "compose keeps the documented port"
    url = urlsplit(healthcheck_url(name))
    assert (url.port, url.path) == (port, "/readyz")
    if name != "intake":
        assert settings.consumer_group == APPS[name].model_fields["consumer_group"].default  # type: ignore[attr-defined]
        assert settings.sqlalchemy_url.startswith("postgresql+psycopg://duban:")  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", APPS)
def test_replicas_share_rate_limits_through_the_compose_redis(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = resolved_environment(name, FULL_ENVIRONMENT)
    url = urlsplit(env["DUBAN_RATE_LIMIT_STORAGE"])
    assert url.scheme == "redis"
    assert url.hostname in SERVICES and url.hostname == "redis"
    assert url.port == 6379
    redis = SERVICES["redis"]
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])
    assert "ports" not in redis, "Redis stays on the compose network"
    for key in list(env_names(APPS[name])):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert APPS[name]().rate_limit_storage == env["DUBAN_RATE_LIMIT_STORAGE"]  # type: ignore[attr-defined]


def test_intake_gets_no_database_credentials() -> None:
    assert "DATABASE_URL" not in SERVICES["intake"]["environment"]
    assert "postgres" not in SERVICES["intake"].get("depends_on", {})


def test_prometheus_scrapes_each_service_on_its_port() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text("utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name in APPS:
        job = jobs[name]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        (discovery,) = job["dns_sd_configs"]
        assert discovery["names"] == [name], "scrapes every replica of the compose service"
        assert discovery["type"] == "A"
        assert discovery["port"] == container_port(name)
    prometheus = SERVICES["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]


# --- image, migration step, start order -----------------------------------------------------


def test_duban_processes_share_one_image_built_here() -> None:
    images = {SERVICES[name]["image"] for name in (*APPS, "migrate")}
    assert len(images) == 1
    for name in (*APPS, "migrate"):
        assert SERVICES[name]["build"]["context"] == "."
        assert (ROOT / SERVICES[name]["build"]["dockerfile"]).is_file()


def test_migration_step_runs_the_duban_migrate_command() -> None:
    migrate = SERVICES["migrate"]
    assert migrate["command"] == ["duban", "migrate"]
    assert str(migrate.get("restart")) == "no"
    assert "DATABASE_URL" in migrate["environment"]
    result = CliRunner().invoke(duban_cli, ["--help"])
    assert result.exit_code == 0 and "migrate" in result.output
    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    assert 'duban = "services.tracker.cli:app"' in pyproject


EXPECTED_ORDER = {
    "kafka-topics": {"kafka": "service_healthy"},
    "migrate": {"postgres": "service_healthy"},
    "intake": {
        "redis": "service_healthy",
        "kafka": "service_healthy",
        "kafka-topics": "service_completed_successfully",
    },
    "tracker": {
        "redis": "service_healthy",
        "postgres": "service_healthy",
        "kafka": "service_healthy",
        "kafka-topics": "service_completed_successfully",
        "migrate": "service_completed_successfully",
    },
    "notifier": {
        "redis": "service_healthy",
        "postgres": "service_healthy",
        "kafka": "service_healthy",
        "kafka-topics": "service_completed_successfully",
        "migrate": "service_completed_successfully",
    },
    "grafana": {"prometheus": "service_healthy"},
}


@pytest.mark.parametrize("name", EXPECTED_ORDER)
def test_depends_on_waits_for_health_and_completed_steps(name: str) -> None:
    depends = SERVICES[name]["depends_on"]
    assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a list"
    conditions = {target: spec["condition"] for target, spec in depends.items()}
    assert EXPECTED_ORDER[name].items() <= conditions.items()


def test_every_condition_can_be_met() -> None:
    for name, service in SERVICES.items():
        for target, spec in service.get("depends_on", {}).items():
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits on {target}'s health"
            elif condition == "service_completed_successfully":
                assert str(SERVICES[target].get("restart")) == "no", f"{target} must exit"
            else:
                assert condition == "service_started", f"{name}: {condition}"


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        if str(service.get("restart")) != "no":
            assert "healthcheck" in service, name


# --- secrets --------------------------------------------------------------------------------


def test_secrets_come_from_the_environment_and_are_required() -> None:
    assert set(SECRETS) <= required_variables()
    secretive = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL", re.IGNORECASE)
    for name, service in SERVICES.items():
        for key, value in service.get("environment", {}).items():
            if secretive.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{name}.{key}"
            if key == "DATABASE_URL":
                assert "${POSTGRES_PASSWORD:?" in str(value), f"{name}.{key}"


@pytest.mark.parametrize("secret", SECRETS)
def test_compose_refuses_to_start_without_a_secret(secret: str) -> None:
    environ = {k: v for k, v in FULL_ENVIRONMENT.items() if k != secret}
    affected = [
        name
        for name, service in SERVICES.items()
        if any(f"${{{secret}:?" in str(v) for v in service.get("environment", {}).values())
    ]
    assert affected
    for name in affected:
        with pytest.raises(MissingVariable, match=secret):
            resolved_environment(name, environ)
        with pytest.raises(MissingVariable, match=secret):
            resolved_environment(name, {**environ, secret: ""})


def test_interpolation_reads_defaults_and_escapes() -> None:
    assert interpolate("${A:-x}-${B}-$$C", {"B": "b"}) == "x-b-$C"
    with pytest.raises(MissingVariable):
        interpolate("${A:?needed}", {"A": ""})


def test_env_example_lists_every_variable() -> None:
    example = (DEPLOY / "env.example").read_text("utf-8")
    required = {
        line.split("=", 1)[0] for line in example.splitlines() if re.match(r"^[A-Z_]+=", line)
    }
    assert required == required_variables()
    mentioned = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    assert all_variables() <= mentioned


# --- scaling --------------------------------------------------------------------------------


class _ComposeLoader(yaml.SafeLoader):
    """Reads compose's `!reset` tag as `{"!reset": value}`."""


def _reset(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node)
    else:
        value = loader.construct_scalar(node)  # type: ignore[arg-type]
    return {"!reset": value}


_ComposeLoader.add_constructor("!reset", _reset)


def test_scale_override_frees_the_host_ports_of_scaled_consumers() -> None:
    override = yaml.load(  # a SafeLoader subclass: no arbitrary objects
        (DEPLOY / "compose" / "scale.yml").read_text("utf-8"), Loader=_ComposeLoader
    )
    for name in ("tracker", "notifier"):
        assert SERVICES[name]["ports"], name
        assert override["services"][name]["ports"] == {"!reset": []}
