"""A video's technical QC as the API answers it: a summary in the asset answer, and the whole document."""

import json
from typing import Any

from heimdex_api.core.errors import NotFound
from heimdex_api.services.urls import DownloadUrls
from heimdex_pipeline.catalog.models import Video
from heimdex_pipeline.storage import ObjectNotFoundError, ObjectStore
from heimdex_pipeline.storage.layout import qc_key, qc_storage_key


def _document(store: ObjectStore, video: Video) -> dict[str, Any] | None:
    try:
        return json.loads(store.read_bytes(qc_key(video.org_id, video.asset_id)))
    except ObjectNotFoundError:
        return None


def _link(urls: DownloadUrls, video: Video) -> dict[str, str]:
    storage_key = qc_storage_key(video.asset_id)
    return {"storage_key": storage_key, "url": urls.url(video.org_id, storage_key)}


def qc_summary(store: ObjectStore, urls: DownloadUrls, video: Video) -> dict[str, Any] | None:
    """The asset answer's `qc`: the loudness figures, the scan and how many stretches of each kind, with the
    document's `url`; None until the QC is made."""
    document = _document(store, video)
    if document is None:
        return None
    loudness = document.get("loudness") or {}
    return {**_link(urls, video), "integrated_lufs": loudness.get("integrated_lufs"),
            "loudness_range_lu": loudness.get("range_lu"), "true_peak_dbtp": loudness.get("true_peak_dbtp"),
            "loudness_unavailable": document.get("loudness_unavailable"),
            "scan": document["interlacing"]["scan"], "silences": len(document["silence"]),
            "black_stretches": len(document["black"]), "frozen_stretches": len(document["freeze"])}


def qc_document(store: ObjectStore, urls: DownloadUrls, video: Video) -> dict[str, Any]:
    """The QC document as stored, with its `storage_key` and `url`; 404 until the pipeline wrote it."""
    document = _document(store, video)
    if document is None:
        raise NotFound("the QC document does not exist yet", code="qc_not_found")
    return {**document, **_link(urls, video)}
