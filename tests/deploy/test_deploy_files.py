"""The deployment files, where the running stack (tests/stack) cannot speak for them.

tests/stack runs docker-compose.yml on a Docker engine: every service up and healthy, runs in their
own containers, the bucket, the published ports, the Docker socket, the users, the secrets. What it
cannot show is checked here, without an engine: the official images it replaces by stand-ins and the
Dockerfile's defaults, settings a service sets that nothing reads, run workers seeing what the code
server sees, the start order a lucky start would not expose, .env.example, the local instance and
workspace (run.sh's), and what goes into the build context.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from heimdex_api.core.config import ApiSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
LOCAL_INSTANCE = ROOT / "dagster.yaml"
PROD_INSTANCE = ROOT / "deploy" / "dagster.yaml"
LOCAL_WORKSPACE = ROOT / "workspace.yaml"
DOCKER_WORKSPACE = ROOT / "deploy" / "workspace.docker.yaml"
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"

USER_CODE, WEBSERVER, DAEMON, API, MIGRATE, POSTGRES, MINIO, MINIO_BUCKET = (
    "heimdex_user_code", "dagster_webserver", "dagster_daemon", "api", "migrate", "postgres", "minio", "minio_bucket",
)
IMAGE_SERVICES = (MIGRATE, USER_CODE, WEBSERVER, DAEMON, API)
DAGSTER_STORAGE_VOLUME = "heimdex_dagster_storage"

# What an operator's .env would hold: compose refuses to start without the `:?` ones.
FAKE_DOTENV = {
    "MINIO_ROOT_USER": "test-minio",
    "MINIO_ROOT_PASSWORD": "test-minio-password",
    "POSTGRES_PASSWORD": "test-password",
    "HEIMDEX_JWT_SECRET": "t" * 64,
    "HEIMDEX_URL_SIGNING_KEY": "u" * 64,
    "DOCKER_GID": "999",
}


# ---------------------------------------------------------------------------------------------
# Helpers: compose interpolation, Dockerfile parsing, settings fields.
# ---------------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolation_vars(text: str) -> dict[str, str | None]:
    """Each `${VAR...}` compose would read from the environment/.env, with its operator."""
    found: dict[str, str | None] = {}
    for match in _INTERPOLATION.finditer(text):
        name = match.group("braced") or match.group("plain")
        if name:
            found.setdefault(name, match.group("op"))
            if match.group("op") in (":?", "?"):
                found[name] = match.group("op")
    return found


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable interpolation over a parsed file (`$$`, `${V}`, `${V:-d}`, `${V:?e}`)."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("plain")
        op, arg, current = match.group("op"), match.group("arg"), env.get(name)
        if op == ":-" and not current or op == "-" and current is None:
            return arg
        if op == ":?" and not current or op == "?" and current is None:
            raise AssertionError(f"compose needs {name}: {arg}")
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    """A service's `environment:`, as a mapping (compose accepts a mapping or KEY=VALUE list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def volume_mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """`source -> container path` of a service's (short-syntax or long-syntax) volumes."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts[str(volume.get("source"))] = str(volume["target"])
        else:
            parts = str(volume).split(":")
            mounts[parts[0]] = parts[1]
    return mounts


def env_names_of(settings_cls: type[BaseSettings]) -> set[str]:
    """The environment variables a pydantic-settings class reads (upper-cased)."""
    prefix = settings_cls.model_config.get("env_prefix", "") or ""
    names: set[str] = set()
    for field_name, field in settings_cls.model_fields.items():
        aliases: list[str] = []
        alias = field.validation_alias
        if isinstance(alias, str):
            aliases.append(alias)
        elif alias is not None and hasattr(alias, "choices"):
            aliases.extend(choice for choice in alias.choices if isinstance(choice, str))
        if field.alias:
            aliases.append(field.alias)
        names.update(a.upper() for a in aliases) if aliases else names.add(f"{prefix}{field_name}".upper())
    return names


