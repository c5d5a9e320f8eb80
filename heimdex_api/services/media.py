"""Reading a client's source object: probe it and hash it, answering 4xx for bad input."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heimdex_api.core.config import ApiSettings
from heimdex_api.core.errors import NotFound, Unavailable, Unprocessable
from heimdex_pipeline.catalog.repository import SourceObject
from heimdex_pipeline.media.errors import (
    MediaLimitError,
    TransientMediaError,
    UnreadableMediaError,
    UnsupportedFormatError,
)
from heimdex_pipeline.media.fingerprint import ContentHash, asset_id_for
from heimdex_pipeline.media.limits import MediaLimits, limits_from
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.storage import ObjectNotFoundError, ObjectStore
from heimdex_pipeline.uploads.identity import ContentChangedError, hash_seen_object


@dataclass(frozen=True)
class IdentifiedSource:
    """A readable video of an org, hashed: its probe, content hash and asset id."""

    file: SourceObject
    probe: dict[str, Any]
    content: ContentHash
    asset_id: str


def probe_for_client(source: Path | str, limits: MediaLimits | None = None) -> dict[str, Any]:
    """`probe_video`, its errors answered as 422 `unsupported_format`, `media_limit_exceeded` or
    `unreadable_media`, or 503 `media_unavailable` when the failure may pass."""
    try:
        return probe_video(source, limits)
    except UnsupportedFormatError as exc:
        raise Unprocessable(str(exc), code="unsupported_format") from None
    except MediaLimitError as exc:
        raise Unprocessable(str(exc), code="media_limit_exceeded") from None
    except UnreadableMediaError as exc:
        raise Unprocessable(str(exc), code="unreadable_media") from None
    except TransientMediaError as exc:
        raise Unavailable(str(exc), code="media_unavailable") from None


def source_not_found() -> NotFound:
    """404 `source_not_found`: nothing of the org's is at `source_uri` (nor is it said what another org has there)."""
    return NotFound("nothing is at source_uri", code="source_not_found")


def identify(store: ObjectStore, org_id: str, key: str, weak_threshold_bytes: int, expected_size: int | None = None,
             limits: MediaLimits | None = None) -> IdentifiedSource:
    """Probe and hash the object at `key`: 404 when it is missing, 422 when it is empty, unreadable or of
    another size.

    422 `unsupported_format` for a playlist, manifest or anything else that is no video
    container, `media_limit_exceeded` beyond `limits` (frame size, duration, probe time; by
    default the settings'), `unreadable_media` otherwise. The hash streams the object's bytes
    (only the three samples of a weak one) and the probe reads the object by its
    URL on S3 (`ObjectStore.probe_input`): neither makes a whole copy.
    """
    found = store.stat(key)
    if found is None:
        raise source_not_found()
    if found.size_bytes == 0:
        raise Unprocessable("the source file is empty", code="empty_source")
    if expected_size is not None and found.size_bytes != expected_size:
        raise Unprocessable({"message": "the file's size differs from content_length",
                             "content_length": expected_size, "size_bytes": found.size_bytes},
                            code="content_length_mismatch")
    # ffprobe reads the headers only: by the object's URL where the store has one, not a whole copy.
    with store.probe_input(key) as source:
        probe = probe_for_client(source, limits)
    try:
        # Hashed as it was before the probe: a file written to since then is refused.
        content, after = hash_seen_object(store, found, weak_threshold_bytes)
    except ObjectNotFoundError:
        raise source_not_found() from None
    except ContentChangedError:
        raise Unprocessable("the source file changed while it was read", code="source_changed") from None
    return IdentifiedSource(file=SourceObject.of(org_id, after), probe=probe, content=content,
                            asset_id=asset_id_for(org_id, content))


def identify_request(settings: ApiSettings, store: ObjectStore, org_id: str, key: str,
                     weak_threshold_bytes: int | None, expected_size: int | None = None) -> IdentifiedSource:
    """`identify` under the settings' media limits, with the request's weak threshold or the settings'."""
    threshold = settings.weak_threshold_bytes if weak_threshold_bytes is None else weak_threshold_bytes
    return identify(store, org_id, key, threshold, expected_size, limits_from(settings))
