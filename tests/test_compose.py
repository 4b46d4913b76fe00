"""docker-compose.yml, Dockerfile and config/nginx.conf, checked without a Docker engine.

`docker-compose config` validates the compose file; the rest is read statically: every
command of our image is a real console entry point with valid arguments, every environment
name is a real setting, and the load balancer's upstream is the api service on its port.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from dataclasses import fields
from typing import Any

import pytest
import yaml

from mini_forge.cli import _parser
from shared.settings import Settings
from tests.support import ROOT, ci_is_set

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
OUR_SERVICES = {name: service for name, service in SERVICES.items() if "build" in service}
DOCKERFILE = (ROOT / "Dockerfile").read_text()
NGINX = (ROOT / "config/nginx.conf").read_text()


def _final_stage() -> str:
    """The last stage of the Dockerfile, continuation lines joined."""
    return DOCKERFILE.rsplit("\nFROM ", 1)[1].replace("\\\n", " ")


def _instruction(name: str) -> str:
    (line,) = re.findall(rf"^{name} (.*)$", _final_stage(), re.MULTILINE)
    return str(line)


@pytest.mark.parametrize("profile", [[], ["--profile", "postgres"]], ids=["default", "postgres"])
def test_docker_compose_accepts_the_file(profile: list[str]) -> None:
    if shutil.which("docker-compose") is None:
        if ci_is_set():
            pytest.fail("docker-compose is missing (CI is set; .ci/run installs it)")
        pytest.skip("docker-compose is not installed")
    checked = subprocess.run(
        ["docker-compose", "-f", "docker-compose.yml", *profile, "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert yaml.safe_load(checked.stdout)["services"]["api"]["deploy"]["replicas"] == 3


def test_every_command_of_our_image_is_a_console_entry_point() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    commands = [service["command"] for service in OUR_SERVICES.values()]
    commands.append(json.loads(_instruction("CMD")))
    assert {command[1] for command in commands} == {"api", "refiller"}
    for command in commands:
        assert command[0] in scripts
        _parser().parse_args(command[1:])  # exits (fails the test) on an unknown command


def test_every_environment_name_is_a_setting() -> None:
    settings = {field.name for field in fields(Settings)}
    for name, service in OUR_SERVICES.items():
        unknown = set(service["environment"]) - settings
        assert not unknown, f"service {name} sets {unknown}, which are no settings"
    dockerfile_env = re.findall(r"(\w+)=", _instruction("ENV"))
    assert set(dockerfile_env) - {"PATH", "PYTHONUNBUFFERED"} <= settings


def test_the_load_balancer_round_robins_over_the_api_service() -> None:
    (upstream, body) = re.findall(r"upstream (\w+) \{([^}]*)\}", NGINX)[0]
    (host, port) = re.findall(r"server ([\w.-]+):(\d+)", body)[0]
    api = SERVICES[host]
    assert host == "api"
    assert port == api["environment"]["PORT"]
    assert api["expose"] == [port]
    assert f"proxy_pass http://{upstream};" in NGINX
    # No balancing directive means round robin.
    assert not re.search(r"\b(least_conn|ip_hash|hash|random)\b", body)
    (listen,) = re.findall(r"listen (\d+);", NGINX)
    lb = SERVICES["lb"]
    assert lb["image"] == "nginx:alpine"
    assert [mapping.rsplit(":", 1)[1] for mapping in lb["ports"]] == [listen]
    assert "${LB_PORT:-8080}" in lb["ports"][0]
    assert any(volume.startswith("./config/nginx.conf:") for volume in lb["volumes"])


def test_api_replicas_scale_and_listen_on_every_interface() -> None:
    api = SERVICES["api"]
    assert "ports" not in api, "a fixed host port would stop `--scale api=5`"
    assert "container_name" not in api
    assert api["deploy"]["replicas"] == 3
    assert api["environment"]["HOST"] == "0.0.0.0"


def test_redis_keeps_nothing_and_the_refiller_waits_for_it() -> None:
    redis = SERVICES["redis"]
    assert redis["image"] == "redis:7-alpine"
    assert redis["command"] == ["redis-server", "--save", "", "--appendonly", "no"]
    assert "redis-cli" in redis["healthcheck"]["test"]
    for name, service in OUR_SERVICES.items():
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_the_sqlite_counter_lives_on_a_named_volume() -> None:
    refiller = SERVICES["refiller"]
    workdir = _instruction("WORKDIR")
    (volume,) = refiller["volumes"]
    name, target = volume.split(":")
    assert name in COMPOSE["volumes"]
    default_url = re.fullmatch(r"\$\{DATABASE_URL:-(.*)\}", refiller["environment"]["DATABASE_URL"])
    assert default_url is not None
    relative_path = default_url.group(1).removeprefix("sqlite:///")
    assert f"{workdir}/{relative_path}".startswith(f"{target}/")


def test_the_postgres_profile_brings_a_database_the_refiller_can_use() -> None:
    postgres = SERVICES["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert "pg_isready" in postgres["healthcheck"]["test"]
    example = (ROOT / ".env.example").read_text()
    (url,) = re.findall(r"^# DATABASE_URL=(postgresql://\S+)$", example, re.MULTILINE)
    assert url.endswith(f"@postgres:5432/{postgres['environment']['POSTGRES_DB']}")
    assert f"//{postgres['environment']['POSTGRES_USER']}:" in url
    assert "# COMPOSE_PROFILES=postgres" in example


def test_the_image_is_slim_multi_stage_non_root_and_health_checked() -> None:
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, re.MULTILINE)
    assert stages == ["python:3.11-slim", "python:3.11-slim"]
    final = _final_stage()
    assert "build-essential" not in final and "gcc" not in final
    assert "COPY --from=build /opt/venv /opt/venv" in final
    user = _instruction("USER")
    assert user not in ("root", "0")
    assert re.search(rf"useradd .*{user}$", final, re.MULTILINE)
    healthcheck = _instruction("HEALTHCHECK")
    assert "/healthz" in healthcheck
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert {".env", ".venv", "data"} <= set(dockerignore)
