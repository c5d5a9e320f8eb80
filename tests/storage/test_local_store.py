"""The local backend of the storage interface: keys, URIs, listing, atomic writes, the folder swap."""

import os
import time
from functools import partial
from pathlib import Path

import pytest

from heimdex_pipeline.media.fingerprint import hash_content
from heimdex_pipeline.storage import (
    InvalidKeyError,
    LocalStore,
    ObjectNotFoundError,
    StorageUnavailableError,
    StoredObject,
)
from heimdex_pipeline.uploads.bucket import review_bucket, scan_bucket
from tests.catalogue import hash_file


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    (tmp_path / "root").mkdir()
    return LocalStore(tmp_path / "root")


def _put(store: LocalStore, key: str, data: bytes = b"x") -> None:
    path = store.root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.mark.parametrize("key", ["uploads/org-a/clip.mp4", "uploads/org-a/up_1/holiday movie (1).mp4",
                                 "org-a/thumbnails/v_1/0000.jpg", "uploads/org-a/été/100%.mp4"])
def test_a_key_and_its_uri_name_each_other(store: LocalStore, key: str) -> None:
    uri = store.uri(key)
    assert uri.startswith("file:///") and store.key_of(uri) == key
    assert store.key_of(uri.replace("file:///", "file://localhost/", 1)) == key


def test_key_of_refuses_what_names_no_object_of_the_store(store: LocalStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"x")
    (store.root / "uploads" / "org-a").mkdir(parents=True)
    os.symlink(outside, store.root / "uploads" / "org-a" / "link.mp4")
    inside = store.uri("uploads/org-a/clip.mp4")
    refused = [
        "http://example.com/clip.mp4", "s3://bucket/uploads/org-a/clip.mp4", "concat:" + inside, "file:clip.mp4",
        inside.replace("file:///", "file://otherhost/", 1), inside + "?x=1", inside + "#frag",
        inside.replace("clip.mp4", "../../../outside.mp4"), inside.replace("clip.mp4", "%2e%2e/%2E%2E/x.mp4"),
        inside + "%00.txt", outside.as_uri(), "file:///etc/passwd", store.root.as_uri(),
        store.uri("uploads/org-a/link.mp4"), inside.replace("clip.mp4", "a" * 256),
    ]
    for uri in refused:
        with pytest.raises(InvalidKeyError) as caught:
            store.key_of(uri)
        assert str(tmp_path) not in str(caught.value), uri  # a message never tells where the store is


@pytest.mark.parametrize("key", ["", "/etc/passwd", "a/../b", "a//b", "./a", "a\\b", "a/\x00b", "a/\nb"])
def test_bad_keys_are_refused_by_every_method(store: LocalStore, key: str) -> None:
    for call in (store.stat, store.read_bytes, store.uri, store.delete, partial(store.write_bytes, data=b"x")):
        with pytest.raises(InvalidKeyError):
            call(key)


def test_a_symlinked_folder_does_not_lead_out(store: LocalStore, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "secret.json").write_text("{}")
    os.symlink(tmp_path / "elsewhere", store.root / "org-a")
    with pytest.raises(InvalidKeyError):
        store.read_bytes("org-a/secret.json")
    with pytest.raises(InvalidKeyError):
        store.write_json("org-a/sidecars/x.json", {})
    assert list(store.list("")) == []
    assert sorted(p.name for p in (tmp_path / "elsewhere").iterdir()) == ["secret.json"]


def test_list_is_in_key_order_and_skips_what_is_no_object(store: LocalStore, tmp_path: Path) -> None:
    for key in ("uploads/a/b.mp4", "uploads/a-c.mp4", "uploads/a/a.mp4", "uploads/b.mp4", "other/x.mp4"):
        _put(store, key)
    os.symlink(tmp_path, store.root / "uploads" / "a" / "link-dir")
    os.symlink(store.root / "uploads" / "b.mp4", store.root / "uploads" / "link.mp4")
    os.mkfifo(store.root / "uploads" / "fifo")
    (store.root / "uploads" / "empty-dir").mkdir()
    # The store's own writes in progress are no objects either.
    _put(store, "uploads/a/.b.mp4.k2j3.tmp")
    keys = [o.key for o in store.list("uploads/")]
    assert keys == ["uploads/a-c.mp4", "uploads/a/a.mp4", "uploads/a/b.mp4", "uploads/b.mp4"]
    assert keys == sorted(keys, key=lambda k: k.encode())  # S3's order: UTF-8 bytes
    assert [o.key for o in store.list("uploads/a/")] == ["uploads/a/a.mp4", "uploads/a/b.mp4"]
    assert [o.key for o in store.list("uploads/a")] == keys[:3]
    assert [o.key for o in store.list("uploads/", start_after="uploads/a/a.mp4")] == keys[2:]
    assert [o.key for o in store.list("uploads/", start_after="uploads/a/")] == keys[1:]
    assert list(store.list("missing/")) == []


