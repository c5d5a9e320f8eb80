"""tus termination while a PATCH is in flight: nothing of the upload is left, on disk or in the bucket,
whichever API process received the PATCH."""

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from heimdex_pipeline.catalog.migrate import migrate
from tests.api.live import api_server
from tests.api.uploads import LiveApi
from tests.s3_server import S3Endpoint

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}
MIB = 1024 * 1024
# Where the PATCH is when the DELETE arrives: in its first block (a tail only), and past a whole
# 8 MiB part (an S3 multipart upload is open). Each is tried in several rounds: on the old code
# every round leaves objects (the DELETE never waited for the PATCH, which then saved its
# state and tail), so one round failing is enough, and the rounds vary the timing around it.
# On disk both are one partial file, past a few blocks of the API's writes in the second case.
SENT_BEFORE_DELETE = (MIB, 9 * MIB)
ROUNDS = 3


@dataclass
class SlowPatch:
    """A PATCH that sends `first` bytes, then waits for `go` before it sends `rest`: a client still sending."""

    url: str
    first: bytes
    rest: bytes
    go: threading.Event = field(default_factory=threading.Event)
    outcome: list[object] = field(default_factory=list)

    def body(self) -> Iterator[bytes]:
        for at in range(0, len(self.first), 256 * 1024):
            yield self.first[at:at + 256 * 1024]
        self.go.wait(60)
        yield self.rest

    def run(self) -> None:
        try:
            with httpx.Client(timeout=60) as http:
                self.outcome.append(http.patch(self.url, content=self.body(), headers={
                    **OCTETS, "Upload-Offset": "0", "Content-Length": str(len(self.first) + len(self.rest))}))
        except httpx.HTTPError as exc:  # the server may answer and close before the body is all sent
            self.outcome.append(exc)


def _left(store_kind: str, live_names: list[str], multiparts: list[str]) -> str:
    return f"{store_kind}: left under the prefix {live_names}, open multipart uploads {multiparts}"


def _terminate_during_patch(patch_base: str, delete_base: str, answer: dict, sent: int,
                            names, multiparts, in_bucket: bool) -> None:  # noqa: ANN001 (callables of the backend)
    """PATCH through `patch_base`, DELETE through `delete_base` while the PATCH's body is still coming;
    `in_bucket`: the upload goes to S3, where a body past a part opens a multipart upload."""
    url = answer["presigned"]["resumable_url"]
    path = url.split("/v1/", 1)[1]
    data = bytes(range(256)) * (sent // 256) + b"\x00" * (sent % 256)
    slow = SlowPatch(f"{patch_base}/v1/{path}", data, b"\x01" * MIB)
    thread = threading.Thread(target=slow.run, daemon=True)
    thread.start()
    try:
        # The PATCH's bytes have reached the server: a 9 MiB body has opened a multipart upload (S3).
        deadline = time.monotonic() + 30
        time.sleep(1.0)
        while in_bucket and sent > 8 * MIB and multiparts() == [] and time.monotonic() < deadline:
            time.sleep(0.1)
        # Another writer meanwhile, through the other process: the lock is the catalog's, not a process's.
        rival = httpx.patch(f"{delete_base}/v1/{path}", content=b"x", timeout=60,
                            headers={**OCTETS, "Upload-Offset": "0"})
        assert (rival.status_code, rival.json()["error"]) == (409, "upload_busy"), rival.text
        deleted = httpx.delete(f"{delete_base}/v1/{path}", headers=TUS, timeout=60)
        assert deleted.status_code == 204, deleted.text
        # Once the DELETE answered, nothing is there, and nothing comes back while the client sends on.
        assert (names(), multiparts()) == ([], []), _left("after the DELETE", names(), multiparts())
    finally:
        slow.go.set()
        thread.join(60)
    outcome = slow.outcome[0]
    if isinstance(outcome, httpx.Response):
        assert (outcome.status_code, outcome.json()["error"]) == (404, "upload_not_found"), outcome.text
    time.sleep(0.5)
    assert (names(), multiparts()) == ([], []), _left("after the PATCH", names(), multiparts())
    assert httpx.head(f"{patch_base}/v1/{path}", headers=TUS).status_code == 404


def _backend(live_store, settings, org: str, answer: dict):  # noqa: ANN001, ANN202
    """The upload's names under its prefix, and the open multipart uploads of the bucket (none on disk)."""
    prefix = f"uploads/{org}/{answer['upload_id']}/"

    def names() -> list[str]:
        if settings.storage == "local":
            folder = live_store.path(prefix.rstrip("/"))
            return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []
        listed = live_store.client.list_objects_v2(Bucket=live_store.bucket, Prefix=live_store.prefix + prefix)
        return sorted(o["Key"] for o in listed.get("Contents", []))

    def multiparts() -> list[str]:
        if settings.storage == "local":
            return []
        listed = live_store.client.list_multipart_uploads(Bucket=live_store.bucket)
        return sorted(u["Key"] for u in listed.get("Uploads", []))

    return names, multiparts


@pytest.mark.parametrize("sent", SENT_BEFORE_DELETE)
def test_terminating_during_a_patch_leaves_nothing(live: LiveApi, sent: int) -> None:
    for _ in range(ROUNDS):
        answer = live.init(sent + MIB + 1, name="blob.bin", content_type=None)
        names, multiparts = _backend(live.store, live.settings, live.org, answer)
        _terminate_during_patch(live.url, live.url, answer, sent, names, multiparts, live.settings.storage == "s3")


def test_the_termination_waits_for_a_patch_in_another_api_process(tmp_path: Path, sqlite_url: str,
                                                                 s3: S3Endpoint, org: str) -> None:
    """Two API processes (as uvicorn's `--workers` makes them) over one catalog and bucket: the PATCH
    goes to one, the DELETE to the other. A lock of one process would not see the other's request."""
    from heimdex_api.core.config import ApiSettings
    from heimdex_pipeline.storage.s3 import S3Store
    from tests.api.support import SECRET, bearer, make_token

    bucket = s3.new_bucket()
    database_url = f"sqlite:///{tmp_path / 'heimdex.db'}"
    migrate(database_url)
    env = {"storage": "s3", "s3_bucket": bucket, "s3_endpoint_url": s3.url, "migrate_on_start": "false",
           "url_signing_key": "u" * 32}
    settings = ApiSettings(derived_root=tmp_path / "derived", database_url=database_url, jwt_secret=SECRET,
                           env="development", **env)
    store = S3Store(bucket, endpoint_url=s3.url)
    with api_server(tmp_path / "a", tmp_path / "derived", database_url, **env) as first, \
            api_server(tmp_path / "b", tmp_path / "derived", database_url, **env) as second:
        for sent in SENT_BEFORE_DELETE:
            for _ in range(ROUNDS):
                init = httpx.post(f"{first}/v1/ingest/init", headers=bearer(make_token(org, ["assets:write"])),
                                  json={"org_id": org, "source_name": "blob.bin", "content_length": sent + MIB + 1})
                assert init.status_code == 201, init.text
                answer = init.json()
                names, multiparts = _backend(store, settings, org, answer)
                _terminate_during_patch(first, second, answer, sent, names, multiparts, settings.storage == "s3")
