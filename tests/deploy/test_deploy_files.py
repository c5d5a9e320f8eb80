"""The deployment files, read against the code: no Docker engine, no network.

Checks docker-compose.yml, Dockerfile, .dockerignore, dagster.yaml (local instance),
deploy/dagster.yaml (production instance), workspace.yaml and deploy/workspace.docker.yaml
against each other, against Dagster's own config schemas and against the Python code they name
(modules, settings fields, executables in the uv environment).
"""

from __future__ import annotations

import importlib
import importlib.util
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
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic_settings import BaseSettings

from heimdex_api import serve
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
DAGSTER_SERVICES = (USER_CODE, WEBSERVER, DAEMON)
# Every process that opens the Dagster instance of deploy/dagster.yaml (the API reads runs and
# adds partitions through `DagsterInstance.get()`; migrate sets the pools up).
INSTANCE_SERVICES = (*DAGSTER_SERVICES, API, MIGRATE)
IMAGE_SERVICES = (MIGRATE, USER_CODE, WEBSERVER, DAEMON, API)
DAGSTER_STORAGE_VOLUME = "heimdex_dagster_storage"
WEBSERVER_PORT, GRPC_PORT, API_PORT, S3_PORT = 3000, 4000, 8000, 9000
# Services whose code opens the store: the sensor (code server), the API; run workers get the
# same settings through the run launcher.
STORE_SERVICES = (USER_CODE, API)
S3_SETTINGS = ("HEIMDEX_STORAGE", "HEIMDEX_S3_BUCKET", "HEIMDEX_S3_ENDPOINT_URL", "HEIMDEX_S3_PUBLIC_ENDPOINT_URL")
AWS_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")

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


def command_argv(service: Mapping[str, Any]) -> list[str]:
    command = service.get("command")
    assert command, "the service has no command"
    return [str(part) for part in command] if isinstance(command, list) else shlex.split(command)


