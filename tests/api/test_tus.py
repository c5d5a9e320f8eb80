"""tus 1.0 at init's resumable URL: a stock client (tuspy) resumes an interrupted upload; every bad PATCH refused."""

import base64
import hashlib
import os
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from tusclient.uploader import Uploader

from tests.api.uploads import LiveApi

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def _offset(live: LiveApi, url: str) -> int:
    head = live.http.head(url, headers=TUS)
    assert head.status_code == 200, head.status_code
    return int(head.headers["Upload-Offset"])


def test_a_stock_client_resumes_an_interrupted_upload(live: LiveApi, clip: Path) -> None:
    size = clip.stat().st_size
    answer = live.init(size)
    url = answer["presigned"]["resumable_url"]
    chunk = size // 3 + 1
    first = Uploader(str(clip), url=url, chunk_size=chunk, upload_checksum=True)
    first.upload_chunk()  # one chunk, then the client "dies"
    assert _offset(live, url) == chunk
    assert live.read(answer) is None

    resumed = Uploader(str(clip), url=url, chunk_size=chunk)  # a new client asks HEAD where to go on
    assert resumed.offset == chunk
    resumed.upload()
    assert _offset(live, url) == size
    assert live.read(answer) == clip.read_bytes()
    committed = live.commit(answer)
    assert committed.status_code == 200, committed.text
    assert live.job(committed.json()["job_id"])["status"] == "succeeded"
    late = live.http.patch(url, content=b"x", headers={**OCTETS, "Upload-Offset": str(size)})
    assert (late.status_code, late.json()["error"]) == (409, "upload_already_committed")


def test_options_and_head_say_what_the_server_does(live: LiveApi) -> None:
    answer = live.init(1000)
    url = answer["presigned"]["resumable_url"]
    options = live.http.options(url.split("?")[0])
    assert options.status_code == 204
    assert options.headers["Tus-Version"] == "1.0.0"
    assert set(options.headers["Tus-Extension"].split(",")) == {"checksum", "expiration", "termination"}
    assert set(options.headers["Tus-Checksum-Algorithm"].split(",")) == {"sha1", "sha256"}
    assert int(options.headers["Tus-Max-Size"]) == live.settings.max_upload_bytes
    head = live.http.head(url, headers=TUS)
    assert (head.status_code, head.headers["Upload-Offset"], head.headers["Upload-Length"]) == (200, "0", "1000")
    assert head.headers["Cache-Control"] == "no-store" and head.headers["Tus-Resumable"] == "1.0.0"
    expires = parsedate_to_datetime(head.headers["Upload-Expires"]).timestamp()
    assert abs(expires - time.time() - live.settings.upload_url_ttl_s) < 60
    assert live.http.head(url).status_code == 412  # no Tus-Resumable


