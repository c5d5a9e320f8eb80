"""What only `S3Store` does: presigned URLs, the bucket's prefix, odd keys others put in the
bucket, and the errors of a missing bucket, wrong credentials and a dead endpoint."""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from moto.core.authorization import enable_iam_authentication
from moto.server import ThreadedMotoServer

from heimdex_pipeline.core.settings import PipelineSettings
from heimdex_pipeline.storage import StorageUnavailableError, store_from_settings
from heimdex_pipeline.storage.s3 import SCRATCH_PREFIX, S3Store
from tests.dagster_home import free_port
from tests.s3_server import S3Endpoint


@pytest.fixture
def store(s3: S3Endpoint) -> S3Store:
    return S3Store(s3.new_bucket(), endpoint_url=s3.url, page_size=2)


def test_from_settings(s3: S3Endpoint) -> None:
    bucket = s3.new_bucket()
    store = store_from_settings(PipelineSettings(storage="s3", s3_bucket=bucket, s3_endpoint_url=s3.url,
                                                 s3_prefix="/team/heimdex/"))
    assert isinstance(store, S3Store) and store.backend == "s3" and store.objects_appear_whole
    assert store.client.meta.config.s3["addressing_style"] == "path"
    store.write_bytes("uploads/o/x.mp4", b"x")
    assert store.uri("uploads/o/x.mp4") == f"s3://{bucket}/team/heimdex/uploads/o/x.mp4"
    assert store.full_key("uploads/o/x.mp4") == "team/heimdex/uploads/o/x.mp4"
    assert [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"]] == [
        "team/heimdex/uploads/o/x.mp4"]
    with pytest.raises(ValueError, match="HEIMDEX_S3_BUCKET"):
        S3Store.from_settings(PipelineSettings(storage="s3", s3_bucket=None))
    with pytest.raises(ValueError, match="HEIMDEX_S3_PREFIX"):
        S3Store(bucket, endpoint_url=s3.url, prefix="a/../b")


def test_prefix_bounds_the_store(s3: S3Endpoint) -> None:
    bucket = s3.new_bucket()
    store = S3Store(bucket, endpoint_url=s3.url, prefix="tenant")
    s3.client().put_object(Bucket=bucket, Key="other/uploads/o/x.mp4", Body=b"x")
    s3.client().put_object(Bucket=bucket, Key="tenantx/uploads/o/y.mp4", Body=b"y")
    store.write_bytes("uploads/o/z.mp4", b"z")
    assert [item.key for item in store.list("")] == ["uploads/o/z.mp4"]
    assert store.key_of(f"s3://{bucket}/tenant/uploads/o/z.mp4") == "uploads/o/z.mp4"
    for uri in (f"s3://{bucket}/other/uploads/o/x.mp4", f"s3://{bucket}/uploads/o/z.mp4",
                f"s3://{bucket}/tenantx/uploads/o/y.mp4"):
        with pytest.raises(ValueError):
            store.key_of(uri)


def test_key_of_takes_the_key_verbatim(store: S3Store) -> None:
    # No percent-decoding: an encoded `..` is a literal (harmless) segment name, never a parent.
    assert store.key_of(f"s3://{store.bucket}/uploads/o/%2e%2e/x.mp4") == "uploads/o/%2e%2e/x.mp4"
    assert store.key_of(store.uri("uploads/o/a%20b.mp4")) == "uploads/o/a%20b.mp4"


def test_list_skips_keys_others_put(s3: S3Endpoint, store: S3Store) -> None:
    client = s3.client()
    for key in ("uploads/o/../x.mp4", "uploads/o/a\x01b.mp4", "uploads/o//y.mp4", "uploads/o/./z.mp4",
                "uploads/o/good.mp4", "uploads/o/tab\t.mp4"):
        client.put_object(Bucket=store.bucket, Key=key, Body=b"data")
    assert [item.key for item in store.list("uploads/")] == ["uploads/o/good.mp4"]


