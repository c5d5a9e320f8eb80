"""The `ffmpeg` pool's limit, set before runs claim it (`heimdex_pipeline.runs.pools`), and
`python -m heimdex_pipeline.admin.prepare`, which sets it and migrates the catalog before the services start."""

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from alembic.script import ScriptDirectory
from dagster import DagsterInstance
from sqlalchemy.exc import SQLAlchemyError

from heimdex_pipeline.catalog.db import make_engine
from heimdex_pipeline.catalog.migrate import alembic_config
from heimdex_pipeline.runs.pools import FFMPEG_POOL, prepare_pools
from tests.dagster_home import REPO_ROOT, instance_yaml, prepare

ROUNDS = 20
DEFAULT_LIMIT = yaml.safe_load((REPO_ROOT / "dagster.yaml").read_text())["concurrency"]["pools"]["default_limit"]


@pytest.fixture
def instance_storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict | None:
    """The `storage` section of an instance on the test's backend (SQLite under DAGSTER_HOME by default)."""
    if backend == "postgresql":
        return {"postgres": {"postgres_url": request.getfixturevalue("postgres_database")()}}
    return None


@pytest.fixture
def open_instance(instance_storage: dict | None, tmp_path: Path) -> Iterator[Callable[..., DagsterInstance]]:
    """Opens the repository's instance config on the test's storage, with another default pool limit if asked."""
    opened: list[DagsterInstance] = []

    def open_(default_limit: int = DEFAULT_LIMIT) -> DagsterInstance:
        home = tmp_path / f"dagster_home_{len(opened)}"
        home.mkdir()
        config = yaml.safe_load(instance_yaml(instance_storage))
        config["concurrency"]["pools"]["default_limit"] = default_limit
        if instance_storage is None:  # the same SQLite storage for every instance the test opens
            config["storage"] = {"sqlite": {"base_dir": str(tmp_path / "storage")}}
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
        opened.append(DagsterInstance.from_config(str(home)))
        return opened[-1]

    yield open_
    for instance in opened:
        instance.dispose()


def pool_limit(instance: DagsterInstance) -> tuple[int | None, bool] | None:
    limits = {pool.name: (pool.limit, pool.from_default) for pool in instance.event_log_storage.get_pool_limits()}
    return limits.get(FFMPEG_POOL)


def test_the_pool_gets_the_default_limit_once_and_a_changed_default_later(
        open_instance: Callable[..., DagsterInstance]) -> None:
    instance = open_instance()
    assert pool_limit(instance) is None
    prepare_pools(instance)
    assert pool_limit(instance) == (DEFAULT_LIMIT, True)
    prepare_pools(instance)
    assert pool_limit(instance) == (DEFAULT_LIMIT, True)

    raised = open_instance(default_limit=DEFAULT_LIMIT + 2)
    prepare_pools(raised)
    assert pool_limit(raised) == (DEFAULT_LIMIT + 2, True)
    assert raised.event_log_storage.get_concurrency_info(FFMPEG_POOL).slot_count == DEFAULT_LIMIT + 2


def test_a_limit_someone_set_is_left_alone(open_instance: Callable[..., DagsterInstance]) -> None:
    instance = open_instance()
    instance.event_log_storage.set_concurrency_slots(FFMPEG_POOL, 3)
    prepare_pools(instance)
    assert pool_limit(instance) == (3, False)


def test_processes_preparing_together_all_succeed(open_instance: Callable[..., DagsterInstance]) -> None:
    instances = [open_instance() for _ in range(4)]
    errors: list[Exception] = []

    def prepare(instance: DagsterInstance, start: threading.Barrier) -> None:
        start.wait()
        try:
            prepare_pools(instance)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    for _ in range(ROUNDS):  # the race is narrow: a new pool each round
        instances[0].event_log_storage.delete_concurrency_limit(FFMPEG_POOL)
        start = threading.Barrier(len(instances))
        threads = [threading.Thread(target=prepare, args=(instance, start)) for instance in instances]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert pool_limit(instances[0]) == (DEFAULT_LIMIT, True)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_dagster_still_cannot_set_an_existing_pool_on_postgresql(open_instance: Callable[..., DagsterInstance]) -> None:
    """Why `prepare_pools` exists (dagster-io/dagster#33552): when this fails, Dagster has fixed it,
    and the module can go."""
    instance = open_instance()
    instance.event_log_storage.initialize_concurrency_limit_to_default(FFMPEG_POOL)
    with pytest.raises(SQLAlchemyError):
        instance.event_log_storage.initialize_concurrency_limit_to_default(FFMPEG_POOL)


def test_prepare_migrates_the_catalog_and_sets_the_pool(instance_storage: dict | None, backend: str,
                                                         tmp_path: Path, request: pytest.FixtureRequest) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml(instance_storage))
    catalog_url = (request.getfixturevalue("postgres_database")() if backend == "postgresql"
                   else f"sqlite:///{tmp_path / 'catalog.db'}")
    env = {**os.environ, "DAGSTER_HOME": str(home), "HEIMDEX_DERIVED_ROOT": str(tmp_path / "derived"),
           "HEIMDEX_DATABASE_URL": catalog_url}
    prepare(env)
    prepare(env)  # as every start does
    heads = ScriptDirectory.from_config(alembic_config(catalog_url)).get_heads()
    engine = make_engine(catalog_url)
    with engine.connect() as conn:
        assert [conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()] == heads
    engine.dispose()
    with DagsterInstance.from_config(str(home)) as instance:
        assert pool_limit(instance) == (DEFAULT_LIMIT, True)
