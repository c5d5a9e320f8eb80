"""The upload bucket: which files are there, and which of them are new, settled and unknown.

A file is taken once its size and modification time are the same on two consecutive
looks, so a copy still being written is left alone until it is complete.
"""

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from heimdex_pipeline.catalog.repository import SourceFile
from heimdex_pipeline.storage import is_org_id

# Names that download tools and copy programs use while a file is still being written.
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download", ".filepart")


def _is_candidate(name: str) -> bool:
    return not name.startswith(".") and not name.lower().endswith(PARTIAL_SUFFIXES)


def _walk(directory: str) -> Iterator[os.DirEntry[str]]:
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    for entry in entries:
        if not _is_candidate(entry.name):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path)
        elif entry.is_file(follow_symlinks=False):
            yield entry


def scan_bucket(uploads_root: Path) -> Iterator[SourceFile]:
    """Every regular file under `<uploads>/<org_id>/`, symlinks and hidden or partial files left out."""
    try:
        orgs = [e for e in os.scandir(uploads_root) if e.is_dir(follow_symlinks=False) and is_org_id(e.name)]
    except FileNotFoundError:
        return
    for org in orgs:
        for entry in _walk(org.path):
            try:
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield SourceFile(org_id=org.name, path=Path(entry.path), size_bytes=stat.st_size, mtime_ns=stat.st_mtime_ns)


def observation(source: SourceFile) -> str:
    """A short digest of a file's path, size and mtime: equal on two looks means it is settled."""
    key = f"{source.path}\x00{source.size_bytes}\x00{source.mtime_ns}".encode()
    return hashlib.blake2b(key, digest_size=8).hexdigest()


@dataclass
class BucketReview:
    """What one look at the bucket found: files ready to identify, and files to look at again."""

    settled: list[SourceFile] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)


def review_bucket(files: Iterator[SourceFile], known: dict[str, tuple[int, int]], reserved_dirs: set[str],
                  previous: set[str], limit: int) -> BucketReview:
    """Sort the bucket's files: skip known and API-reserved ones, take at most `limit` settled ones.

    `previous` holds the observations of the last look; a file whose observation is in it has
    not changed since, and is settled. Everything else new is remembered for the next look.
    """
    review = BucketReview()
    for source in files:
        if source.size_bytes == 0 or known.get(str(source.path)) == (source.size_bytes, source.mtime_ns):
            continue
        if str(source.path.parent) in reserved_dirs:
            continue
        seen = observation(source)
        if seen in previous and len(review.settled) < limit:
            review.settled.append(source)
        else:
            review.unsettled.append(seen)
    return review
