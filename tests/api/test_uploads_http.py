"""Uploads over HTTP: one signed PUT of the file, commit, and the outputs fetched by their URLs, on both
backends; every bad PUT refused and nothing registered."""

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from heimdex_api.core.signing import UrlSigner
from tests.api.support import uri_path
from tests.api.uploads import LiveApi, cut_short_put


def test_put_then_commit_runs_the_ingest(live: LiveApi, clip: Path) -> None:
    data = clip.read_bytes()
    answer = live.init(len(data))
    presigned = answer["presigned"]
    api_url = f"{live.url}/v1/uploads/{live.org}/{answer['upload_id']}"
    if live.settings.storage == "s3":  # the bucket's own presigned PUT, on moto's server
        assert presigned["upload_url"].startswith(f"{live.settings.s3_endpoint_url}/{live.settings.s3_bucket}/")
        assert presigned["asset_uri"] == f"s3://{live.settings.s3_bucket}/{live.key(answer)}"
    else:
        assert presigned["upload_url"].startswith(f"{api_url}?expires=")
    assert presigned["resumable_url"].startswith(f"{api_url}/tus?expires=")
    # The bucket's URL is signed create-only (If-None-Match: *), so its client sends that header too.
    once = {"If-None-Match": "*"} if live.settings.storage == "s3" else {}
    assert presigned["upload_headers"] == {"Content-Type": "video/mp4", **once}
    assert abs(_iso_seconds(presigned["expires_at"]) - time.time() - live.settings.upload_url_ttl_s) < 60
    # No bearer token: the URL is the credential.
    put = live.http.put(presigned["upload_url"], content=data, headers=presigned["upload_headers"])
    assert put.status_code == 200, put.text
    assert live.names(answer) == ["clip.mp4"], "only the whole file, no partial left"
    assert live.read(answer) == data

    committed = live.commit(answer)
    assert committed.status_code == 200, committed.text
    assert live.job(committed.json()["job_id"])["status"] == "succeeded"

    # What the run wrote comes back through the answer's URLs, again without a token.
    asset = live.http.get(f"{live.url}/v1/assets/{committed.json()['asset_id']}", headers=live.auth).json()
    sidecar = live.http.get(asset["sidecar"]["url"])
    assert sidecar.status_code == 200 and sidecar.json()["asset_id"] == asset["asset_id"]
    assert len(asset["thumbnails"]) == len(sidecar.json()["thumbnails"]) > 0
    for thumbnail in asset["thumbnails"]:
        image = live.http.get(thumbnail["url"])
        assert image.status_code == 200 and image.content.startswith(b"\xff\xd8"), thumbnail  # a JPEG


def test_a_put_after_commit_is_refused(live: LiveApi, clip: Path) -> None:
    data = clip.read_bytes()
    answer = live.init(len(data))
    url, headers = answer["presigned"]["upload_url"], answer["presigned"]["upload_headers"]
    put = live.http.put(url, content=data, headers=headers)
    assert put.status_code == 200, put.text
    assert live.commit(answer).status_code == 200
    again = live.http.put(url, content=data[::-1], headers=headers)
    if live.settings.storage == "s3":
        # The bucket refuses it (moto enforces If-None-Match: * as S3 does). The header is among
        # the URL's signed headers, so S3 refuses a PUT that leaves it out (403); moto checks no
        # signatures, so that refusal is S3's own, not tested here.
        assert again.status_code == 412, again.text
        assert "if-none-match" in parse_qs(urlsplit(url).query)["X-Amz-SignedHeaders"][0].split(";")
    else:
        assert put.json() == {"upload_id": answer["upload_id"], "size_bytes": len(data)}
        assert (again.status_code, again.json()["error"]) == (409, "upload_already_committed")
    assert live.read(answer) == data


