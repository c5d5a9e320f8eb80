"""Download URLs of what the pipeline stored, the same call on every backend.

A store with URLs of its own (S3) answers a presigned GET; one without (the local folder)
answers None, and the URL is then the API's own `GET /v1/files/{org_id}/{storage_key}`, signed
with `UrlSigner` for the purpose "download" and the object's full key. Routes call `url` and
never ask which backend they run on.
"""

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from heimdex_api.core.signing import UrlSigner
from heimdex_pipeline.storage import ObjectStore
from heimdex_pipeline.storage.layout import org_key

FILES_PATH = "/v1/files"
DOWNLOAD = "download"


@dataclass(frozen=True)
class DownloadUrls:
    """Builds the `url` fields of one answer: presigned by the store, else signed for the API's files route."""

    store: ObjectStore
    signer: UrlSigner
    base_url: str  # absolute, without a final '/': HEIMDEX_PUBLIC_URL or the request's
    ttl_s: int

    def url(self, org_id: str, storage_key: str) -> str:
        """A URL that fetches the object at `storage_key` (relative to the org's folder) for `ttl_s` seconds."""
        key = org_key(org_id, storage_key)
        presigned = self.store.presigned_get(key, self.ttl_s)
        return presigned if presigned is not None else self.api_url(org_id, storage_key)

    def api_url(self, org_id: str, storage_key: str) -> str:
        """The API's own signed `/v1/files/...` URL of `storage_key`, whatever the store: for what the API
        makes rather than stores as is (a storyboard's track with signed sprite URLs)."""
        # Rounded up to the minute: answers read within a minute give the same URL, which a client may cache.
        expires = -(-(int(time.time()) + self.ttl_s) // 60) * 60
        query = urlencode(self.signer.sign(DOWNLOAD, org_id, org_key(org_id, storage_key), expires))
        return f"{self.base_url}{FILES_PATH}/{quote(org_id)}/{quote(storage_key)}?{query}"

    def thumbnails(self, org_id: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The thumbnail entries of a sidecar, each with its `url`."""
        return [{**entry, "url": self.url(org_id, entry["storage_key"])} for entry in entries]
