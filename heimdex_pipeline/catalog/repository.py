"""Reads and writes of the catalog, shared by the sensor, the assets and the API."""

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from heimdex_pipeline.catalog.models import Source, Upload, Video
from heimdex_pipeline.media.fingerprint import ContentHash


@dataclass(frozen=True)
class SourceFile:
    """A file in the bucket as seen on disk: whose it is, where, how big, when last written."""

    org_id: str
    path: Path
    size_bytes: int
    mtime_ns: int


def get_video(session: Session, asset_id: str) -> Video | None:
    """The catalogued video with this asset id, if any."""
    return session.get(Video, asset_id)


def register_source(session: Session, source: SourceFile, asset_id: str, content: ContentHash,
                    origin: str) -> tuple[Video, bool]:
    """Record that `source` holds the video `asset_id`; return the video and whether it is new.

    The first file seen with some content becomes the video's source; later copies only
    get a `sources` row, so the sensor knows them without hashing them again.
    """
    created = False
    video = session.get(Video, asset_id)
    if video is None:
        video = Video(asset_id=asset_id, org_id=source.org_id, source_path=str(source.path),
                      source_name=source.path.name, size_bytes=content.size_bytes, hash=content.value,
                      hash_quality=content.quality, origin=origin)
        try:
            # A savepoint: a concurrent writer of the same content makes this a no-op, not an error.
            with session.begin_nested():
                session.add(video)
            created = True
        except IntegrityError:
            video = session.get(Video, asset_id)
            assert video is not None
    elif not Path(video.source_path).is_file():
        # The first copy is gone; point the video at the one that is here now.
        video.source_path, video.source_name = str(source.path), source.path.name
    session.merge(Source(path=str(source.path), org_id=source.org_id, size_bytes=source.size_bytes,
                         mtime_ns=source.mtime_ns, asset_id=asset_id))
    return video, created


def known_sources(session: Session) -> dict[str, tuple[int, int]]:
    """Every identified bucket file: path to (size, mtime) when it was hashed."""
    rows = session.execute(select(Source.path, Source.size_bytes, Source.mtime_ns))
    return {path: (size, mtime) for path, size, mtime in rows}


def video_ids(session: Session, origin: str) -> set[str]:
    """The asset ids of the videos first catalogued by `origin` ("sensor" or "api")."""
    return set(session.scalars(select(Video.asset_id).where(Video.origin == origin)))


def reserved_upload_dirs(session: Session) -> set[str]:
    """Folders of uploads initiated through the API and not committed yet: the API owns them."""
    return set(session.scalars(select(Upload.directory).where(Upload.status == "pending")))