def test_bad_patches_are_refused_and_keep_nothing(live: LiveApi) -> None:
    data = bytes(range(256)) * 8
    answer = live.init(len(data), name="blob.bin")
    url = answer["presigned"]["resumable_url"]
    first = live.http.patch(url, content=data[:1000], headers={**OCTETS, "Upload-Offset": "0"})
    assert (first.status_code, first.headers["Upload-Offset"]) == (204, "1000")
    assert "Upload-Expires" in first.headers

    def patch(body: bytes, offset: int = 1000, **headers: str):
        return live.http.patch(url, content=body, headers={**OCTETS, "Upload-Offset": str(offset), **headers})

    sha1 = base64.b64encode(hashlib.sha1(data[1000:1500]).digest()).decode()
    cases = {
        "wrong offset": (patch(data[500:1000], offset=500), 409, "upload_offset_mismatch"),
        "bad checksum": (patch(data[1000:1500], **{"Upload-Checksum": f"sha1 {base64.b64encode(bytes(20)).decode()}"}),
                         460, "checksum_mismatch"),
        "checksum not base64": (patch(data[1000:1500], **{"Upload-Checksum": "sha1 !!"}), 400,
                                "invalid_upload_header"),
        "digest of other bytes": (patch(data[1000:1600], **{"Upload-Checksum": f"sha1 {sha1}"}), 460,
                                  "checksum_mismatch"),
        "unsupported algorithm": (patch(data[1000:1500], **{"Upload-Checksum": "md5 AAAA"}), 400,
                                  "checksum_algorithm_unsupported"),
        "wrong content type": (patch(data[1000:1500], **{"Content-Type": "application/octet-stream"}), 415,
                               "unsupported_media_type"),
        "wrong version": (patch(data[1000:1500], **{"Tus-Resumable": "0.2.2"}), 412, "tus_version_unsupported"),
        "past the length": (patch(data[1000:] + b"extra"), 413, "upload_length_exceeded"),
        "past the length, chunked": (live.http.patch(url, content=iter([data[1000:], b"extra"]),
                                                     headers={**OCTETS, "Upload-Offset": "1000"}), 413,
                                     "upload_length_exceeded"),
        "no offset": (live.http.patch(url, content=b"x", headers=OCTETS), 400, "invalid_upload_header"),
    }
    for case, (response, status, code) in cases.items():
        assert (response.status_code, response.json()["error"]) == (status, code), case
        assert response.headers["Tus-Resumable"] == "1.0.0", case
        assert _offset(live, url) == 1000, case
    good = patch(data[1000:1500], **{"Upload-Checksum": f"sha1 {sha1}"})
    assert (good.status_code, good.headers["Upload-Offset"]) == (204, "1500")
    sha256 = base64.b64encode(hashlib.sha256(data[1500:]).digest()).decode()
    last = patch(data[1500:], offset=1500, **{"Upload-Checksum": f"sha256 {sha256}"})
    assert (last.status_code, last.headers["Upload-Offset"]) == (204, str(len(data)))
    assert live.read(answer) == data
    assert live.names(answer) == ["blob.bin"], "no hidden state left"


def test_an_incomplete_upload_is_not_committed_and_terminated_is_gone(live: LiveApi, clip: Path) -> None:
    data = clip.read_bytes()
    answer = live.init(len(data))
    url = answer["presigned"]["resumable_url"]
    assert live.http.patch(url, content=data[:100], headers={**OCTETS, "Upload-Offset": "0"}).status_code == 204
    snapshot = live.snapshot()
    refused = live.commit(answer)
    assert (refused.status_code, refused.json()["error"]) == (409, "upload_incomplete")
    snapshot.assert_unchanged()
    assert live.names(answer) and all(name.startswith(".") for name in live.names(answer)), \
        "only hidden names, which the sensor skips"

    deleted = live.http.delete(url, headers=TUS)
    assert deleted.status_code == 204
    assert live.names(answer) == []
    assert live.http.head(url, headers=TUS).status_code == 404
    gone = live.http.patch(url, content=data[100:], headers={**OCTETS, "Upload-Offset": "100"})
    assert (gone.status_code, gone.json()["error"]) == (404, "upload_not_found")
    assert live.commit(answer).json()["error"] == "upload_not_found"
    if live.settings.storage == "local":  # S3's presigned PUT is the bucket's: it knows nothing of termination
        assert live.http.put(answer["presigned"]["upload_url"], content=data).status_code == 404


@pytest.mark.parametrize("live", ["s3"], indirect=True)
def test_terminating_an_s3_upload_aborts_its_multipart_upload(live: LiveApi) -> None:
    """Past S3's 5 MiB part minimum the bytes sit in a multipart upload: termination must abort it."""
    data = os.urandom(9 * 1024 * 1024)  # more than one 8 MiB part
    answer = live.init(len(data) + 1, name="blob.bin", content_type=None)
    url = answer["presigned"]["resumable_url"]
    assert live.http.patch(url, content=data, headers={**OCTETS, "Upload-Offset": "0"}).status_code == 204
    client, bucket = live.store.client, live.settings.s3_bucket
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads"), "9 MiB must have started a multipart upload"

    assert live.http.delete(url, headers=TUS).status_code == 204
    assert not client.list_multipart_uploads(Bucket=bucket).get("Uploads"), "the parts would be kept, and billed"
    assert live.names(answer) == []
