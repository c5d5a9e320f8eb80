"""Reading a client's source file: probe it and hash it, answering 4xx for bad input."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heimdex_api.core.config import ApiSettings
from heimdex_api.core.errors import NotFound, Unavailable, Unprocessable
from heimdex_pipeline.catalog.repository import SourceFile
from heimdex_pipeline.media.errors import (
    MediaLimitError,
    TransientMediaError,
    UnreadableMediaError,
    UnsupportedFormatError,
)
from heimdex_pipeline.media.fingerprint import ContentHash, asset_id_for, hash_file
from heimdex_pipeline.media.limits import MediaLimits, limits_from
from heimdex_pipeline.media.probe import probe_video


@dataclass(frozen=True)
class IdentifiedSource:
    """A readable video of an org, hashed: its probe, content hash and asset id."""

    file: SourceFile
    probe: dict[str, Any]
    content: ContentHash
    asset_id: str


def probe_for_client(path: Path, limits: MediaLimits | None = None) -> dict[str, Any]:
    """`probe_video`, its errors answered as 422 `unsupported_format`, `media_limit_exceeded` or
    `unreadable_media`, or 503 `media_unavailable` when the failure may pass."""
    try:
        return probe_video(path, limits)
    except UnsupportedFormatError as exc:
        raise Unprocessable(str(exc), code="unsupported_format") from None
    except MediaLimitError as exc:
        raise Unprocessable(str(exc), code="media_limit_exceeded") from None
    except UnreadableMediaError as exc:
        raise Unprocessable(str(exc), code="unreadable_media") from None
    except TransientMediaError as exc:
        raise Unavailable(str(exc), code="media_unavailable") from None


def identify(org_id: str, path: Path, weak_threshold_bytes: int, expected_size: int | None = None,
             limits: MediaLimits | None = None) -> IdentifiedSource:
    """Probe and hash `path`: 404 when it is missing, 422 when it is empty, unreadable or of another size.

    422 `unsupported_format` for a playlist, manifest or anything else that is no video
    container, `media_limit_exceeded` beyond `limits` (frame size, duration, probe time; by
    default the settings'), `unreadable_media` otherwise.
    """
    if not path.is_file():
        raise NotFound("nothing is at source_uri", code="source_not_found")
    size = path.stat().st_size
    if size == 0:
        raise Unprocessable("the source file is empty", code="empty_source")
    if expected_size is not None and size != expected_size:
        raise Unprocessable({"message": "the file's size differs from content_length",
                             "content_length": expected_size, "size_bytes": size}, code="content_length_mismatch")
    probe = probe_for_client(path, limits)
    content = hash_file(path, weak_threshold_bytes)
    stat = path.stat()
    if stat.st_size != content.size_bytes:
        raise Unprocessable("the source file changed while it was read", code="source_changed")
    file = SourceFile(org_id=org_id, path=path, size_bytes=stat.st_size, mtime_ns=stat.st_mtime_ns)
    return IdentifiedSource(file=file, probe=probe, content=content, asset_id=asset_id_for(org_id, content))


def identify_request(settings: ApiSettings, org_id: str, path: Path, weak_threshold_bytes: int | None,
                     expected_size: int | None = None) -> IdentifiedSource:
    """`identify` under the settings' media limits, with the request's weak threshold or the settings'."""
    threshold = settings.weak_threshold_bytes if weak_threshold_bytes is None else weak_threshold_bytes
    return identify(org_id, path, threshold, expected_size, limits_from(settings))