def test_stat_version_and_reads(store: LocalStore) -> None:
    _put(store, "org-a/probes/v_1.probe.json", b"0123456789")
    found = store.stat("org-a/probes/v_1.probe.json")
    written = (store.root / "org-a/probes/v_1.probe.json").stat()
    assert found == StoredObject("org-a/probes/v_1.probe.json", 10, str(written.st_mtime_ns), written.st_mtime)
    assert store.stat("org-a/probes") is None and store.stat("org-a/missing.json") is None
    assert b"".join(store.iter_bytes(found.key, 2, 5, chunk_size=2)) == b"23456"
    assert b"".join(store.iter_bytes(found.key, 8)) == b"89"
    with pytest.raises(ObjectNotFoundError):
        store.read_bytes("org-a/missing.json")
    with pytest.raises(ObjectNotFoundError):
        list(store.iter_bytes("org-a/missing.json"))
    # A symlink loop, a folder and a file under a file are no objects either.
    os.symlink(store.root / "org-a" / "loop-b", store.root / "org-a" / "loop-a")
    os.symlink(store.root / "org-a" / "loop-a", store.root / "org-a" / "loop-b")
    for key in ("org-a/loop-a", "org-a/probes", "org-a/probes/v_1.probe.json/x"):
        assert store.stat(key) is None
        with pytest.raises(ObjectNotFoundError):
            store.read_bytes(key)


def test_writes_replace_whole_and_leave_nothing_behind(store: LocalStore, tmp_path: Path) -> None:
    store.write_json("org-a/sidecars/v_1.vna.json", {"b": 1, "a": [1]})
    assert store.read_bytes("org-a/sidecars/v_1.vna.json") == b'{\n  "a": [\n    1\n  ],\n  "b": 1\n}\n'
    source = tmp_path / "source.bin"
    source.write_bytes(b"abc" * 1000)
    store.write_file("org-a/sidecars/v_1.vna.json", source)
    assert store.read_bytes("org-a/sidecars/v_1.vna.json") == b"abc" * 1000
    store.delete("org-a/sidecars/v_1.vna.json")
    store.delete("org-a/sidecars/v_1.vna.json")
    assert store.stat("org-a/sidecars/v_1.vna.json") is None
    assert [p.name for p in store.root.rglob(".*")] == []


def test_publish_dir_swaps_the_set_and_its_index(store: LocalStore, tmp_path: Path) -> None:
    prefix, index = "org-a/thumbnails/v_1/", "org-a/sidecars/v_1.vna.json"
    for names in (["0000.jpg", "0001.jpg"], ["0000.jpg"]):
        with store.scratch_dir(prefix) as staged:
            assert staged.parent == store.root / "org-a" / "thumbnails" and staged.name.startswith(".")
            for name in names:
                (staged / name).write_bytes(name.encode())
            store.publish_dir(staged, prefix, index, {"thumbnails": names})
        assert [o.key.rpartition("/")[2] for o in store.list(prefix)] == names
        assert store.read_json(index) == {"thumbnails": names}
    # A folder made elsewhere (another filesystem, maybe) is published too.
    elsewhere = tmp_path / "made-elsewhere"
    elsewhere.mkdir()
    (elsewhere / "0005.jpg").write_bytes(b"5")
    store.publish_dir(elsewhere, prefix, index, {"thumbnails": ["0005.jpg"]})
    assert [o.key for o in store.list(prefix)] == [prefix + "0005.jpg"]
    assert [p.name for p in store.root.rglob(".*")] == []


def test_check_wants_a_writable_folder(tmp_path: Path) -> None:
    LocalStore(tmp_path / "made" / "on-demand").check()
    assert (tmp_path / "made" / "on-demand").is_dir()
    (tmp_path / "a-file").write_bytes(b"")
    with pytest.raises(StorageUnavailableError) as caught:
        LocalStore(tmp_path / "a-file").check()
    assert caught.value.code == "storage_unavailable" and str(tmp_path) not in str(caught.value)


@pytest.mark.parametrize("threshold", [1_000_000_000, 1000])
def test_hashing_through_the_store_is_hashing_the_file(store: LocalStore, threshold: int) -> None:
    data = os.urandom(9 * 1024 * 1024 + 7)
    _put(store, "uploads/org-a/big.bin", data)
    found = store.stat("uploads/org-a/big.bin")
    streamed = hash_content(found.size_bytes, partial(store.iter_bytes, found.key), threshold)
    assert streamed == hash_file(store.root / found.key, threshold)


