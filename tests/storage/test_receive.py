"""UploadReceiver on disk and on S3 (moto's server): appends across requests, drops, completion, termination."""

import os
from uuid import uuid4
from collections.abc import Callable
from pathlib import Path

import pytest

from heimdex_pipeline.storage.receive import (
    S3_MIN_PART_BYTES,
    LocalReceiver,
    OffsetMismatchError,
    S3Receiver,
    UploadReceiver,
)
from heimdex_pipeline.storage.errors import StorageUnavailableError
from heimdex_pipeline.storage.s3 import S3Store
from tests.s3_server import S3Endpoint

KEY = "uploads/org-a/up_0123/clip.mp4"
MiB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def make_receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[int], UploadReceiver]:
    """Receivers of KEY on one backend, and a way to list every object or file the backend holds."""
    if request.param == "local":
        request.node.listing = lambda: sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
        request.node.read = lambda: (tmp_path / KEY).read_bytes()
        return lambda length: LocalReceiver(tmp_path, KEY, length)
    s3: S3Endpoint = request.getfixturevalue("s3")
    bucket, client = s3.new_bucket(), s3.client()

    def listing() -> list[str]:
        return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))

    request.node.listing = listing
    request.node.read = lambda: client.get_object(Bucket=bucket, Key=f"pre/{KEY}")["Body"].read()
    request.node.multipart = lambda: client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return lambda length: S3Receiver(client, bucket, lambda key: f"pre/{key}", KEY, length,
                                     part_bytes=S3_MIN_PART_BYTES)


def test_bytes_arrive_over_several_appends_and_appear_whole(make_receiver, request: pytest.FixtureRequest) -> None:
    data = os.urandom(12 * MiB + 123)
    receiver = make_receiver(len(data))
    assert (receiver.offset(), receiver.is_complete()) == (0, False)
    first = receiver.append(0)
    first.write(data[:3 * MiB])
    assert first.save() == 3 * MiB
    # A fresh receiver (another request) sees what was kept.
    receiver = make_receiver(len(data))
    assert receiver.offset() == 3 * MiB
    with pytest.raises(OffsetMismatchError) as wrong:
        receiver.append(MiB)
    assert wrong.value.offset == 3 * MiB
    dropped = receiver.append(3 * MiB)
    dropped.write(data[3 * MiB:10 * MiB])  # a part goes to S3, then the request's checksum fails
    dropped.drop()
    assert receiver.offset() == 3 * MiB
    second = receiver.append(3 * MiB)
    second.write(data[3 * MiB:9 * MiB])
    assert second.save() == 9 * MiB
    assert not receiver.is_complete()
    assert all("/." in name for name in request.node.listing()), "nothing incomplete under a visible name"
    last = receiver.append(9 * MiB)
    with pytest.raises(ValueError):
        last.write(data[9 * MiB:] + b"x")
    last.write(data[9 * MiB:])
    assert last.save() == len(data)
    assert receiver.is_complete() and receiver.offset() == len(data)
    assert request.node.read() == data
    assert [name.rsplit("/", 1)[1] for name in request.node.listing()] == ["clip.mp4"], "no hidden state left"
    with pytest.raises(OffsetMismatchError):
        receiver.append(len(data))
    if hasattr(request.node, "multipart"):
        assert request.node.multipart() == []


def test_a_small_file_and_termination(make_receiver, request: pytest.FixtureRequest) -> None:
    data = os.urandom(1000)
    receiver = make_receiver(len(data))
    append = receiver.append(0)
    append.write(data[:400])
    append.save()
    receiver.terminate()
    assert receiver.offset() == 0 and request.node.listing() == []
    restart = receiver.append(0, restart=True)
    restart.write(data)
    restart.save()
    assert request.node.read() == data
    empty = make_receiver(0)
    empty.terminate()
    empty.append(0).save()
    assert empty.is_complete() and request.node.read() == b""


def test_s3_errors_are_storage_errors(s3: S3Endpoint) -> None:
    store = S3Store(bucket=f"heimdex-missing-{uuid4().hex[:8]}", endpoint_url=s3.url)
    with pytest.raises(StorageUnavailableError) as missing:
        store.receiver(KEY, 10).offset()
    assert missing.value.code == "storage_bucket_missing"


def test_local_appends_at_any_offset_bypass_the_page_cache_where_they_can(tmp_path: Path) -> None:
    """Appends starting and ending off the 4 KiB grid, in chunks of odd sizes: the bytes land in
    order (direct writes for the aligned blocks, the page cache for the head and the tail)."""
    data = os.urandom(13 * MiB + 4321)
    cuts = [0, 1, 4095, 4096 + 7, 5 * MiB + 3, 9 * MiB, 13 * MiB + 1]
    for start, end in zip(cuts, cuts[1:]):
        append = LocalReceiver(tmp_path, KEY, len(data)).append(start)
        if start == cuts[2]:
            # Where the filesystem takes O_DIRECT (ext4, xfs, btrfs: not tmpfs), it is used.
            try:
                os.close(os.open(tmp_path / "probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT))
            except OSError:
                pass
            else:
                assert append.direct is not None
            (tmp_path / "probe").unlink(missing_ok=True)
        for at in range(start, end, 300_001):  # chunks of odd sizes, as a socket gives them
            append.write(data[at:min(at + 300_001, end)])
        assert append.save() == end
    dropped = LocalReceiver(tmp_path, KEY, len(data)).append(cuts[-1])
    dropped.write(data[cuts[-1]:cuts[-1] + 6 * MiB])  # a block went straight to the disk, then the checksum failed
    dropped.drop()
    receiver = LocalReceiver(tmp_path, KEY, len(data))
    assert receiver.offset() == cuts[-1]
    last = receiver.append(cuts[-1])
    last.write(data[cuts[-1]:])
    assert last.save() == len(data)
    assert (tmp_path / KEY).read_bytes() == data