def test_a_put_streams_a_chunked_body(local_live: LiveApi) -> None:
    live = local_live
    data = bytes(range(256)) * 40_000  # 10 MB, more than a block
    answer = live.init(len(data), name="blob.bin", content_type=None)
    assert answer["presigned"]["upload_headers"] == {}
    chunks = (data[i:i + 65_536] for i in range(0, len(data), 65_536))
    put = live.http.put(answer["presigned"]["upload_url"], content=chunks)  # no Content-Length: chunked
    assert put.status_code == 200, put.text
    assert uri_path(answer["presigned"]["asset_uri"]).read_bytes() == data


def test_the_public_url_names_the_api(local_live: LiveApi) -> None:
    live = local_live
    live.settings.public_url = "https://heimdex.example.org/api/"
    presigned = live.init(10)["presigned"]
    assert presigned["upload_url"].startswith("https://heimdex.example.org/api/v1/uploads/")
    assert presigned["resumable_url"].startswith("https://heimdex.example.org/api/v1/uploads/")


def _signed(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    path = changes.pop("path", parts.path)
    query.update(changes)
    return f"{parts.scheme}://{parts.netloc}{path}?" + "&".join(f"{k}={v}" for k, v in query.items())


def test_a_url_opens_only_its_own_upload_until_it_expires(local_live: LiveApi, clip: Path) -> None:
    live = local_live
    data = clip.read_bytes()
    mine, other = live.init(len(data)), live.init(len(data))
    url = mine["presigned"]["upload_url"]
    path, sig = urlsplit(url).path, parse_qs(urlsplit(url).query)["sig"][0]
    key = live.settings.url_signing_key.get_secret_value().encode()
    expired = UrlSigner(key).sign("upload", live.org, mine["upload_id"], int(time.time()) - 1)
    wrong_key = UrlSigner(b"x" * 32).sign("upload", live.org, mine["upload_id"], int(time.time()) + 600)
    download = UrlSigner(key).sign("download", live.org, mine["upload_id"],
                                   int(time.time()) + 600)
    snapshot = live.snapshot()
    refused = {
        "expired": (_signed(url, **expired), "url_expired"),
        "tampered signature": (_signed(url, sig=("0" if sig[0] != "0" else "1") + sig[1:]), "url_signature_invalid"),
        "later expiry": (_signed(url, expires=str(int(time.time()) + 10**6)), "url_signature_invalid"),
        "another key": (_signed(url, **wrong_key), "url_signature_invalid"),
        "another purpose": (_signed(url, **download), "url_signature_invalid"),
        "another upload": (_signed(url, path=path.replace(mine["upload_id"], other["upload_id"])),
                           "url_signature_invalid"),
        "another org": (_signed(url, path=path.replace(live.org, "org-other")), "url_signature_invalid"),
        "unsigned": (url.split("?")[0], "url_signature_invalid"),
    }
    for case, (bad, code) in refused.items():
        response = live.http.put(bad, content=data)
        assert (response.status_code, response.json()["error"]) == (403, code), case
    tus = {"Tus-Resumable": "1.0.0"}
    assert live.http.head(_signed(mine["presigned"]["resumable_url"], **expired), headers=tus).status_code == 403
    assert live.http.head(_signed(other["presigned"]["resumable_url"], sig=sig), headers=tus).status_code == 403
    assert live.http.head(mine["presigned"]["resumable_url"], headers=tus).status_code == 200
    snapshot.assert_unchanged()


def test_more_bytes_than_declared_answer_413_and_keep_nothing(local_live: LiveApi, clip: Path) -> None:
    live = local_live
    data = clip.read_bytes()
    answer = live.init(len(data) - 1)
    url, target = answer["presigned"]["upload_url"], uri_path(answer["presigned"]["asset_uri"])
    snapshot = live.snapshot()
    declared = live.http.put(url, content=data)
    assert (declared.status_code, declared.json()["error"]) == (413, "upload_length_exceeded")
    streamed = live.http.put(url, content=(data[i:i + 4096] for i in range(0, len(data), 4096)))
    assert (streamed.status_code, streamed.json()["error"]) == (413, "upload_length_exceeded")
    assert list(target.parent.iterdir()) == []
    snapshot.assert_unchanged()
    assert live.commit(answer).json()["error"] == "source_not_found"


def test_a_put_of_fewer_bytes_leaves_the_upload_incomplete_on_both_backends(live: LiveApi, clip: Path) -> None:
    """A whole PUT of fewer bytes than content_length: commit answers 409 `upload_incomplete`, as the
    contract says of an incomplete upload (it answered 404 `source_not_found` on disk, 422
    `content_length_mismatch` in a bucket), and the tus URL finishes the upload."""
    data = clip.read_bytes()
    answer = live.init(len(data))
    presigned = answer["presigned"]
    put = live.http.put(presigned["upload_url"], content=data[:-2], headers=presigned["upload_headers"])
    if live.settings.storage == "local":
        assert (put.status_code, put.json()["error"]) == (400, "upload_incomplete"), put.text
        assert put.json()["detail"]["offset"] == len(data) - 2
    else:
        # moto takes it: it checks no signatures. Real S3 refuses it (403), since the URL is signed
        # for content_length bytes, and then nothing is at the URI: commit answers 404 source_not_found.
        assert put.status_code == 200, put.text
    assert live.read(answer) == (None if live.settings.storage == "local" else data[:-2])
    snapshot = live.snapshot()
    refused = live.commit(answer)
    assert (refused.status_code, refused.json()["error"]) == (409, "upload_incomplete"), refused.text
    assert refused.json()["detail"]["offset"] == len(data) - 2
    snapshot.assert_unchanged()
    # tus says where to go on: after the kept bytes on disk; from 0 in a bucket, whose shorter object
    # cannot be appended to and is replaced.
    tus = {"Tus-Resumable": "1.0.0"}
    offset = int(live.http.head(presigned["resumable_url"], headers=tus).headers["Upload-Offset"])
    assert offset == (len(data) - 2 if live.settings.storage == "local" else 0)
    patch = live.http.patch(presigned["resumable_url"], content=data[offset:], headers={
        **tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
    assert patch.status_code == 204, patch.text
    assert live.read(answer) == data
    assert live.commit(answer).status_code == 200


def test_a_put_cut_short_leaves_the_upload_incomplete(local_live: LiveApi, clip: Path) -> None:
    live = local_live
    data = clip.read_bytes()
    answer = live.init(len(data))
    target = uri_path(answer["presigned"]["asset_uri"])
    cut_short_put(live, answer, data, len(data) // 2)
    tus = {"Tus-Resumable": "1.0.0"}
    deadline = time.monotonic() + 10
    while (int(live.http.head(answer["presigned"]["resumable_url"], headers=tus).headers["Upload-Offset"])
           < len(data) // 2 and time.monotonic() < deadline):
        time.sleep(0.05)
    assert not target.exists()
    assert all(p.name.startswith(".") for p in target.parent.iterdir()), "only a hidden partial, if anything"
    snapshot = live.snapshot()
    refused = live.commit(answer)
    assert (refused.status_code, refused.json()["error"]) == (409, "upload_incomplete"), refused.text
    assert refused.json()["detail"]["offset"] == len(data) // 2
    snapshot.assert_unchanged()
    # The tus URL resumes where the PUT stopped.
    offset = int(live.http.head(answer["presigned"]["resumable_url"], headers=tus).headers["Upload-Offset"])
    assert offset == len(data) // 2
    patch = live.http.patch(answer["presigned"]["resumable_url"], content=data[offset:], headers={
        "Tus-Resumable": "1.0.0", "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
    assert patch.status_code == 204, patch.text
    assert target.read_bytes() == data
    assert live.commit(answer).status_code == 200


def _iso_seconds(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
