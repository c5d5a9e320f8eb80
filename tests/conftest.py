"""Fixtures shared by every test: real media, synthetic clips, a migrated catalog, a Dagster instance,
and catalogued uploads with the definitions' resources pointed at them."""

import os
import shutil

# Fast retries for the whole suite; set before any Heimdex module reads its settings.
os.environ.setdefault("HEIMDEX_RETRY_DELAY_S", "0.2")
os.environ.setdefault("HEIMDEX_RETRY_MAX_RETRIES", "3")

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import psycopg  # noqa: E402
import pytest  # noqa: E402
from dagster import DagsterInstance, instance_for_test  # noqa: E402

from heimdex_pipeline.catalog.migrate import migrate  # noqa: E402
from heimdex_pipeline.core.settings import PipelineSettings  # noqa: E402
from heimdex_pipeline.resources import MediaStorage, resources_from  # noqa: E402
from tests.catalogue import catalogue_upload  # noqa: E402
from tests.media.synthetic import make_clip  # noqa: E402
from tests.postgres import POSTGRES_ADMIN_URL, close_connections, create_database, drop_databases  # noqa: E402
from tests.s3_server import S3Endpoint, s3_endpoint  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
MEDIA_DIR = Path(os.environ.get("HEIMDEX_MEDIA_DIR", REPO_ROOT.parent / "shared" / "media" / "pyscenedetect"))


FAULTS = Path(__file__).parent / "faults"


# tryfirst: before pytest-xdist reads the xdist_group marks (its hook would otherwise come first
# wherever this conftest is loaded before the worker starts, as when its folder is on the command line).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault tests go to one worker, one after the other (`--dist loadgroup`): each starts Dagster's
    services, breaks one and times how they stop or recover, which two at once on two cores would blur."""
    for item in items:
        if FAULTS in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("faults"))


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """PySceneDetect's real test videos (shared/ beside the checkout); never copied into the repo."""
    assert MEDIA_DIR.is_dir(), f"the real test media are missing: {MEDIA_DIR}"
    return MEDIA_DIR


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[Path, list[float]]]:
    """Make (once per session) an H.264 clip of the given segment lengths; returns it and its cuts."""
    folder = tmp_path_factory.mktemp("clips")
    made: dict[tuple, tuple[Path, list[float]]] = {}

    def make(durations: tuple[float, ...], size: str = "320x240", rate: int = 25,
             extra_args: tuple[str, ...] = ()) -> tuple[Path, list[float]]:
        key = (durations, size, rate, extra_args)
        if key not in made:
            out = folder / f"clip_{len(made)}.mp4"
            made[key] = (out, make_clip(out, durations, size=size, rate=rate, extra_args=extra_args))
        return made[key]

    return make


@pytest.fixture
def derived_root(tmp_path: Path) -> Path:
    """An empty derived folder with its upload bucket."""
    root = tmp_path / "derived"
    (root / "uploads").mkdir(parents=True)
    return root


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[Callable[..., str]]:
    """Make throwaway PostgreSQL databases on the local server, empty or (`like=URL`) copies of one made
    earlier; all are dropped when the session ends.

    Without a server the PostgreSQL tests are skipped, except on CI, where they must run.
    """
    try:
        psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"no PostgreSQL at {POSTGRES_ADMIN_URL}, and CI needs one: {exc}")
        pytest.skip(f"no PostgreSQL at {POSTGRES_ADMIN_URL}")
    made: list[str] = []

    def create(like: str | None = None) -> str:
        made.append(create_database(like=like))
        return made[-1]

    yield create
    drop_databases(made)


@pytest.fixture(scope="session")
def postgres_catalog_template(postgres_database: Callable[..., str]) -> str:
    """A migrated catalog on PostgreSQL, made once per worker for the tests' catalogs to be copied from: a copy
    costs the server 0.05 s, migrating a new database 0.3 s and more."""
    url = postgres_database()
    migrate(url)
    close_connections(url)
    return url


@pytest.fixture(scope="session")
def sqlite_catalog_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite catalog (`catalog.db`, alone in its folder), made once per worker for the tests'
    catalogs to be copied from."""
    path = tmp_path_factory.mktemp("sqlite_catalog_template") / "catalog.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_dagster_template(postgres_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """Dagster's storage made on PostgreSQL once per worker, for the instances to start from: a copy costs the
    server 0.05 s, making Dagster's tables in a new database over 1 s on a busy machine."""
    url = postgres_database()
    with instance_for_test(temp_dir=str(tmp_path_factory.mktemp("postgres_dagster_home")),
                           overrides={"storage": {"postgres": {"postgres_url": url}}}):
        pass
    close_connections(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """The database behind both Dagster's storage and the catalog: each test runs on both."""
    return request.param


@pytest.fixture
def catalog_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A migrated catalog on the test's backend."""
    if backend == "postgresql":
        return request.getfixturevalue("postgres_database")(like=request.getfixturevalue("postgres_catalog_template"))
    for made in request.getfixturevalue("sqlite_catalog_template").parent.iterdir():
        shutil.copy(made, tmp_path / made.name)
    return f"sqlite:///{tmp_path / 'catalog.db'}"


@pytest.fixture(scope="session")
def sqlite_dagster_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DAGSTER_HOME whose SQLite storage is made and migrated once per worker, for the instances to start from:
    a fresh instance's migrations cost 0.3 s of CPU, a copy of this one 0.05 s."""
    home = tmp_path_factory.mktemp("sqlite_dagster_home")
    with instance_for_test(temp_dir=str(home)):
        pass
    return home


@pytest.fixture
def instance(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[DagsterInstance]:
    """A real Dagster instance in a temporary DAGSTER_HOME, its storage on the test's backend."""
    home = tmp_path / "dagster_home"
    overrides = None
    if backend == "postgresql":
        home.mkdir()
        # dagster-postgres keeps run, event log and schedule storage in one database.
        template = request.getfixturevalue("postgres_dagster_template")
        storage = request.getfixturevalue("postgres_database")(like=template)
        overrides = {"storage": {"postgres": {"postgres_url": storage}}}
    else:
        shutil.copytree(request.getfixturevalue("sqlite_dagster_home"), home)
    with instance_for_test(temp_dir=str(home), overrides=overrides) as dagster_instance:
        yield dagster_instance


@pytest.fixture
def storage(derived_root: Path) -> MediaStorage:
    """The local storage of this test's derived root, as the definitions' `storage` resource."""
    return MediaStorage(backend="local", root=str(derived_root))


@pytest.fixture
def pipeline_settings(derived_root: Path, catalog_url: str) -> PipelineSettings:
    """The settings of this test's pipeline: its catalog and derived root, every other setting its default.
    A test that needs another value builds its resources from a copy (`resources_from`)."""
    return PipelineSettings(_env_file=None, derived_root=derived_root, database_url=catalog_url)


@pytest.fixture
def resources(pipeline_settings: PipelineSettings, storage: MediaStorage) -> dict:
    """The definitions' resources, pointed at this test's catalog and derived root."""
    return {**resources_from(pipeline_settings), "storage": storage}


@pytest.fixture
def upload(storage: MediaStorage, catalog_url: str, instance: DagsterInstance) -> Callable[..., str]:
    """Copy a video into the bucket, catalogue it and add its partition, as an ingest does; return its asset id."""

    def place(source: Path, org_id: str = "org-demo", name: str | None = None) -> str:
        return catalogue_upload(storage.store, catalog_url, instance, source, org_id, name)

    return place


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    """moto's S3 server on 127.0.0.1 for the whole session (each test takes its own bucket)."""
    with s3_endpoint() as endpoint:
        yield endpoint
