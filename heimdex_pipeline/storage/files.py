"""The derived tree's layout, and writes that never leave a half-written file behind.

    <derived>/uploads/<org_id>/...                       the upload bucket
    <derived>/<org_id>/probes/<asset_id>.probe.json      probe metadata
    <derived>/<org_id>/sidecars/<asset_id>.vna.json      the scene sidecar
    <derived>/<org_id>/thumbnails/<asset_id>/NNNN.jpg    thumbnails
    <derived>/schemas/sidecar.schema.json                the sidecar's JSON Schema

The layout's own top-level folders sit beside the org folders, so no org may take their names.
A write that finds no space left raises DiskFullError, and leaves what was there before.
"""

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heimdex_pipeline.storage.errors import DiskFullError
from heimdex_pipeline.storage.layout import SCHEMAS, UPLOADS, check_org_id

@dataclass(frozen=True)
class DerivedLayout:
    """Paths of everything Heimdex writes under the derived root."""

    root: Path

    @property
    def uploads(self) -> Path:
        return self.root / UPLOADS

    @property
    def sidecar_schema(self) -> Path:
        return self.root / SCHEMAS / "sidecar.schema.json"

    def org_dir(self, org_id: str) -> Path:
        return self.root / check_org_id(org_id)

    def probe(self, org_id: str, asset_id: str) -> Path:
        return self.org_dir(org_id) / "probes" / f"{asset_id}.probe.json"

    def sidecar(self, org_id: str, asset_id: str) -> Path:
        return self.org_dir(org_id) / self.sidecar_key(asset_id)

    def thumbnails(self, org_id: str, asset_id: str) -> Path:
        return self.org_dir(org_id) / "thumbnails" / asset_id

    @staticmethod
    def sidecar_key(asset_id: str) -> str:
        """The sidecar's storage key, relative to the org folder."""
        return f"sidecars/{asset_id}.vna.json"

    def storage_key(self, org_id: str, path: Path) -> str:
        """A file's storage key: its path relative to the org folder."""
        return path.relative_to(self.org_dir(org_id)).as_posix()


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _disk_full(error: BaseException) -> bool:
    # ffmpeg reports the OS's own words in its message rather than an errno.
    if isinstance(error, OSError) and error.errno in _DISK_FULL:
        return True
    return any(os.strerror(code) in str(error) for code in _DISK_FULL)


@contextmanager
def disk_full_reported(what: str) -> Iterator[None]:
    """Raise a DiskFullError that says so when writing `what` fails for lack of space."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        if _disk_full(exc):
            raise DiskFullError(what) from exc
        raise


def _stage_json(path: Path, document: Any) -> Path:
    """Write JSON to a hidden temporary file beside `path` and fsync it; nothing is left if that fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def write_json_atomic(path: Path, document: Any) -> None:
    """Write JSON to a temporary file beside `path`, fsync it, then rename it into place."""
    with disk_full_reported(path.name):
        tmp = _stage_json(path, document)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: Path) -> Any:
    """Read a JSON document written by `write_json_atomic`."""
    return json.loads(path.read_text(encoding="utf-8"))


def staging_dir(final: Path) -> Path:
    """A fresh hidden folder beside `final` to fill before `swap_dir` puts it in place."""
    with disk_full_reported(final.name):
        final.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))


def swap_dir(staged: Path, final: Path) -> None:
    """Replace `final` by `staged` so readers see the old set or the new one, never a mix."""
    retired = None
    if final.exists():
        retired = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, retired)
    try:
        os.replace(staged, final)
    except BaseException:
        if retired is not None:
            os.replace(retired, final)
        raise
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def swap_dir_with_json(staged: Path, final: Path, path: Path, document: Any) -> None:
    """Put `staged` in place of `final` and `document` at `path`, the JSON written first: a full
    disk then fails before either changes, and only two renames remain."""
    with disk_full_reported(path.name):
        tmp = _stage_json(path, document)
    try:
        swap_dir(staged, final)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
