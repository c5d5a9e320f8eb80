"""The upload bucket: which objects are there, and which of them are new, settled and unknown.

On a store whose objects may be listed while still being written (a folder on disk), an object
is taken once nothing has written to it for a quiet period (HEIMDEX_SENSOR_SETTLE_S) by its
modification time, or once its size and version are the same on two consecutive looks (which
also covers a writer whose clock is ahead of ours), so a copy still in progress is left alone
until it is complete. A bucket shows only whole objects: taken at once.
"""

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from heimdex_pipeline.catalog.repository import SourceObject
from heimdex_pipeline.storage import ObjectStore
from heimdex_pipeline.storage.layout import UPLOADS, key_problem, upload_org

# Names that download tools and copy programs use while a file is still being written.
PARTIAL_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".download", ".filepart")


def _is_candidate(key: str) -> bool:
    """Whether a key may be ingested: a valid key, no segment hidden or partial."""
    return key_problem(key) is None and not any(
        segment.startswith(".") or segment.lower().endswith(PARTIAL_SUFFIXES) for segment in key.split("/"))


def scan_bucket(store: ObjectStore, known: Mapping[str, tuple[int, str]] | None = None) -> Iterator[SourceObject]:
    """Every candidate object under `uploads/<org_id>/` of a valid org, in key order, as the store lists them.

    Objects `known` as they are now (key to size and version, as `known_sources` answers) are left
    out before their key is checked: they were checked when first taken, they are most of a large
    bucket, and the checks cost more than listing them (docs/benchmarks.md, "Partitions at scale").
    """
    known = known or {}
    for stored in store.list(f"{UPLOADS}/"):
        if known.get(stored.key) == (stored.size_bytes, stored.version):
            continue
        org_id = upload_org(stored.key)
        if org_id is not None and _is_candidate(stored.key):
            yield SourceObject.of(org_id, stored)


def observation(source: SourceObject) -> str:
    """A short digest of an object's key, size and version: equal on two looks means it is settled."""
    seen = f"{source.key}\x00{source.size_bytes}\x00{source.version}".encode()
    return hashlib.blake2b(seen, digest_size=8).hexdigest()


def _upload_prefix_of(key: str) -> str:
    """The prefix an API upload holding `key` would have reserved: `uploads/<org>/<upload_id>/`."""
    return "/".join(key.split("/")[:3]) + "/"


@dataclass
class BucketReview:
    """What one look at the bucket found: objects ready to identify, and objects to look at again."""

    settled: list[SourceObject] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)
    # Whether an object must settle before it is taken (not ObjectStore.objects_appear_whole).
    settle: bool = True

    def defer(self, source: SourceObject) -> None:
        """Leave an object for the next look; it is remembered only where it must settle."""
        if self.settle:
            self.unsettled.append(observation(source))


def review_bucket(objects: Iterator[SourceObject], known: dict[str, tuple[int, str]], reserved_prefixes: set[str],
                  previous: set[str], limit: int, written_before: float | None) -> BucketReview:
    """Sort the bucket's objects: skip empty, known and API-reserved ones, take at most `limit` settled ones.

    With `written_before` (POSIX seconds), an object last written before then is settled, and so
    is one whose observation is in `previous` (the last look's): it has not changed since.
    Everything else new is remembered for the next look. Without it (objects appear whole),
    every new object is settled at once, and no digest is ever kept.
    """
    settle = written_before is not None
    review = BucketReview(settle=settle)
    for source in objects:
        if source.size_bytes == 0 or known.get(source.key) == (source.size_bytes, source.version):
            continue
        if _upload_prefix_of(source.key) in reserved_prefixes:
            continue
        if len(review.settled) < limit and (
                not settle or source.modified_at < written_before or observation(source) in previous):
            review.settled.append(source)
        else:
            review.defer(source)
    return review
