"""The ObjectStore contract, run alike against both backends: `LocalStore` on a temporary folder
and `S3Store` on a fresh bucket of moto's S3 server (reached over HTTP, as any S3)."""

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.storage import InvalidKeyError, ObjectNotFoundError, ObjectStore
from heimdex_pipeline.storage.s3 import S3Store
from tests.s3_server import S3Endpoint

# Small pages on S3, so that a listing of a handful of objects spans several ListObjectsV2 calls.
PAGE_SIZE = 2


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """An empty store of each backend."""
    if request.param == "local":
        from heimdex_pipeline.storage.local import LocalStore

        return LocalStore(tmp_path / "store")
    s3: S3Endpoint = request.getfixturevalue("s3")
    return S3Store(s3.new_bucket(), endpoint_url=s3.url, page_size=PAGE_SIZE)


def test_write_read_stat(store: ObjectStore) -> None:
    assert store.stat("a/b.txt") is None
    with pytest.raises(ObjectNotFoundError):
        store.read_bytes("a/b.txt")
    store.write_bytes("a/b.txt", b"first")
    first = store.stat("a/b.txt")
    assert first is not None and (first.key, first.size_bytes) == ("a/b.txt", 5)
    assert store.read_bytes("a/b.txt") == b"first"
    time.sleep(0.02)  # past the filesystem clock's tick: on disk the version is the mtime
    store.write_bytes("a/b.txt", b"second version")
    second = store.stat("a/b.txt")
    assert second is not None and second.size_bytes == 14 and second.version != first.version
    assert store.read_bytes("a/b.txt") == b"second version"
    store.delete("a/b.txt")
    store.delete("a/b.txt")  # nothing there: no error
    assert store.stat("a/b.txt") is None


def test_write_file_and_json(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 100)
    store.write_file("org/file.bin", source, "application/octet-stream")
    assert store.read_bytes("org/file.bin") == source.read_bytes()
    document = {"b": [1, 2], "a": "é"}
    store.write_json("org/doc.json", document)
    assert store.read_json("org/doc.json") == document
    assert store.read_bytes("org/doc.json").endswith(b"}\n")


def test_list_in_key_order_across_pages(store: ObjectStore) -> None:
    keys = ["uploads/o/b.mp4", "uploads/o/a/2.mp4", "uploads/o/a/10.mp4", "uploads/o/c d.mp4",
            "uploads/o/é.mp4", "uploads/p/x.mp4", "uploadsx/y.mp4", "uploads/o/Z.mp4"]
    for index, key in enumerate(keys):
        store.write_bytes(key, b"x" * (index + 1))
    listed = list(store.list("uploads/o/"))
    assert [item.key for item in listed] == sorted(k for k in keys if k.startswith("uploads/o/"))
    assert {item.key: item.size_bytes for item in listed}["uploads/o/b.mp4"] == 1
    assert [item.key for item in store.list("uploads/o/", start_after="uploads/o/a/2.mp4")] == [
        "uploads/o/b.mp4", "uploads/o/c d.mp4", "uploads/o/é.mp4"]
    assert [item.key for item in store.list("uploads/")][-1] == "uploads/p/x.mp4"
    assert list(store.list("nothing/")) == []
    assert all(item.version == store.stat(item.key).version for item in listed)


def test_publish_dir_replaces_the_set(store: ObjectStore) -> None:
    def publish(names: list[str], document: dict) -> None:
        with store.scratch_dir("org/thumbnails/a1/") as staged:
            assert staged.is_dir() and not any(staged.iterdir())
            for name in names:
                (staged / name).write_bytes(f"{name} of {document['run']}".encode())
            store.publish_dir(staged, "org/thumbnails/a1/", "org/sidecars/a1.vna.json", document)
        assert not staged.exists()

    store.write_bytes("org/thumbnails/a10/0001.jpg", b"a neighbour's, not under the prefix")
    publish(["0001.jpg", "0002.jpg", "0003.jpg"], {"run": 1})
    assert [item.key for item in store.list("org/thumbnails/a1/")] == [
        "org/thumbnails/a1/0001.jpg", "org/thumbnails/a1/0002.jpg", "org/thumbnails/a1/0003.jpg"]
    publish(["0001.jpg", "0004.jpg"], {"run": 2})
    assert [item.key for item in store.list("org/thumbnails/a1/")] == [
        "org/thumbnails/a1/0001.jpg", "org/thumbnails/a1/0004.jpg"]
    assert store.read_bytes("org/thumbnails/a1/0001.jpg") == b"0001.jpg of 2"
    assert store.read_json("org/sidecars/a1.vna.json") == {"run": 2}
    assert store.read_bytes("org/thumbnails/a10/0001.jpg").startswith(b"a neighbour")


def test_publish_dir_with_its_index_inside_the_folder(store: ObjectStore) -> None:
    # A storyboard: the sprite and track, and the JSON that describes them in the same folder.
    for run in (1, 2):
        with store.scratch_dir("org/storyboards/a1/") as staged:
            (staged / "storyboard.jpg").write_bytes(f"sprite {run}".encode())
            store.publish_dir(staged, "org/storyboards/a1/", "org/storyboards/a1/storyboard.json", {"run": run})
        assert [item.key for item in store.list("org/storyboards/a1/")] == [
            "org/storyboards/a1/storyboard.jpg", "org/storyboards/a1/storyboard.json"]
        assert store.read_json("org/storyboards/a1/storyboard.json") == {"run": run}
        assert store.read_bytes("org/storyboards/a1/storyboard.jpg") == f"sprite {run}".encode()


