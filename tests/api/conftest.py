"""Fixtures of the API tests: a real Dagster instance, SQLite and PostgreSQL catalogs, clients, tokens, clips."""

from collections.abc import Callable, Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from dagster import DagsterInstance, instance_for_test
from fastapi.testclient import TestClient

from heimdex_api.core.config import ApiSettings
from heimdex_api.main import create_app
from heimdex_pipeline.catalog.migrate import migrate
from tests.api.live import live_api
from tests.api.support import SECRET, Snapshot, bearer, commit, make_token, place
from tests.api.uploads import LiveApi


@pytest.fixture(scope="session")
def postgresql_url(postgres_database: Callable[[], str]) -> str:
    """A throwaway, migrated PostgreSQL catalog shared by the session."""
    url = postgres_database()
    migrate(url)
    return url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'heimdex.db'}"
    migrate(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test runs on SQLite and on PostgreSQL; its own org keeps it apart from the others."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="session")
def dagster_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterInstance]:
    """A real, SQLite-backed Dagster instance shared by the session."""
    with instance_for_test(temp_dir=str(tmp_path_factory.mktemp("dagster_home"))) as instance:
        yield instance


@pytest.fixture
def org() -> str:
    return f"org-{uuid4().hex[:10]}"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> ApiSettings:
    return ApiSettings(derived_root=tmp_path / "derived", database_url=database_url, jwt_secret=SECRET,
                       env="development", job_queue_backend="immediate", migrate_on_start=False)


@pytest.fixture
def make_client(dagster_instance: DagsterInstance) -> Iterator[Callable[..., TestClient]]:
    """Clients over apps made from given settings (and optionally an instance)."""
    clients: list[TestClient] = []

    def build(settings: ApiSettings, instance: DagsterInstance | None = None) -> TestClient:
        client = TestClient(create_app(settings, instance=instance or dagster_instance), raise_server_exceptions=False)
        clients.append(client.__enter__())
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient], settings: ApiSettings) -> TestClient:
    return make_client(settings)


@pytest.fixture
def auth(org: str) -> dict[str, str]:
    """Headers of a read+write token of the test's org."""
    return bearer(make_token(org, ["assets:read", "assets:write"]))


@pytest.fixture(scope="session")
def clip(clips: Callable[..., tuple[Path, list[float]]]) -> Path:
    """A 2 s H.264 clip with one hard cut at 1 s: small, quick, and real."""
    return clips((1.0, 1.0), size="160x120")[0]


@pytest.fixture(scope="session")
def testvideo(media_dir: Path) -> Path:
    """PySceneDetect's 24 s test video."""
    return media_dir / "testvideo.mp4"


@pytest.fixture
def snapshot(settings: ApiSettings, dagster_instance: DagsterInstance, org: str) -> Callable[[], Snapshot]:
    return lambda: Snapshot(settings, dagster_instance, org)


@pytest.fixture
def asset(client: TestClient, auth: dict[str, str], org: str, clip: Path) -> tuple[str, Path]:
    """A committed (and, in immediate mode, ingested) clip: its asset id and source path."""
    upload_id, path = place(client, auth, org, clip)
    response = commit(client, auth, org, upload_id, path)
    assert response.status_code == 200, response.text
    return response.json()["asset_id"], path


@pytest.fixture
def local_live(tmp_path: Path, sqlite_url: str, dagster_instance: DagsterInstance, org: str) -> Iterator[LiveApi]:
    """The API on local storage over real HTTP (immediate mode, SQLite catalog)."""
    with live_api(tmp_path, sqlite_url, dagster_instance, org) as live:
        yield live


@pytest.fixture(params=["local", "s3"])
def live(request: pytest.FixtureRequest, tmp_path: Path, sqlite_url: str, dagster_instance: DagsterInstance,
         org: str) -> Iterator[LiveApi]:
    """The API over real HTTP on each storage backend: local, and a fresh bucket of moto's S3 server."""
    storage: dict[str, str] = {}
    if request.param == "s3":
        s3 = request.getfixturevalue("s3")
        storage = {"storage": "s3", "s3_bucket": s3.new_bucket(), "s3_endpoint_url": s3.url}
    with live_api(tmp_path, sqlite_url, dagster_instance, org, **storage) as live:
        yield live