def test_presigned_get_and_put(store: S3Store) -> None:
    store.write_bytes("org/sidecars/a.vna.json", b'{"a": 1}\n', "application/json")
    answer = httpx.get(store.presigned_get("org/sidecars/a.vna.json", 60))
    assert answer.status_code == 200 and answer.content == b'{"a": 1}\n'
    assert answer.headers["content-type"] == "application/json"

    url = store.presigned_put("uploads/o/u1/clip.mp4", 300, "video/mp4", 11)
    signed = parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")
    assert {"content-length", "content-type", "host"} <= set(signed)
    stored = httpx.put(url, content=b"hello world", headers={"Content-Type": "video/mp4"})
    assert stored.status_code == 200, stored.text
    assert store.read_bytes("uploads/o/u1/clip.mp4") == b"hello world"
    for expires in (0, 8 * 24 * 3600):
        with pytest.raises(ValueError):
            store.presigned_get("org/sidecars/a.vna.json", expires)


def test_presigned_urls_name_the_public_endpoint(s3: S3Endpoint, store: S3Store) -> None:
    """Clients reach the store at another address than the services (MinIO in compose): the URLs name it."""
    public = s3.url.replace("127.0.0.1", "localhost")
    outside = S3Store(store.bucket, endpoint_url=s3.url, public_endpoint_url=public)
    outside.write_bytes("org/sidecars/b.vna.json", b"{}\n", "application/json")
    url = outside.presigned_get("org/sidecars/b.vna.json", 60)
    assert url.startswith(f"{public}/{store.bucket}/org/sidecars/b.vna.json?")
    assert httpx.get(url).content == b"{}\n"
    put = outside.presigned_put("uploads/o/u2/clip.mp4", 60, "video/mp4", 2)
    assert put.startswith(f"{public}/") and httpx.put(put, content=b"ok", headers={"Content-Type": "video/mp4"}).is_success
    assert outside.read_bytes("uploads/o/u2/clip.mp4") == b"ok"
    # Unset, the URLs name the endpoint the store talks to.
    assert store.presigned_get("org/sidecars/b.vna.json", 60).startswith(f"{s3.url}/")