def test_scratch_dir_removed_on_error(store: ObjectStore) -> None:
    with pytest.raises(RuntimeError), store.scratch_dir("org/thumbnails/a1/") as staged:
        (staged / "0001.jpg").write_bytes(b"x")
        raise RuntimeError("extraction failed")
    assert not staged.exists()


def test_key_of_round_trips_and_refuses(store: ObjectStore) -> None:
    for key in ("uploads/org-a/x.mp4", "uploads/org-a/with space/é.mp4", "schemas/sidecar.schema.json"):
        assert store.key_of(store.uri(key)) == key
    good = store.uri("uploads/org-a/x.mp4")
    scheme = good.split("://", 1)[0]
    refused = [
        good.replace("org-a/x.mp4", "org-a/../../etc/passwd"),
        good.replace("x.mp4", "x\x00.mp4"),
        good.replace("x.mp4", "x\n.mp4"),
        good.replace("x.mp4", "x\\..\\y.mp4"),
        good.replace(f"{scheme}://", "http://"),
        "https://example.com/uploads/org-a/x.mp4",
        "file:///etc/passwd",
        "uploads/org-a/x.mp4",
        "",
    ]
    if good.startswith("file:///"):
        refused += [good.replace("file:///", "file://evil.example/"), good + "?x=1", good + "#frag"]
    if isinstance(store, S3Store):
        # A key is literal on S3 (a path on disk normalises these to the same file).
        refused += [good.replace("org-a/x.mp4", "org-a/./x.mp4"), good.replace("org-a/x.mp4", "org-a//x.mp4"),
                    "s3://other-bucket/uploads/org-a/x.mp4", f"s3://{store.bucket}x/uploads/org-a/x.mp4",
                    f"S3://{store.bucket}/uploads/org-a/x.mp4", f"s3://{store.bucket}"]
    for uri in refused:
        with pytest.raises(InvalidKeyError):
            store.key_of(uri)
    for key in ("../x", "/abs", "a/../b", "a\x01b", "", "a//b"):
        with pytest.raises(InvalidKeyError):
            store.uri(key)
        with pytest.raises(InvalidKeyError):
            store.write_bytes(key, b"x")


def test_iter_bytes_ranges(store: ObjectStore) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    store.write_bytes("org/blob.bin", data)

    def read(*args: int, **kwargs: int) -> bytes:
        return b"".join(store.iter_bytes("org/blob.bin", *args, **kwargs))

    assert read() == data
    assert read(chunk_size=1000) == data
    assert [len(chunk) for chunk in store.iter_bytes("org/blob.bin", chunk_size=4096)] == [4096, 4096, 2048]
    assert read(100) == data[100:]
    assert read(100, 50) == data[100:150]
    assert read(10_000, 10_000) == data[10_000:]
    assert read(5, 0) == b""
    assert read(len(data)) == b""
    assert read(len(data) + 10) == b""
    with pytest.raises(ObjectNotFoundError):
        read_missing = store.iter_bytes("org/missing.bin")
        next(read_missing)


def test_media_input_is_readable_by_ffprobe(store: ObjectStore, clips: Callable) -> None:
    clip, _ = clips((1.0,))
    store.write_file("uploads/org-a/clip.mp4", clip, "video/mp4")
    with store.media_input("uploads/org-a/clip.mp4") as source:
        probe = probe_video(source)
    assert probe["width"] == 320 and 0.9 < probe["duration_s"] < 1.1
    if isinstance(source, Path) and isinstance(store, S3Store):
        assert not source.exists(), "the scratch copy outlives its context"
    if isinstance(store, S3Store):  # on disk the media tools find the file missing themselves
        with pytest.raises(ObjectNotFoundError), store.media_input("uploads/org-a/missing.mp4"):
            pass


def test_deletions_of_one_prefix_racing_each_other_all_succeed(store: ObjectStore) -> None:
    # Two or three DELETEs of one video remove its folders at once: each must finish without an
    # error whichever removes a file or a folder first. One round on disk fails in about one of
    # three on a store that checks a folder, then walks it (the other removed it in between);
    # 30 rounds of 3 made every run of the old LocalStore fail (6 of 6), in about a second.
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    rounds = 30 if store.backend == "local" else 3
    for round_ in range(rounds):
        prefix = f"org-a/thumbnails/v_{round_}/"
        for index in range(6):
            store.write_bytes(f"{prefix}{index // 3}/{index:04d}.jpg", b"x")
        barrier = Barrier(3)

        def delete(_: int) -> int:
            barrier.wait()
            return store.delete_prefix(prefix)

        with ThreadPoolExecutor(3) as pool:
            removed = list(pool.map(delete, range(3)))
        assert 6 <= sum(removed) <= 18, removed
        assert list(store.list(prefix)) == []


def test_served_file_is_a_file_of_the_store_or_nothing(store: ObjectStore) -> None:
    store.write_bytes("org-a/thumbnails/v_1/0000.jpg", b"\xff\xd8\xff")
    if store.presigned_get("org-a/thumbnails/v_1/0000.jpg", 60) is None:
        # A store without URLs of its own: the API streams this very file.
        served = store.served_file("org-a/thumbnails/v_1/0000.jpg")
        assert served.path.read_bytes() == b"\xff\xd8\xff" and served.stat.st_size == 3
    else:
        # The bucket's objects are fetched from it: the API serves none of them.
        with pytest.raises(ObjectNotFoundError):
            store.served_file("org-a/thumbnails/v_1/0000.jpg")
    for missing in ("org-a/thumbnails/v_1/0001.jpg", "org-a/thumbnails/v_1", "org-b/thumbnails/v_1/0000.jpg"):
        with pytest.raises(ObjectNotFoundError):
            store.served_file(missing)
    with pytest.raises(InvalidKeyError):
        store.served_file("org-a/../org-b/x.jpg")
