"""Content identity: the hash of a source file and the asset id derived from it.

A file of at most `weak_threshold_bytes` gets a strong hash, the SHA-256 of every byte.
A larger one gets a weak fingerprint, the SHA-256 of its size and of three 4 MiB samples
(start, middle, end): cheap on huge files, and equal for equal bytes, but two different
files that agree on size and samples would share it.
"""

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

SAMPLE_BYTES = 4 * 1024 * 1024
ASSET_ID_PATTERN = re.compile(r"^v_[0-9a-f]{32}$")

# Reads a range of the content: `read(start, length)` yields its bytes in chunks, up to the
# end when `length` is None (`ObjectStore.iter_bytes` of one key is one).
ByteReader = Callable[[int, int | None], Iterable[bytes]]


@dataclass(frozen=True)
class ContentHash:
    """A file's hash, how strong it is, and the size it was taken at."""

    value: str
    quality: Literal["strong", "weak"]
    size_bytes: int


def hash_content(size: int, read: ByteReader, weak_threshold_bytes: int) -> ContentHash:
    """The strong or weak hash of content of `size` bytes, as the contract defines them.

    A strong hash reads every byte once, streamed, and counts them: its `size_bytes` is what was
    read, so content that grew or shrank meanwhile shows. A weak one reads only its three samples.
    """
    digest = hashlib.sha256()
    if size <= weak_threshold_bytes:
        read_bytes = 0
        for chunk in read(0, None):
            digest.update(chunk)
            read_bytes += len(chunk)
        return ContentHash(f"sha256:{digest.hexdigest()}", "strong", read_bytes)
    digest.update(str(size).encode())
    for offset in (0, max(0, size // 2 - SAMPLE_BYTES // 2), max(0, size - SAMPLE_BYTES)):
        for chunk in read(offset, SAMPLE_BYTES):
            digest.update(chunk)
    return ContentHash(f"weak-sha256:{digest.hexdigest()}", "weak", size)


def asset_id_for(org_id: str, content: ContentHash) -> str:
    """The asset id: the same bytes in one org always map to it; two orgs never share one."""
    scoped = hashlib.sha256(f"{org_id}\x00{content.value}".encode()).hexdigest()
    return f"v_{scoped[:32]}"