def api_settings_classes() -> list[type[BaseSettings]]:
    """Every BaseSettings subclass the API defines (found once `heimdex_api.main` is imported)."""
    importlib.import_module("heimdex_api.main")
    for candidate in ("heimdex_api.core.config", "heimdex_api.config", "heimdex_api.settings",
                      "heimdex_api.core.settings"):
        try:
            importlib.import_module(candidate)
        except ModuleNotFoundError as error:
            if error.name is None or not candidate.startswith(error.name):
                raise
    found: list[type[BaseSettings]] = []
    for module_name, module in list(sys.modules.items()):
        if module_name != "heimdex_api" and not module_name.startswith("heimdex_api."):
            continue
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings
                    and obj.__module__.startswith("heimdex_api") and obj not in found):
                found.append(obj)
    assert found, "heimdex_api defines no pydantic-settings class"
    return found


class Dockerfile:
    """The instructions of a single-stage Dockerfile, with WORKDIR-resolved COPY destinations."""

    def __init__(self, text: str) -> None:
        logical, current = [], ""
        for raw in text.splitlines():
            line = raw.strip()
            if not current and (not line or line.startswith("#")):
                continue
            if line.startswith("#"):
                continue
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            logical.append(current + line)
            current = ""
        if current:
            logical.append(current)
        self.instructions: list[tuple[str, str]] = []
        for line in logical:
            keyword, _, args = line.partition(" ")
            self.instructions.append((keyword.upper(), args.strip()))

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    @property
    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for args in self.all("ENV"):
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                env[key] = value.replace("${PATH}", "$PATH")
        return env

    def copies(self) -> Iterator[tuple[int, list[str], list[str], str]]:
        """(instruction index, flags, sources, absolute destination) of every COPY/ADD."""
        workdir = PurePosixPath("/")
        for index, (keyword, args) in enumerate(self.instructions):
            if keyword == "WORKDIR":
                workdir = workdir / args
            if keyword not in ("COPY", "ADD"):
                continue
            tokens = json.loads(args) if args.startswith("[") else shlex.split(args)
            flags = [t for t in tokens if t.startswith("--")]
            paths = [t for t in tokens if not t.startswith("--")]
            *sources, dest = paths
            absolute = str(workdir / dest) + ("/" if dest.endswith("/") else "")
            yield index, flags, sources, absolute


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves `path` (relative to the context) out of the build context."""
    parts = PurePosixPath(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        for prefix in prefixes:
            if fnmatch(prefix, pattern) or (pattern.startswith("**/") and
                                             fnmatch(PurePosixPath(prefix).name, pattern[3:])):
                ignored = not negate
                break
    return ignored


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(raw_compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """docker-compose.yml's services as compose sees them with a filled-in .env (${} resolved)."""
    return interpolate(raw_compose, FAKE_DOTENV)["services"]


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return Dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def prod_instance() -> dict[str, Any]:
    return yaml.safe_load(PROD_INSTANCE.read_text())


@pytest.fixture(scope="module")
def local_instance() -> dict[str, Any]:
    return yaml.safe_load(LOCAL_INSTANCE.read_text())


@pytest.fixture(scope="module")
def launcher_config(prod_instance: dict[str, Any]) -> dict[str, Any]:
    return prod_instance["run_launcher"]["config"]


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def pipeline_env_names() -> set[str]:
    from heimdex_pipeline.core.settings import PipelineSettings

    return env_names_of(PipelineSettings)


def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: Mapping[str, str]) -> None:
    for key in list(os.environ):
        if key.startswith("HEIMDEX_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HEIMDEX_DERIVED_ROOT", str(tmp_path / "derived"))
    monkeypatch.chdir(tmp_path)  # no stray .env


