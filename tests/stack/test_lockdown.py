"""The running stack is locked down: ports published on 127.0.0.1 only, services as a non-root
user (PostgreSQL's entrypoint drops root itself), the Docker socket only where a run launcher
needs it, and no start without the secrets."""

import re

import pytest

from tests.stack.compose import API_ONLY_SECRETS, PROJECT, Stack

SECRETS = ("POSTGRES_PASSWORD", "HEIMDEX_JWT_SECRET", "HEIMDEX_URL_SIGNING_KEY", "MINIO_ROOT_PASSWORD", "DOCKER_GID")
# The services that start or stop run containers: the daemon launches them, the webserver terminates them.
SOCKET_USERS = {"dagster_daemon", "dagster_webserver"}


def services(stack: Stack) -> dict[str, dict]:
    return {c.labels["com.docker.compose.service"]: c.attrs for c in stack.engine.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={PROJECT}"})
        if "com.docker.compose.service" in c.labels}


def test_published_ports_are_bound_to_loopback(stack: Stack) -> None:
    published = {(name, port, binding["HostIp"]) for name, attrs in services(stack).items()
                 for port, bindings in (attrs["HostConfig"]["PortBindings"] or {}).items() for binding in bindings}
    assert {name for name, _, _ in published} == {"api", "dagster_webserver", "minio"}
    assert all(host == "127.0.0.1" for _, _, host in published), published


def test_services_run_as_a_non_root_user(stack: Stack) -> None:
    for name, attrs in services(stack).items():
        if attrs["Config"]["Image"].startswith("heimdex:"):
            assert attrs["Config"]["User"] == "heimdex", name
    # PostgreSQL's entrypoint starts as root only to own its data volume, then runs as `postgres`.
    status = stack.service("postgres").exec_run(["cat", "/proc/1/status"]).output.decode()
    [uid] = re.findall(r"^Uid:\s+(\d+)", status, flags=re.M)
    assert uid != "0"


def test_the_docker_socket_is_mounted_only_where_runs_are_launched_or_stopped(stack: Stack) -> None:
    mounting = {name for name, attrs in services(stack).items()
                if any(mount["Source"] == "/var/run/docker.sock" for mount in attrs["Mounts"])}
    assert mounting == SOCKET_USERS


def test_the_api_secrets_are_in_the_api_container_only(stack: Stack) -> None:
    """`docker inspect` shows a container's environment to whoever may use the engine: the API's
    signing secrets are in no other service (a run container's are checked in test_run_killed)."""
    for name, attrs in services(stack).items():
        values = {item.split("=", 1)[1] for item in attrs["Config"]["Env"]}
        for secret in API_ONLY_SECRETS:
            assert (stack.env[secret] in values) == (name == "api"), (name, secret)


@pytest.mark.parametrize("secret", SECRETS)
def test_compose_refuses_to_start_without_a_secret(stack: Stack, secret: str, tmp_path) -> None:  # noqa: ANN001
    missing = tmp_path / ".env"
    missing.write_text(re.sub(rf"^{secret}=.*$", f"{secret}=", stack.env_path.read_text(), flags=re.M))
    answer = type(stack)(missing, stack.env).compose("config", "--quiet", check=False)
    assert answer.returncode != 0 and f"set {secret} in .env" in answer.stderr
