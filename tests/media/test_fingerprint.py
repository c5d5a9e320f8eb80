"""Content hashes and asset ids."""

import hashlib
from pathlib import Path

from heimdex_pipeline.media.fingerprint import ASSET_ID_PATTERN, asset_id_for
from tests.catalogue import hash_file


def test_strong_hash_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"heimdex" * 1000)
    content = hash_file(path, weak_threshold_bytes=1_000_000)
    assert content.quality == "strong" and content.value == "sha256:" + hashlib.sha256(b"heimdex" * 1000).hexdigest()


def test_weak_fingerprint_above_the_threshold(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"x" * 10_000)
    b.write_bytes(b"x" * 10_000)
    weak = hash_file(a, weak_threshold_bytes=100)
    assert weak.quality == "weak" and weak.value.startswith("weak-sha256:") and weak == hash_file(b, 100)
    b.write_bytes(b"x" * 9_999 + b"y")
    assert hash_file(b, 100) != weak


def test_asset_ids_are_safe_stable_and_org_scoped(tmp_path: Path) -> None:
    path = tmp_path / "movie; rm -rf.mp4"
    path.write_bytes(b"video bytes")
    content = hash_file(path, 1_000_000)
    asset_id = asset_id_for("org-a", content)
    assert ASSET_ID_PATTERN.match(asset_id) and asset_id == asset_id_for("org-a", hash_file(path, 1_000_000))
    assert asset_id != asset_id_for("org-b", content)