def test_the_bucket_review_takes_whole_objects_at_first_look(store: LocalStore) -> None:
    for key in ("uploads/org-a/a.mp4", "uploads/org-a/up_1/b.mp4", "uploads/org-a/.hidden.mp4",
                "uploads/org-a/c.mp4.part", "uploads/Uploads/d.mp4", "uploads/org-a/known.mp4"):
        _put(store, key)
    _put(store, "uploads/org-a/empty.mp4", b"")
    known = store.stat("uploads/org-a/known.mp4")
    review = review_bucket(scan_bucket(store), {known.key: (known.size_bytes, known.version)},
                           {"uploads/org-a/up_1/"}, set(), limit=10, written_before=None)
    assert [s.key for s in review.settled] == ["uploads/org-a/a.mp4"] and review.unsettled == []
    # Where objects may still be growing, the same look only remembers them.
    review = review_bucket(scan_bucket(store), {}, set(), set(), limit=10, written_before=time.time() - 3600)
    assert review.settled == [] and len(review.unsettled) == 3


def test_the_scan_leaves_out_known_objects_as_they_were_hashed(store: LocalStore) -> None:
    for key in ("uploads/org-a/same.mp4", "uploads/org-a/changed.mp4", "uploads/org-a/new.mp4"):
        _put(store, key)
    known = {found.key: (found.size_bytes, found.version) for found in store.list("uploads/")
             if found.key != "uploads/org-a/new.mp4"}
    _put(store, "uploads/org-a/changed.mp4", b"written to since it was hashed")
    assert [source.key for source in scan_bucket(store, known)] == ["uploads/org-a/changed.mp4", "uploads/org-a/new.mp4"]


def test_a_file_on_disk_is_taken_once_quiet_or_unchanged_since_the_last_look(store: LocalStore) -> None:
    _put(store, "uploads/org-a/old.mp4")
    _put(store, "uploads/org-a/new.mp4")
    old = store.root / "uploads/org-a/old.mp4"
    os.utime(old, (old.stat().st_atime, time.time() - 10))
    review = review_bucket(scan_bucket(store), {}, set(), set(), limit=10, written_before=time.time() - 3)
    assert [s.key for s in review.settled] == ["uploads/org-a/old.mp4"] and len(review.unsettled) == 1
    # Written a moment ago, but the same on the next look: a writer whose clock is ahead of ours.
    again = review_bucket(scan_bucket(store), {}, set(), set(review.unsettled), limit=10,
                          written_before=time.time() - 3600)
    assert [s.key for s in again.settled] == ["uploads/org-a/new.mp4"]
    # Written to since the last look: remembered again, not taken.
    _put(store, "uploads/org-a/new.mp4", b"grown")
    grown = review_bucket(scan_bucket(store), {}, set(), set(review.unsettled), limit=10,
                          written_before=time.time() - 3600)
    assert grown.settled == [] and len(grown.unsettled) == 2


def test_a_publish_racing_a_deletion_of_its_folder_never_fails(store: LocalStore) -> None:
    # The swap moved the current folder aside only if it existed, and a deletion could remove it in
    # between: FileNotFoundError. The window is a few microseconds: 3,000 publishes racing a
    # deletion loop made the old code fail in 3 runs of 3 (each with several failed publishes); it
    # takes about 6 s of CPU, which a busy machine stretches.
    import threading

    prefix, errors, stop = "org-a/thumbnails/v_1/", [], threading.Event()

    def delete_again_and_again() -> None:
        while not stop.is_set():
            store.delete_prefix(prefix)

    deleter = threading.Thread(target=delete_again_and_again)
    deleter.start()
    try:
        for round_ in range(3000):
            with store.scratch_dir(prefix) as staged:
                (staged / "0000.jpg").write_bytes(b"x")
                try:
                    store.publish_dir(staged, prefix, "org-a/sidecars/v_1.vna.json", {"round": round_})
                except OSError as exc:
                    errors.append(exc)
    finally:
        stop.set()
        deleter.join()
    assert errors == []
    assert not [p for p in (store.root / "org-a" / "thumbnails").iterdir() if p.name.startswith(".")]


def test_served_file_follows_no_link(store: LocalStore, tmp_path: Path) -> None:
    # The API streams `served_file`: a link planted on the server's disk, to a file out of the root,
    # to another object of the store, or as a folder on the way, is no file of the key.
    _put(store, "uploads/org-a/up_1/clip.mp4", b"video")
    _put(store, "org-a/thumbnails/v_1/0000.jpg", b"jpeg")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "0000.jpg").write_bytes(b"not the store's")
    links = {"org-a/thumbnails/v_1/0001.jpg": outside / "0000.jpg",
             "org-a/thumbnails/v_1/0002.jpg": store.root / "uploads/org-a/up_1/clip.mp4",
             "org-a/thumbnails/v_2": outside, "org-a/thumbnails/v_3": store.root / "org-a/thumbnails/v_1"}
    for key, target in links.items():
        (store.root / key).symlink_to(target)
    assert store.served_file("org-a/thumbnails/v_1/0000.jpg").path.read_bytes() == b"jpeg"
    for key in ("org-a/thumbnails/v_1/0001.jpg", "org-a/thumbnails/v_1/0002.jpg", "org-a/thumbnails/v_2/0000.jpg",
                "org-a/thumbnails/v_3/0000.jpg"):
        with pytest.raises(ObjectNotFoundError):
            store.served_file(key)
