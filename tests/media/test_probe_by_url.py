"""ffprobe reading an object of an S3 endpoint by the presigned URL the store makes
(`S3Store.probe_input`): the same probe as the local file, no local copy, the same refusals,
and messages that name the object only."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from heimdex_pipeline.media.errors import TransientMediaError, UnreadableMediaError, UnsupportedFormatError
from heimdex_pipeline.media.probe import probe_video
from heimdex_pipeline.media.tools import URL_FORMAT_OPTIONS, format_options, input_url
from heimdex_pipeline.storage import s3 as s3_module
from heimdex_pipeline.storage.s3 import S3Store
from tests.dagster_home import free_port
from tests.media.hostile import KINDS, NOT_A_FORMAT, playlists
from tests.s3_server import S3Endpoint


@pytest.fixture(scope="module")
def store(s3: S3Endpoint) -> S3Store:
    return S3Store(s3.new_bucket(), endpoint_url=s3.url)


@pytest.fixture
def no_scratch_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the store makes a local scratch folder (a copy of an object) meanwhile."""
    def refused(kind: str) -> Iterator[Path]:
        raise AssertionError(f"a scratch folder ({kind}) was made: the object was copied")
    monkeypatch.setattr(s3_module, "_temporary_dir", refused)


@pytest.fixture(scope="module")
def hostile_keys(store: S3Store, clips: Callable[..., tuple[Path, list[float]]],
                 tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Every crafted playlist, manifest and script, uploaded as an object under its upload name."""
    target, _ = clips((2.0,))
    keys = {}
    for kind, path in playlists(target, tmp_path_factory.mktemp("hostile")).items():
        keys[kind] = f"uploads/org-a/{kind}/{path.name}"
        store.write_file(keys[kind], path)
    return keys


def _secretless(message: str, s3: S3Endpoint) -> None:
    host_port = s3.url.split("//", 1)[1]
    for secret in ("X-Amz-", "Signature", "Credential", "heimdex-test", host_port, "127.0.0.1", "http"):
        assert secret not in message, (secret, message)


def test_the_probe_by_url_is_the_probe_of_the_file(store: S3Store, clips, no_scratch_copy: None) -> None:
    path, _ = clips((2.0, 1.5), size="320x180")
    store.write_file("uploads/org-a/clip.mp4", path, "video/mp4")
    with store.probe_input("uploads/org-a/clip.mp4") as source:
        assert isinstance(source, str) and source.startswith("http://") and "X-Amz-Signature=" in source
        assert input_url(source) == source and format_options(source) is URL_FORMAT_OPTIONS
        assert probe_video(source) == probe_video(path)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_playlists_by_url_are_refused_as_on_disk(store: S3Store, hostile_keys: dict[str, str], kind: str) -> None:
    expected = UnreadableMediaError if kind in NOT_A_FORMAT else UnsupportedFormatError
    with store.probe_input(hostile_keys[kind]) as source, pytest.raises(expected) as raised:
        probe_video(source)
    assert type(raised.value) is expected


def test_failed_probes_by_url_name_the_object_only(s3: S3Endpoint, store: S3Store) -> None:
    store.write_bytes("uploads/org-a/garbage.mp4", b"not a video at all" * 64)
    with store.probe_input("uploads/org-a/garbage.mp4") as source, pytest.raises(UnreadableMediaError) as bad:
        probe_video(source)
    with store.probe_input("uploads/org-a/gone.mp4") as source, pytest.raises(TransientMediaError) as missing:
        probe_video(source)
    dead = S3Store(store.bucket, endpoint_url=f"http://127.0.0.1:{free_port()}")
    with dead.probe_input("uploads/org-a/garbage.mp4") as source, pytest.raises(TransientMediaError) as down:
        probe_video(source)
    for raised, name in ((bad, "garbage.mp4"), (missing, "gone.mp4"), (down, "garbage.mp4")):
        assert name in str(raised.value)
        _secretless(str(raised.value), s3)
    assert "404" in str(missing.value)