def option_value(argv: list[str], *names: str) -> str:
    for index, part in enumerate(argv):
        if part in names:
            return argv[index + 1]
        for name in names:
            if name.startswith("--") and part.startswith(name + "="):
                return part.split("=", 1)[1]
    raise AssertionError(f"none of {names} in {argv}")


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

    def image_files(self) -> dict[str, str]:
        """Image path -> repository path of everything copied from the build context."""
        files: dict[str, str] = {}
        for _, flags, sources, dest in self.copies():
            if any(flag.startswith("--from") for flag in flags):
                continue
            for source in sources:
                name = PurePosixPath(source.rstrip("/")).name
                target = (str(PurePosixPath(dest) / name) if dest.endswith("/") and
                          (len(sources) > 1 or not source.endswith("/")) else dest.rstrip("/"))
                files[target] = source.rstrip("/")
        return files

    @property
    def workdir(self) -> str:
        workdir = PurePosixPath("/")
        for args in self.all("WORKDIR"):
            workdir = workdir / args
        return str(workdir)


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
def compose(raw_compose: dict[str, Any]) -> dict[str, Any]:
    """docker-compose.yml as compose sees it with a filled-in .env (anchors merged, ${} resolved)."""
    return interpolate(raw_compose, FAKE_DOTENV)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


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
    launcher = prod_instance["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    return launcher["config"]


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def pipeline_env_names() -> set[str]:
    from heimdex_pipeline.core.settings import PipelineSettings

    return env_names_of(PipelineSettings)


def env_references(node: Any) -> set[str]:
    """Names of every `{env: NAME}` in a Dagster config tree."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(env_references(value) for value in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(env_references(value) for value in node)) if node else set()
    return set()


# ---------------------------------------------------------------------------------------------
# docker-compose.yml: services, commands, modules
# ---------------------------------------------------------------------------------------------

def test_compose_has_the_expected_services(services: dict[str, Any]) -> None:
    assert set(services) >= {POSTGRES, MIGRATE, USER_CODE, WEBSERVER, DAEMON, API, MINIO, MINIO_BUCKET}
    assert services[POSTGRES]["image"].startswith("postgres:15")
    # Pinned releases: `latest` would change the server under a running deployment.
    assert re.fullmatch(r"minio/minio:RELEASE\.[0-9TZ-]+", services[MINIO]["image"])
    assert re.fullmatch(r"minio/mc:RELEASE\.[0-9TZ-]+", services[MINIO_BUCKET]["image"])


@pytest.mark.parametrize("name", IMAGE_SERVICES)
def test_service_runs_the_heimdex_image_and_its_executable_is_in_the_venv(
        services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service["build"]["context"] == "."
    assert service.get("build", {}).get("dockerfile", "Dockerfile") == "Dockerfile"
    assert service["image"] == services[USER_CODE]["image"], "one image serves every role"
    executable = command_argv(service)[0]
    venv_bin = Path(sys.executable).parent
    assert (venv_bin / executable).exists() or shutil.which(executable, path=str(venv_bin)), (
        f"{name}: `{executable}` is not installed in the uv environment ({venv_bin})")


def test_the_image_default_command_is_the_code_server(
        dockerfile: Dockerfile, services: dict[str, Any]) -> None:
    (cmd,) = dockerfile.all("CMD")
    assert json.loads(cmd) == command_argv(services[USER_CODE])


def test_user_code_server_loads_the_definitions_module(
        services: dict[str, Any], pyproject: dict[str, Any]) -> None:
    from dagster import Definitions

    argv = command_argv(services[USER_CODE])
    assert argv[:3] == ["dagster", "code-server", "start"] or argv[:3] == ["dagster", "api", "grpc"]
    module_name = option_value(argv, "-m", "--module-name")
    assert module_name == pyproject["tool"]["dagster"]["module_name"]
    module = importlib.import_module(module_name)
    assert any(isinstance(value, Definitions) for value in vars(module).values()), (
        f"{module_name} has no top-level Definitions for `-m` to find")
    assert option_value(argv, "--location-name") == pyproject["tool"]["dagster"]["code_location_name"]
    assert option_value(argv, "-h", "--host") == "0.0.0.0"


def test_api_command_imports_the_fastapi_app(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    argv = command_argv(services[API])
    # The API's own server, as run.sh starts it: the header bound, workers and body timeout are its own.
    assert argv[:3] == ["python", "-m", "heimdex_api.serve"]
    args = serve.parse_args(argv[3:])
    module_name, attribute = serve.APP.split(":")
    # With the service's own environment: the app refuses to start in production without its secret.
    _isolate_env(monkeypatch, tmp_path, {key: value for key, value in service_env(services[API]).items()
                                         if key.startswith("HEIMDEX_")})
    app = getattr(importlib.import_module(module_name), attribute)
    assert callable(app), f"{target} is not an ASGI app"
    assert args.host == "0.0.0.0" and args.port == API_PORT


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


def test_migrate_prepares_the_catalog_on_a_single_head_and_the_pools(
        services: dict[str, Any], dockerfile: Dockerfile) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    argv = command_argv(services[MIGRATE])
    assert argv == ["python", "-m", "heimdex_pipeline.admin.prepare"]
    assert importlib.util.find_spec(argv[2]) is not None
    assert services[MIGRATE].get("restart", "no") == "no", "a one-shot job must not restart"
    # Alembic reads alembic.ini beside migrations/, in the image's working directory.
    assert dockerfile.image_files().get(f"{dockerfile.workdir}/alembic.ini") == "alembic.ini"
    heads = ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini"))).get_heads()
    assert len(heads) == 1, f"migrations have {len(heads)} heads: {heads}"


def test_dependencies_and_startup_order(services: dict[str, Any]) -> None:
    for name in IMAGE_SERVICES:
        depends = services[name]["depends_on"]
        assert depends[POSTGRES]["condition"] == "service_healthy", name
    for name in (API, USER_CODE):
        assert services[name]["depends_on"][MIGRATE]["condition"] == "service_completed_successfully"
    # and so after migrate has set up the pools their runs claim
    for name in (WEBSERVER, DAEMON):
        assert USER_CODE in services[name]["depends_on"]
    healthcheck = " ".join(services[POSTGRES]["healthcheck"]["test"])
    assert "pg_isready" in healthcheck


# ---------------------------------------------------------------------------------------------
# Environment variables: settings fields, instance config, run launcher pass-through
# ---------------------------------------------------------------------------------------------

def test_every_heimdex_variable_compose_sets_is_a_setting(
        services: dict[str, Any], pipeline_env_names: set[str]) -> None:
    known = set(pipeline_env_names).union(*(env_names_of(cls) for cls in api_settings_classes()))
    for name, service in services.items():
        unknown = {key for key in service_env(service) if key.startswith("HEIMDEX_")} - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which no settings class reads"


@pytest.mark.parametrize("name", (MIGRATE, USER_CODE, WEBSERVER, DAEMON))
def test_pipeline_services_set_only_pipeline_settings(
        services: dict[str, Any], pipeline_env_names: set[str], name: str,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from heimdex_pipeline.core.settings import PipelineSettings

    env = service_env(services[name])
    heimdex = {key: value for key, value in env.items() if key.startswith("HEIMDEX_")}
    unknown = {key.upper() for key in heimdex} - pipeline_env_names
    assert not unknown, f"{name} sets {sorted(unknown)}, which PipelineSettings does not read"
    assert "HEIMDEX_DATABASE_URL" in heimdex, f"{name} would fall back to SQLite"
    # The values parse.
    _isolate_env(monkeypatch, tmp_path, heimdex)
    settings = PipelineSettings(_env_file=None)
    assert settings.catalog_url.startswith("postgresql+psycopg://")


def test_api_sets_only_api_settings_and_they_parse(
        services: dict[str, Any], pipeline_env_names: set[str], pyproject: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    classes = api_settings_classes()
    known = set(pipeline_env_names).union(*(env_names_of(cls) for cls in classes))
    env = service_env(services[API])
    heimdex = {key: value for key, value in env.items() if key.startswith("HEIMDEX_")}
    unknown = {key.upper() for key in heimdex} - known
    assert not unknown, f"the api sets {sorted(unknown)}, which no settings class reads"
    for required in ("HEIMDEX_JWT_SECRET", "HEIMDEX_URL_SIGNING_KEY", "HEIMDEX_JOB_QUEUE_BACKEND", "HEIMDEX_ENV",
                     "HEIMDEX_DAGSTER_WEBSERVER_URL", "HEIMDEX_DATABASE_URL"):
        assert required in heimdex, f"the api does not set {required}"
    assert heimdex["HEIMDEX_JOB_QUEUE_BACKEND"] == "dagster"
    assert heimdex["HEIMDEX_ENV"] == "production"
    # The production values are accepted by the most derived settings classes.
    _isolate_env(monkeypatch, tmp_path, heimdex)
    leaves = [cls for cls in classes if not any(o is not cls and issubclass(o, cls) for o in classes)]
    for cls in leaves:
        settings = cls(_env_file=None)
        for key in ("HEIMDEX_JOB_QUEUE_BACKEND", "HEIMDEX_ENV", "HEIMDEX_DAGSTER_WEBSERVER_URL"):
            field = key.removeprefix(cls.model_config.get("env_prefix", "") or "").lower()
            if field in cls.model_fields:
                assert str(getattr(settings, field)).rstrip("/") == heimdex[key].rstrip("/"), (cls, key)
        # The API submits runs to the code location the webserver serves.
        location = getattr(settings, "dagster_location_name", None)
        assert location in (None, pyproject["tool"]["dagster"]["code_location_name"])
        if MIGRATE in services[API]["depends_on"]:
            assert getattr(settings, "migrate_on_start", False) is False, (
                "the migrate service runs the migrations; the API need not race it")


def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: Mapping[str, str]) -> None:
    for key in list(os.environ):
        if key.startswith("HEIMDEX_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HEIMDEX_DERIVED_ROOT", str(tmp_path / "derived"))
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_instance_env_references_are_set_wherever_the_instance_loads(
        services: dict[str, Any], prod_instance: dict[str, Any],
        launcher_config: dict[str, Any]) -> None:
    referenced = env_references(prod_instance)
    assert {"DAGSTER_POSTGRES_USER", "DAGSTER_POSTGRES_PASSWORD", "DAGSTER_POSTGRES_DB",
            "DAGSTER_POSTGRES_HOSTNAME"} <= referenced
    for name in INSTANCE_SERVICES:
        missing = referenced - set(service_env(services[name]))
        assert not missing, f"{name} does not set {sorted(missing)} (deploy/dagster.yaml needs them)"
    # Run workers load the same instance: the launcher passes them on.
    passed = {item.split("=", 1)[0] for item in launcher_config["env_vars"]}
    assert referenced <= passed, f"run workers would miss {sorted(referenced - passed)}"


def test_run_launcher_env_vars_exist_in_the_launching_processes(
        services: dict[str, Any], launcher_config: dict[str, Any],
        pipeline_env_names: set[str]) -> None:
    names = [item for item in launcher_config["env_vars"] if "=" not in item]
    # DockerRunLauncher reads bare names from its own process: the daemon launches and resumes
    # runs, the webserver terminates them.
    for service in (DAEMON, WEBSERVER):
        missing = set(names) - set(service_env(services[service]))
        assert not missing, f"{service} does not set {sorted(missing)}: launching a run would fail"
    heimdex = {name.upper() for name in names if name.upper().startswith("HEIMDEX_")}
    assert heimdex <= pipeline_env_names, sorted(heimdex - pipeline_env_names)
    # Run workers must see the same pipeline settings as the code server that planned the run.
    user_code = {k for k in service_env(services[USER_CODE]) if k.startswith("HEIMDEX_")}
    assert user_code == heimdex, (
        f"code server sets {sorted(user_code)} but run workers get {sorted(heimdex)}")


def test_dagster_postgres_credentials_match_the_postgres_service(
        services: dict[str, Any]) -> None:
    pg = service_env(services[POSTGRES])
    for name in INSTANCE_SERVICES:
        env = service_env(services[name])
        assert env["DAGSTER_POSTGRES_HOSTNAME"] == POSTGRES
        assert env["DAGSTER_POSTGRES_USER"] == pg["POSTGRES_USER"]
        assert env["DAGSTER_POSTGRES_PASSWORD"] == pg["POSTGRES_PASSWORD"]
        assert env["DAGSTER_POSTGRES_DB"] == pg["POSTGRES_DB"]


def test_catalog_database_exists_on_the_postgres_service(services: dict[str, Any]) -> None:
    from sqlalchemy.engine import make_url

    pg = service_env(services[POSTGRES])
    init_dir = next(source for source, target in volume_mounts(services[POSTGRES]).items()
                    if target == "/docker-entrypoint-initdb.d")
    init_dir = ROOT / init_dir
    created = set()
    for script in sorted(init_dir.glob("*.sql")):
        created |= set(re.findall(r"CREATE\s+DATABASE\s+\"?(\w+)", script.read_text(), re.I))
    created.add(pg["POSTGRES_DB"])
    urls = {service_env(services[name])["HEIMDEX_DATABASE_URL"]
            for name in IMAGE_SERVICES}
    assert len(urls) == 1, f"services disagree on the catalog: {urls}"
    url = make_url(urls.pop())
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port or 5432) == (POSTGRES, 5432)
    assert (url.username, url.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    assert url.database in created, f"nothing creates the database {url.database}"
    importlib.import_module("psycopg")


def test_env_example_covers_every_variable_compose_requires(raw_compose: dict[str, Any]) -> None:
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
# Ports, network, volumes
# ---------------------------------------------------------------------------------------------

def test_ports_agree(services: dict[str, Any], dockerfile: Dockerfile) -> None:
    webserver = command_argv(services[WEBSERVER])
    assert webserver[0] == "dagster-webserver"
    assert int(option_value(webserver, "-p", "--port")) == WEBSERVER_PORT
    assert option_value(webserver, "-h", "--host") == "0.0.0.0"
    assert services[WEBSERVER]["ports"] == [f"127.0.0.1:{WEBSERVER_PORT}:{WEBSERVER_PORT}"]

    api = command_argv(services[API])
    assert int(option_value(api, "--port")) == API_PORT
    assert services[API]["ports"] == [f"127.0.0.1:{API_PORT}:{API_PORT}"]

    user_code = command_argv(services[USER_CODE])
    assert int(option_value(user_code, "-p", "--port")) == GRPC_PORT
    assert "ports" not in services[USER_CODE], "the gRPC server stays on the compose network"
    (entry,) = yaml.safe_load(DOCKER_WORKSPACE.read_text())["load_from"]
    assert entry["grpc_server"]["host"] == USER_CODE
    assert int(entry["grpc_server"]["port"]) == GRPC_PORT
    healthcheck = services[USER_CODE]["healthcheck"]["test"]
    assert int(option_value(healthcheck, "-p")) == GRPC_PORT

    url = urlsplit(service_env(services[API])["HEIMDEX_DAGSTER_WEBSERVER_URL"])
    assert (url.hostname, url.port) == (WEBSERVER, WEBSERVER_PORT)

    exposed = {int(port.split("/")[0]) for args in dockerfile.all("EXPOSE") for port in args.split()}
    assert exposed >= {WEBSERVER_PORT, GRPC_PORT, API_PORT}


def test_network_name_matches_the_run_launcher(
        compose: dict[str, Any], services: dict[str, Any], launcher_config: dict[str, Any]) -> None:
    network = launcher_config["network"]
    declared = {key: (value or {}).get("name") for key, value in compose["networks"].items()}
    assert network in declared.values(), (
        f"DockerRunLauncher joins `{network}`, but compose names its networks {declared}")
    key = next(key for key, name in declared.items() if name == network)
    for name, service in services.items():
        assert key in service["networks"], f"{name} is not on {network}"


def test_media_lives_in_the_bucket_not_on_a_shared_volume(
        services: dict[str, Any], dockerfile: Dockerfile, launcher_config: dict[str, Any]) -> None:
    derived_root = dockerfile.env["HEIMDEX_DERIVED_ROOT"]
    assert derived_root == "/app/derived"
    for name in IMAGE_SERVICES:
        assert service_env(services[name])["HEIMDEX_STORAGE"] == "s3", name
        # What is left under the derived root is scratch space of one container.
        assert derived_root not in volume_mounts(services[name]).values(), f"{name} still mounts media"
        assert service_env(services[name]).get("HEIMDEX_DERIVED_ROOT", derived_root) == derived_root
    run_mounts = dict(v.split(":")[:2] for v in launcher_config["container_kwargs"]["volumes"])
    assert derived_root not in run_mounts.values(), "run workers read media from the bucket"


def test_compute_log_storage_is_shared_with_run_containers(
        compose: dict[str, Any], services: dict[str, Any], dockerfile: Dockerfile,
        launcher_config: dict[str, Any]) -> None:
    storage = dockerfile.env["DAGSTER_HOME"] + "/storage"
    assert compose["volumes"][DAGSTER_STORAGE_VOLUME]["name"] == DAGSTER_STORAGE_VOLUME
    for name in (WEBSERVER, DAEMON):
        assert volume_mounts(services[name]).get(DAGSTER_STORAGE_VOLUME) == storage, name
    run_mounts = dict(v.split(":")[:2] for v in launcher_config["container_kwargs"]["volumes"])
    assert run_mounts[DAGSTER_STORAGE_VOLUME] == storage


def test_docker_socket_reaches_the_launching_services(services: dict[str, Any]) -> None:
    for name in (WEBSERVER, DAEMON):
        assert volume_mounts(services[name]).get("/var/run/docker.sock") == "/var/run/docker.sock"
        assert services[name].get("group_add"), f"{name} runs as non-root: it needs the socket's group"
    for name in (USER_CODE, API, MIGRATE, MINIO, MINIO_BUCKET):
        assert "/var/run/docker.sock" not in volume_mounts(services[name]), name


def test_current_image_is_the_image_compose_builds(
        raw_compose: dict[str, Any], services: dict[str, Any],
        launcher_config: dict[str, Any]) -> None:
    image = raw_compose["services"][USER_CODE]["image"]
    for name in INSTANCE_SERVICES:
        assert raw_compose["services"][name]["environment"]["DAGSTER_CURRENT_IMAGE"] == image
    assert launcher_config["image"] == {"env": "DAGSTER_CURRENT_IMAGE"}


# ---------------------------------------------------------------------------------------------
# MinIO: the bucket, its creation, the endpoints and credentials the services sign with
# ---------------------------------------------------------------------------------------------

def test_minio_keeps_its_data_in_a_volume_and_has_a_healthcheck(
        compose: dict[str, Any], services: dict[str, Any]) -> None:
    minio = services[MINIO]
    argv = command_argv(minio)
    assert argv[0] == "server"
    data = argv[1]
    (volume,) = [source for source, target in volume_mounts(minio).items() if target == data]
    assert volume in compose["volumes"], f"MinIO's {data} is not a named volume: objects would die with it"
    test = minio["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
    assert minio.get("restart") in ("unless-stopped", "always", "on-failure")


def test_the_bucket_is_created_at_start_before_anything_uses_it(services: dict[str, Any]) -> None:
    job = services[MINIO_BUCKET]
    assert job.get("restart", "no") == "no", "a one-shot job must not restart"
    assert job["depends_on"][MINIO]["condition"] == "service_healthy"
    argv = command_argv(job)
    if argv[0] == "mc":
        argv = argv[1:]
    assert argv[:2] == ["mb", "--ignore-existing"], "creating the bucket must succeed on every start"
    alias, _, bucket = argv[2].partition("/")
    # mc reads the alias from MC_HOST_<alias>: the MinIO service, with its root credentials.
    host = urlsplit(service_env(job)[f"MC_HOST_{alias}"])
    minio_env = service_env(services[MINIO])
    assert (host.hostname, host.port) == (MINIO, S3_PORT)
    assert (host.username, host.password) == (minio_env["MINIO_ROOT_USER"], minio_env["MINIO_ROOT_PASSWORD"])
    for name in IMAGE_SERVICES:
        assert service_env(services[name])["HEIMDEX_S3_BUCKET"] == bucket, f"{name} uses another bucket"
    for name in STORE_SERVICES:
        assert services[name]["depends_on"][MINIO_BUCKET]["condition"] == "service_completed_successfully", name


def test_services_reach_minio_inside_and_clients_through_the_published_port(services: dict[str, Any]) -> None:
    published = {port.rsplit(":", 1)[-1]: port.rsplit(":", 1)[0] for port in services[MINIO]["ports"]}
    assert str(S3_PORT) in published, "clients PUT and GET presigned URLs on MinIO's published port"
    host_side = published[str(S3_PORT)]
    for name in IMAGE_SERVICES:
        env = service_env(services[name])
        inside = urlsplit(env["HEIMDEX_S3_ENDPOINT_URL"])
        assert (inside.hostname, inside.port) == (MINIO, S3_PORT), name
        public = urlsplit(env["HEIMDEX_S3_PUBLIC_ENDPOINT_URL"])
        # Presigned URLs name this host: the one a client on the Docker host reaches.
        assert f"{public.hostname}:{public.port}" == host_side, (name, public)


def test_heimdex_signs_with_minio_credentials(services: dict[str, Any]) -> None:
    minio_env = service_env(services[MINIO])
    for name in (*IMAGE_SERVICES,):
        env = service_env(services[name])
        assert env["AWS_ACCESS_KEY_ID"] == minio_env["MINIO_ROOT_USER"], name
        assert env["AWS_SECRET_ACCESS_KEY"] == minio_env["MINIO_ROOT_PASSWORD"], name
        assert env["AWS_DEFAULT_REGION"], name


def test_run_workers_get_the_bucket_settings_and_credentials(
        services: dict[str, Any], launcher_config: dict[str, Any]) -> None:
    passed = {item.split("=", 1)[0] for item in launcher_config["env_vars"]}
    missing = (set(S3_SETTINGS) | set(AWS_CREDENTIALS)) - passed
    assert not missing, f"run workers would miss {sorted(missing)}: they could not read the video"
    # Every pipeline setting the code server has, whatever its name.
    pipeline = {key for key in service_env(services[USER_CODE]) if key.startswith(("HEIMDEX_", "AWS_"))}
    assert pipeline <= passed, f"run workers would miss {sorted(pipeline - passed)}"


def test_s3_settings_parse_for_the_store(
        services: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from heimdex_pipeline.core.settings import PipelineSettings

    from heimdex_pipeline.storage import store_from_settings

    env = service_env(services[API])
    _isolate_env(monkeypatch, tmp_path, {key: value for key, value in env.items()
                                         if key.startswith(("HEIMDEX_", "AWS_"))})
    settings = PipelineSettings(_env_file=None)
    assert settings.storage == "s3"
    assert settings.s3_bucket and settings.s3_endpoint_url and settings.s3_public_endpoint_url
    # Presigning makes no request: the URL a client gets names the published endpoint, not `minio`.
    url = store_from_settings(settings).presigned_put("uploads/org/up_1/a.mp4", 60, "video/mp4", 1)
    assert url.startswith(f"{settings.s3_public_endpoint_url}/{settings.s3_bucket}/uploads/org/up_1/a.mp4?"), url


# ---------------------------------------------------------------------------------------------
# Workspaces
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


def test_webserver_and_daemon_load_the_docker_workspace(
        services: dict[str, Any], dockerfile: Dockerfile) -> None:
    files = dockerfile.image_files()
    for name in (WEBSERVER, DAEMON):
        workspace = option_value(command_argv(services[name]), "-w", "--workspace")
        # Without -w they would pick up ./workspace.yaml and load the code in-process.
        assert files.get(workspace) == "deploy/workspace.docker.yaml", (name, workspace)
    assert command_argv(services[DAEMON])[:2] == ["dagster-daemon", "run"]


# ---------------------------------------------------------------------------------------------
# Instance configs
# ---------------------------------------------------------------------------------------------

def _instance_dir(tmp_path: Path, source: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(source, home / "dagster.yaml")
    return home


@pytest.fixture
def daemon_env(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = service_env(services[DAEMON])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_production_instance_config_validates(
        tmp_path: Path, prod_instance: dict[str, Any], daemon_env: dict[str, str]) -> None:
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.run_coordinator.queued_run_coordinator import QueuedRunCoordinator
    from dagster_docker import DockerRunLauncher
    from dagster_postgres import DagsterPostgresStorage

    home = _instance_dir(tmp_path, PROD_INSTANCE)
    dagster_instance_config(str(home))  # raises DagsterInvalidConfigError on any schema error

    storage = process_config(DagsterPostgresStorage.config_type(), prod_instance["storage"]["postgres"])
    assert storage.success, storage.errors
    db = storage.value["postgres_db"]
    assert (db["hostname"], db["username"], db["db_name"]) == (
        POSTGRES, daemon_env["DAGSTER_POSTGRES_USER"], daemon_env["DAGSTER_POSTGRES_DB"])

    launcher = process_config(DockerRunLauncher.config_type(), prod_instance["run_launcher"]["config"])
    assert launcher.success, launcher.errors

    ref = InstanceRef.from_dir(str(home))
    assert ref.storage_data.module_name == "dagster_postgres"
    run_launcher = ref.run_launcher_data.rehydrate(as_type=DockerRunLauncher)
    assert run_launcher.networks == ["heimdex_network"]
    assert run_launcher.image == daemon_env["DAGSTER_CURRENT_IMAGE"]
    assert isinstance(ref.run_coordinator, QueuedRunCoordinator)


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


# ---------------------------------------------------------------------------------------------
# Dockerfile and .dockerignore
# ---------------------------------------------------------------------------------------------

def test_dockerfile_base_image_and_python(dockerfile: Dockerfile, pyproject: dict[str, Any]) -> None:
    from packaging.specifiers import SpecifierSet

    # The images are build arguments (scripts/compose-offline.sh passes its stand-ins); the defaults
    # are the official images every other build uses.
    assert dockerfile.all("FROM") == ["${UV_IMAGE} AS uv", "${PYTHON_IMAGE}"]
    args = dict(arg.split("=", 1) for arg in dockerfile.all("ARG"))
    base = args["PYTHON_IMAGE"]
    assert base == "python:3.11-slim-bookworm"
    python = re.match(r"python:(\d+\.\d+)", base).group(1)
    assert f"{python}.0" in SpecifierSet(pyproject["project"]["requires-python"])
    assert python == f"{sys.version_info.major}.{sys.version_info.minor}", "same Python as uv.lock's venv"


def test_dockerfile_installs_ffmpeg_without_recommends(dockerfile: Dockerfile) -> None:
    runs = [run for run in dockerfile.all("RUN") if "apt-get install" in run]
    assert any(re.search(r"\bffmpeg\b", run) and "--no-install-recommends" in run for run in runs)
    assert any("rm -rf /var/lib/apt/lists" in run for run in runs)


def test_dockerfile_installs_the_locked_environment_in_cached_layers(
        dockerfile: Dockerfile, pyproject: dict[str, Any]) -> None:
    uv_copies = [sources for _, flags, sources, _ in dockerfile.copies() if "--from=uv" in flags]
    assert uv_copies == [["/uv", "/uvx"]], "uv is copied from its image (the `uv` stage)"
    uv_image = dict(arg.split("=", 1) for arg in dockerfile.all("ARG"))["UV_IMAGE"]
    assert re.fullmatch(r"ghcr\.io/astral-sh/uv:\d+\.\d+\.\d+", uv_image), f"uv image is not pinned: {uv_image}"

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
    env = dockerfile.env
    assert env.get("UV_PROJECT_ENVIRONMENT", f"{dockerfile.workdir}/.venv") == "/app/.venv"
    assert env["PATH"].split(":")[0] == "/app/.venv/bin"


def test_dockerfile_copies_what_the_services_need(
        dockerfile: Dockerfile, services: dict[str, Any]) -> None:
    files = dockerfile.image_files()
    workdir = dockerfile.workdir
    assert workdir == "/app"
    needed = {"heimdex_pipeline", "heimdex_api", "migrations", "alembic.ini"}
    for name in IMAGE_SERVICES:
        argv = command_argv(services[name])
        for part in argv:
            match = re.fullmatch(r"([A-Za-z_][\w.]*)(:\w+)?", part)
            if match and "." in match.group(1) and not re.fullmatch(r"[\d.]+", part):
                needed.add(match.group(1).split(".")[0])
    for top in sorted(needed):
        assert files.get(f"{workdir}/{top}") == top, f"the image lacks {workdir}/{top}"
    home = dockerfile.env["DAGSTER_HOME"]
    assert home == "/opt/dagster/dagster_home"
    assert files[f"{home}/dagster.yaml"] == "deploy/dagster.yaml"
    assert dockerfile.env["HEIMDEX_DERIVED_ROOT"] == "/app/derived"


def test_dockerfile_copy_sources_exist_and_are_in_the_build_context(dockerfile: Dockerfile) -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    for _, flags, sources, _ in dockerfile.copies():
        if any(flag.startswith("--from") for flag in flags):
            continue
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert not dockerignored(source.rstrip("/"), patterns), f"{source} is dockerignored"
    for secret in (".env", ".venv", ".git", "derived", ".dagster_home"):
        assert dockerignored(secret, patterns), f"{secret} would be sent to the build context"


def test_dockerfile_runs_as_a_non_root_user_owning_its_state(dockerfile: Dockerfile) -> None:
    users = dockerfile.all("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    user = users[-1].split(":")[0]
    last_user = max(i for i, (kw, _) in enumerate(dockerfile.instructions) if kw == "USER")
    assert all(kw in ("USER", "EXPOSE", "CMD", "ENTRYPOINT", "ENV", "LABEL", "WORKDIR")
               for kw, _ in dockerfile.instructions[last_user:]), "nothing is built after USER"
    chowns = " ".join(run for run in dockerfile.all("RUN") if "chown" in run)
    for path in (dockerfile.env["HEIMDEX_DERIVED_ROOT"], dockerfile.env["DAGSTER_HOME"]):
        assert path in chowns and user in chowns, f"{user} does not own {path}"
