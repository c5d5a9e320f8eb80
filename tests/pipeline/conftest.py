"""Fixtures for the Dagster side: resources on a temporary derived root, and catalogued uploads."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from dagster import DagsterInstance

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.repository import SourceFile, register_source
from heimdex_pipeline.media.fingerprint import asset_id_for, hash_file
from heimdex_pipeline.resources import CatalogResource, DerivedStorage


@pytest.fixture
def resources(derived_root: Path, catalog_url: str) -> dict:
    """The definitions' resources, pointed at this test's catalog and derived root."""
    return {"catalog": CatalogResource(database_url=catalog_url), "derived": DerivedStorage(root=str(derived_root))}


@pytest.fixture
def upload(derived_root: Path, catalog_url: str, instance: DagsterInstance) -> Callable[..., str]:
    """Copy a video into the bucket, catalogue it and add its partition, as an ingest does; return its asset id."""

    def place(source: Path, org_id: str = "org-demo", name: str | None = None) -> str:
        target = derived_root / "uploads" / org_id / "manual" / (name or source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        content = hash_file(target, 1_000_000_000)
        asset_id = asset_id_for(org_id, content)
        stat = target.stat()
        with session_scope(catalog_url) as session:
            register_source(session, SourceFile(org_id, target, stat.st_size, stat.st_mtime_ns), asset_id, content, "test")
        instance.add_dynamic_partitions("videos", [asset_id])
        return asset_id

    return place
