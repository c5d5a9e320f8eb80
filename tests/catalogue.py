"""Putting a video in the bucket as an ingest would: stored, catalogued, its partition added."""

from functools import partial
from pathlib import Path

from dagster import DagsterInstance

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.repository import SourceObject, register_source
from heimdex_pipeline.media.fingerprint import ContentHash, asset_id_for, hash_content
from heimdex_pipeline.storage import ObjectStore
from heimdex_pipeline.storage.local import LocalStore


def catalogue_upload(store: ObjectStore, catalog_url: str, instance: DagsterInstance, source: Path,
                     org_id: str = "org-demo", name: str | None = None) -> str:
    """Store a video in the bucket, catalogue it and add its partition, as an ingest does; return its asset id."""
    key = f"uploads/{org_id}/manual/{name or source.name}"
    store.write_file(key, source, "video/mp4")
    stored = store.stat(key)
    assert stored is not None
    content = hash_content(stored.size_bytes, partial(store.iter_bytes, key), 1_000_000_000)
    asset_id = asset_id_for(org_id, content)
    with session_scope(catalog_url) as session:
        register_source(session, store, SourceObject.of(org_id, stored), asset_id, content, "test")
    instance.add_dynamic_partitions("videos", [asset_id])
    return asset_id


def hash_file(path: Path, weak_threshold_bytes: int = 1_000_000_000) -> ContentHash:
    """The content hash of a local file, read as the store reads it."""
    return hash_content(path.stat().st_size, partial(LocalStore(path.parent).iter_bytes, path.name),
                        weak_threshold_bytes)
