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


# Ids of known bytes, worked out apart from the code (sha256sum, head and tail in a shell): a change to the
# hash, the weak fingerprint's samples or `asset_id_for` would re-key every stored video.
TESTVIDEO_SHA256 = "sha256:26775661b477bd739b3ba870aed04737179518abaf2a6e516ace6c94957aaa47"
# 13 MiB and a byte (three 4 MiB samples that neither overlap nor touch) that repeat nowhere, so that moving
# any sample changes the fingerprint: SHA-256 of the size in decimal, then bytes [0, 4 MiB),
# [size // 2 - 2 MiB, + 4 MiB) and the last 4 MiB.
WEAK_SIZE = 13 * 2**20 + 1
WEAK_FINGERPRINT = "weak-sha256:a1a19ebfcc0e94d1f0815de36c7bd863e6b9c665c7a99cf196089ec38433513f"


def test_the_ids_of_known_bytes_are_pinned(media_dir: Path, tmp_path: Path) -> None:
    strong = hash_file(media_dir / "testvideo.mp4")
    assert (strong.value, strong.quality, strong.size_bytes) == (TESTVIDEO_SHA256, "strong", 2_433_000)
    assert asset_id_for("org-demo", strong) == "v_76a6f2d5c9e85585d928fa1cbfaeb8f8"
    assert asset_id_for("org-b", strong) == "v_124adf6014e96060b464a816a481b9dc"

    big = tmp_path / "big.bin"
    big.write_bytes(hashlib.shake_256(b"heimdex").digest(WEAK_SIZE))
    weak = hash_file(big, weak_threshold_bytes=1_000_000)
    assert (weak.value, weak.quality, weak.size_bytes) == (WEAK_FINGERPRINT, "weak", WEAK_SIZE)
    assert asset_id_for("org-demo", weak) == "v_032ea406c06d3d33c85745dc95ba9671"