def _instance_dir(tmp_path: Path, source: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(source, home / "dagster.yaml")
    return home


# ---------------------------------------------------------------------------------------------
# docker-compose.yml and the Dockerfile as the user's path has them (the stack runs stand-ins)
# ---------------------------------------------------------------------------------------------

def test_compose_names_the_official_images_pinned(services: dict[str, Any]) -> None:
    assert services[POSTGRES]["image"].startswith("postgres:15")
    # Pinned releases: `latest` would change the server under a running deployment.
    assert re.fullmatch(r"minio/minio:RELEASE\.[0-9TZ-]+", services[MINIO]["image"])
    assert re.fullmatch(r"minio/mc:RELEASE\.[0-9TZ-]+", services[MINIO_BUCKET]["image"])


def test_dockerfile_base_image_and_python(dockerfile: Dockerfile, pyproject: dict[str, Any]) -> None:
    from packaging.specifiers import SpecifierSet

    # The images are build arguments (scripts/compose-offline.sh passes its stand-ins); the defaults
    # are the official images every other build uses.
    assert dockerfile.all("FROM") == ["${UV_IMAGE} AS uv", "${PYTHON_IMAGE}"]
    args = dict(arg.split("=", 1) for arg in dockerfile.all("ARG"))
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", args["UV_IMAGE"]), "uv's image is pinned"
    base = args["PYTHON_IMAGE"]
    assert base == "python:3.11-slim-bookworm"
    python = re.match(r"python:(\d+\.\d+)", base).group(1)
    assert f"{python}.0" in SpecifierSet(pyproject["project"]["requires-python"])
    assert python == f"{sys.version_info.major}.{sys.version_info.minor}", "same Python as uv.lock's venv"


def test_dockerfile_installs_the_locked_environment_in_cached_layers(
        dockerfile: Dockerfile, pyproject: dict[str, Any]) -> None:
    """Dependencies in a layer of their own, rebuilt only when pyproject.toml or uv.lock change."""
    syncs = [(i, args) for i, (kw, args) in enumerate(dockerfile.instructions)
             if kw == "RUN" and "uv sync" in args]
    assert syncs and all("--frozen" in args and "--no-dev" in args for _, args in syncs)
    deps_index = next(i for i, args in syncs if "--no-install-project" in args)
    project_index = max(i for i, args in syncs if "--no-install-project" not in args)
    before_deps = [sources for i, flags, sources, _ in dockerfile.copies()
                   if i < deps_index and not any(f.startswith("--from") for f in flags)]
    assert sorted(s for group in before_deps for s in group) == ["pyproject.toml", "uv.lock"], (
        "only the project metadata goes into the dependency layer")
    copied_later = {s.rstrip("/") for i, flags, sources, _ in dockerfile.copies()
                    if deps_index < i < project_index for s in sources}
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert set(packages) <= copied_later, "the project is installed after its sources are copied"
    assert pyproject["project"]["readme"] in copied_later, "hatchling needs the readme to build"


def test_the_build_context_carries_no_secret_and_every_copied_file(dockerfile: Dockerfile) -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    for _, flags, sources, _ in dockerfile.copies():
        if not any(flag.startswith("--from") for flag in flags):
            assert not any(dockerignored(source.rstrip("/"), patterns) for source in sources), sources
    for secret in (".env", ".venv", ".git", "derived", ".dagster_home"):
        assert dockerignored(secret, patterns), f"{secret} would be sent to the build context"


def test_dependencies_and_startup_order(services: dict[str, Any]) -> None:
    """What a start that happens to be in the right order would not show."""
    for name in IMAGE_SERVICES:
        assert services[name]["depends_on"][POSTGRES]["condition"] == "service_healthy", name
    for name in (API, USER_CODE):
        assert services[name]["depends_on"][MIGRATE]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"][MINIO_BUCKET]["condition"] == "service_completed_successfully"
    # and so after migrate has set up the pools their runs claim
    for name in (WEBSERVER, DAEMON):
        assert USER_CODE in services[name]["depends_on"]


def test_env_example_covers_every_variable_compose_reads(raw_compose: dict[str, Any]) -> None:
    def strings(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from strings(key)
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    used = interpolation_vars("\n".join(strings(raw_compose)))
    example = {line.split("=", 1)[0].strip() for line in ENV_EXAMPLE.read_text().splitlines()
               if "=" in line and not line.lstrip().startswith("#")}
    # Those with a default too: the example is where an operator learns they exist.
    assert set(used) <= example, f"deploy/.env.example lacks {sorted(set(used) - example)}"
    assert set(FAKE_DOTENV) <= example
    assert ".env" in (ROOT / ".gitignore").read_text().split()


# ---------------------------------------------------------------------------------------------
# Settings: what a service sets that nothing reads, and what run workers see
# ---------------------------------------------------------------------------------------------

def test_every_heimdex_variable_a_service_sets_is_a_setting_it_reads(
        services: dict[str, Any], pipeline_env_names: set[str]) -> None:
    """A misspelt or retired name is ignored without a word: the stack would run on its default."""
    api_names = set().union(*(env_names_of(cls) for cls in api_settings_classes()))
    for name, service in services.items():
        known = pipeline_env_names | (api_names if name == API else set())
        unknown = {key for key in service_env(service) if key.startswith("HEIMDEX_")} - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which its settings do not read"


def test_run_workers_get_every_pipeline_setting_the_code_server_has(
        services: dict[str, Any], launcher_config: dict[str, Any]) -> None:
    """DockerRunLauncher passes on only the names it lists: a setting added to the code server but
    not to the list would be the default in every run, and no run of the stack's tests would tell."""
    passed = set(launcher_config["env_vars"])
    for service in (DAEMON, WEBSERVER):  # they launch and terminate runs, reading these names
        assert passed <= set(service_env(services[service])), service
    pipeline = {key for key in service_env(services[USER_CODE]) if key.startswith(("HEIMDEX_", "AWS_"))}
    assert pipeline <= passed, f"run workers would miss {sorted(pipeline - passed)}"
    assert {name for name in passed if name.startswith("HEIMDEX_")} <= pipeline


def test_api_and_run_script_serve_through_the_entry_point_with_its_settings(
        services: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A bare `uvicorn heimdex_api.main:app` has no bound on request headers: nothing serves the API that way."""
    run_script = (ROOT / "scripts" / "run.sh").read_text()
    assert "uv run python -m heimdex_api.serve --host 127.0.0.1" in run_script
    for text in (run_script, COMPOSE_FILE.read_text(), DOCKERFILE.read_text(), (ROOT / "README.md").read_text()):
        assert "uvicorn heimdex_api.main:app" not in text
    _isolate_env(monkeypatch, tmp_path, {key: value for key, value in service_env(services[API]).items()
                                         if key.startswith("HEIMDEX_")})
    settings = ApiSettings(_env_file=None)
    assert settings.api_workers >= 2, "one process starves under a crowd (docs/benchmarks.md)"
    assert settings.max_header_bytes <= 64 * 1024


def test_media_lives_in_the_bucket_not_on_a_shared_volume(
        services: dict[str, Any], dockerfile: Dockerfile, launcher_config: dict[str, Any]) -> None:
    """Run workers on another Docker host reach the bucket, not this host's volumes: one host's
    stack would work with a shared media volume too."""
    derived_root = dockerfile.env["HEIMDEX_DERIVED_ROOT"]
    for name in IMAGE_SERVICES:
        assert service_env(services[name])["HEIMDEX_STORAGE"] == "s3", name
        assert derived_root not in volume_mounts(services[name]).values(), f"{name} mounts media"
    run_mounts = dict(v.split(":")[:2] for v in launcher_config["container_kwargs"]["volumes"])
    assert derived_root not in run_mounts.values(), "run workers read media from the bucket"


def test_compute_log_storage_is_shared_with_run_containers(
        raw_compose: dict[str, Any], services: dict[str, Any], dockerfile: Dockerfile,
        launcher_config: dict[str, Any]) -> None:
    """The webserver shows each step's stdout and stderr from where run containers write them."""
    storage = dockerfile.env["DAGSTER_HOME"] + "/storage"
    assert raw_compose["volumes"][DAGSTER_STORAGE_VOLUME]["name"] == DAGSTER_STORAGE_VOLUME
    for name in (WEBSERVER, DAEMON):
        assert volume_mounts(services[name]).get(DAGSTER_STORAGE_VOLUME) == storage, name
    run_mounts = dict(v.split(":")[:2] for v in launcher_config["container_kwargs"]["volumes"])
    assert run_mounts[DAGSTER_STORAGE_VOLUME] == storage


# ---------------------------------------------------------------------------------------------
# The local instance and workspace (./scripts/run.sh), and what they share with production
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", (LOCAL_WORKSPACE, DOCKER_WORKSPACE), ids=lambda p: p.name)
def test_workspace_validates(path: Path, pyproject: dict[str, Any]) -> None:
    from dagster._core.workspace.config_schema import ensure_workspace_config

    config = yaml.safe_load(path.read_text())
    ensure_workspace_config(config, str(path))
    (entry,) = config["load_from"]
    (target,) = entry.values()
    assert target["location_name"] == pyproject["tool"]["dagster"]["code_location_name"]


def test_local_workspace_names_the_definitions_module(pyproject: dict[str, Any]) -> None:
    (entry,) = yaml.safe_load(LOCAL_WORKSPACE.read_text())["load_from"]
    assert entry["python_module"]["module_name"] == pyproject["tool"]["dagster"]["module_name"]


def test_local_instance_config_validates_and_loads(
        tmp_path: Path, local_instance: dict[str, Any]) -> None:
    from dagster import DagsterInstance
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator

    assert "storage" not in local_instance, "local runs keep the default SQLite storage"
    assert "run_launcher" not in local_instance, "local runs use the default subprocess launcher"
    home = _instance_dir(tmp_path, LOCAL_INSTANCE)
    dagster_instance_config(str(home))

    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))
    try:
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        assert instance.run_coordinator.dequeue_interval_seconds == 1
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 2
        assert concurrency.pool_config.default_pool_limit == 1
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_resume_run_attempts == 0
        assert instance.run_retries_enabled
        assert instance.run_retries_max_retries == 1
        assert instance.run_retries_retry_on_asset_or_op_failure is False
        assert instance.telemetry_enabled is False
        assert Path(instance.root_directory) == home
    finally:
        instance.dispose()


@pytest.mark.parametrize("section", ("run_coordinator", "concurrency", "run_monitoring", "run_retries", "telemetry"))
def test_local_and_production_instances_share_their_policies(
        local_instance: dict[str, Any], prod_instance: dict[str, Any], section: str) -> None:
    assert local_instance[section] == prod_instance[section]


def test_ffmpeg_pool_is_limited_by_the_default_pool_limit(local_instance: dict[str, Any]) -> None:
    from heimdex_pipeline.definitions import defs

    pools = {asset.op.pool for asset in defs.assets if getattr(asset, "op", None) and asset.op.pool}
    assert "ffmpeg" in pools
    # No pool gets an explicit limit in the config, so default_limit applies to each of them.
    assert local_instance["concurrency"]["pools"]["default_limit"] == 1
    assert local_instance["concurrency"]["pools"]["granularity"] == "op"


@pytest.mark.slow
def test_dg_checks_the_projects_definitions(tmp_path: Path) -> None:
    """`dg check defs` (pyproject.toml's [tool.dg]), with the local dagster.yaml as instance, and no warning."""
    home = _instance_dir(tmp_path, LOCAL_INSTANCE)
    venv_bin = Path(sys.executable).parent
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEIMDEX_")}
    # As `uv run dg` runs it: in the project's environment.
    env.update(DAGSTER_HOME=str(home), HEIMDEX_DERIVED_ROOT=str(tmp_path / "derived"),
               VIRTUAL_ENV=str(venv_bin.parent), PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}")
    result = subprocess.run([str(venv_bin / "dg"), "check", "defs"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "All definitions loaded successfully" in output
    assert "warning" not in output.lower() and "superseded" not in output.lower(), output