def test_the_probe_reads_by_the_endpoint_the_services_reach(s3: S3Endpoint, store: S3Store) -> None:
    """ffprobe runs in the service, which reaches the store at its own endpoint (`minio:9000` in
    compose), where the public address (127.0.0.1:9000 on the host) answers nothing: the API's
    commit answered 503 media_unavailable, "Connection refused", on the compose stack."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nothing_there = f"http://127.0.0.1:{unused.getsockname()[1]}"
    inside = S3Store(store.bucket, endpoint_url=s3.url, public_endpoint_url=nothing_there)
    inside.write_bytes("uploads/o/u1/clip.mp4", b"video bytes", "video/mp4")
    with inside.probe_input("uploads/o/u1/clip.mp4") as url:
        assert str(url).startswith(f"{s3.url}/") and httpx.get(str(url)).content == b"video bytes"
    assert inside.presigned_get("uploads/o/u1/clip.mp4", 60).startswith(f"{nothing_there}/")


def test_missing_bucket(s3: S3Endpoint, tmp_path: Path) -> None:
    store = S3Store("heimdex-no-such-bucket", endpoint_url=s3.url)
    (tmp_path / "clip.mp4").write_bytes(b"x" * 100)

    def media_input() -> None:
        with store.media_input("uploads/o/clip.mp4"):
            pass

    for operation in (store.check, lambda: list(store.list("uploads/")), lambda: store.stat("a/b"),
                      lambda: store.read_bytes("a/b"), lambda: store.write_bytes("a/b", b"x"),
                      lambda: store.write_file("a/b", tmp_path / "clip.mp4"), media_input,
                      lambda: next(store.iter_bytes("a/b"))):
        with pytest.raises(StorageUnavailableError) as raised:
            operation()
        assert raised.value.code == "storage_bucket_missing"
        assert "heimdex-no-such-bucket" in str(raised.value) and "does not exist" in str(raised.value)


def test_wrong_credentials(s3: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = s3.new_bucket()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-at-all")
    store = S3Store(bucket, endpoint_url=s3.url)
    # moto accepts any credentials unless told to check them, as here: its process-wide setting,
    # which the in-process server reads on every request.
    with enable_iam_authentication():
        for operation in (lambda: list(store.list("uploads/")), lambda: store.read_bytes("a/b"),
                          lambda: store.write_bytes("a/b", b"x"), store.check):
            with pytest.raises(StorageUnavailableError) as raised:
                operation()
            assert raised.value.code == "storage_access_denied"
            assert "not-the-secret-at-all" not in str(raised.value)
            assert "access denied" in str(raised.value)


def test_dead_endpoint_fails_in_seconds() -> None:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    store = S3Store("heimdex-gone", endpoint_url=f"http://127.0.0.1:{port}")
    store.client.create_bucket(Bucket="heimdex-gone")
    store.write_bytes("a/b", b"x")
    server.stop()
    for operation in (store.check, lambda: list(store.list("")), lambda: store.read_bytes("a/b"),
                      lambda: store.stat("a/b"), lambda: next(store.iter_bytes("a/b"))):
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError) as raised:
            operation()
        assert raised.value.code == "storage_unavailable"
        assert time.monotonic() - started < 5
        assert f"127.0.0.1:{port}" in str(raised.value)


def test_media_input_copy_is_removed_even_on_error(store: S3Store) -> None:
    store.write_bytes("uploads/o/clip.mp4", b"not really a video")
    with pytest.raises(RuntimeError), store.media_input("uploads/o/clip.mp4") as source:
        assert source.name == "clip.mp4" and source.read_bytes() == b"not really a video"
        raise RuntimeError("ffmpeg failed")
    assert not source.exists() and not source.parent.exists()


class CuttingProxy:
    """A TCP proxy to the S3 endpoint that cuts each of the first `cuts` connections once it has
    passed `after` bytes of the answer: a read reset mid-body."""

    def __init__(self, target_port: int, after: int, cuts: int) -> None:
        self.target_port, self.after, self.cuts = target_port, after, cuts
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            cut = self.cuts > 0
            self.cuts -= 1
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, self.after if cut else None),
                             daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket, limit: int | None) -> None:
        passed = 0
        try:
            while data := source.recv(65536):
                if limit is not None and passed + len(data) > limit:
                    target.sendall(data[:limit - passed])
                    break
                target.sendall(data)
                passed += len(data)
        except OSError:
            pass
        for end in (source, target):
            # shutdown, not only close: a recv blocked on the socket in the other thread would
            # keep it open, and the client would wait for its read timeout instead of a reset.
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self.listener.close()


def test_iter_bytes_goes_on_after_a_cut(s3: S3Endpoint, store: S3Store) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    store.write_bytes("uploads/o/big.bin", data)
    proxy = CuttingProxy(int(s3.url.rsplit(":", 1)[1]), after=300_000, cuts=2)
    try:
        through = S3Store(store.bucket, endpoint_url=f"http://127.0.0.1:{proxy.port}")
        assert b"".join(through.iter_bytes("uploads/o/big.bin", chunk_size=65536)) == data
        assert b"".join(through.iter_bytes("uploads/o/big.bin", 1000, 500_000)) == data[1000:501_000]
    finally:
        proxy.close()


def test_scratch_copies_of_killed_processes_are_removed(store: S3Store) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid no longer runs
    dead = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}media-{gone.pid}-"))
    (dead / "clip.mp4").write_bytes(b"left by a killed run")
    alive = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}media-{os.getpid()}-"))
    store.write_bytes("uploads/o/clip.mp4", b"video")
    try:
        with store.media_input("uploads/o/clip.mp4"):
            pass
        assert not dead.exists() and alive.exists()
    finally:
        shutil.rmtree(alive)


def test_messages_name_no_secret() -> None:
    store = S3Store("heimdex-gone", endpoint_url=f"http://user:hunter2@127.0.0.1:{free_port()}")
    with pytest.raises(StorageUnavailableError) as raised:
        store.check()
    assert "hunter2" not in str(raised.value) and "hunter2" not in repr(store)
    assert "127.0.0.1:" in str(raised.value)
