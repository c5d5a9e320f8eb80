"""The storage layout: the keys of everything Heimdex stores, the same on every backend.

    uploads/<org_id>/...                        the upload bucket the sensor watches
    <org_id>/probes/<asset_id>.probe.json       probe metadata
    <org_id>/sidecars/<asset_id>.vna.json       the scene sidecar
    <org_id>/sidecars/<asset_id>.frames.npz     what the scene pass keeps of its frames for the
                                                storyboard and QC steps (an intermediate)
    <org_id>/thumbnails/<asset_id>/NNNN.jpg     thumbnails
    <org_id>/storyboards/<asset_id>/storyboard.jpg, .vtt, .json
                                                the storyboard: sprite, WebVTT track, geometry
    <org_id>/qc/<asset_id>.qc.json              the technical QC document
    schemas/sidecar.schema.json                 the sidecar's JSON Schema
    schemas/qc.schema.json                      the QC document's JSON Schema

A key is a `/`-separated relative path. The layout's own top-level names sit beside the org
folders, so no org may take them.
"""

import re

from heimdex_pipeline.storage.errors import InvalidKeyError

ORG_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
UPLOADS, SCHEMAS = "uploads", "schemas"
# Every name the layout uses at the top level, refused as org ids in any case, as a case-folding
# filesystem (macOS, a Windows bind mount) would confuse them.
RESERVED_ORG_IDS = frozenset({UPLOADS, SCHEMAS})
# The reserved names as a plain regex (no flags, no lookaround), so that a JSON Schema can say
# `"not": {"pattern": ...}` with the very rule the code applies.
RESERVED_ORG_ID_PATTERN = re.compile("^(?:%s)$" % "|".join(
    "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in name)
    for name in sorted(RESERVED_ORG_IDS)))

SIDECAR_SCHEMA_KEY = f"{SCHEMAS}/sidecar.schema.json"
QC_SCHEMA_KEY = f"{SCHEMAS}/qc.schema.json"
# S3's own limit on a key, and the usual filesystem limit on one name.
MAX_KEY_BYTES = 1024
MAX_SEGMENT_BYTES = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_org_id(value: str) -> bool:
    """Whether `value` may name an org: it matches ORG_ID_PATTERN and not RESERVED_ORG_ID_PATTERN."""
    return bool(ORG_ID_PATTERN.match(value)) and not RESERVED_ORG_ID_PATTERN.match(value)


def check_org_id(value: str) -> str:
    """`value` if it may name an org; ValueError otherwise (usable as a pydantic validator)."""
    if not is_org_id(value):
        reason = "is reserved by the storage layout" if ORG_ID_PATTERN.match(value) else "does not match ORG_ID_PATTERN"
        raise ValueError(f"org_id {value!r} {reason}")
    return value


def key_problem(key: str) -> str | None:
    """Why `key` is no key Heimdex stores or reads (None when it is one).

    Refused: empty, absolute or over-long keys, empty, `.` or `..` segments, backslashes,
    control characters and bytes that are not UTF-8. Both backends apply this one rule, so a
    key that is safe on S3 is safe as a path on disk.
    """
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    if not key or size > MAX_KEY_BYTES:
        return f"is empty or longer than {MAX_KEY_BYTES} bytes"
    if key.startswith("/") or "\\" in key or _CONTROL.search(key):
        return "is absolute or holds a backslash or a control character"
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            return "has an empty, '.' or '..' segment"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"has a segment longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def check_key(key: str) -> str:
    """`key` if it is a valid key (see `key_problem`); InvalidKeyError otherwise."""
    problem = key_problem(key)
    if problem:
        raise InvalidKeyError(f"storage key {problem}")
    return key


def upload_prefix(org_id: str, upload_id: str) -> str:
    """The folder an API upload reserves: `uploads/<org_id>/<upload_id>/`."""
    return f"{UPLOADS}/{check_org_id(org_id)}/{upload_id}/"


def org_uploads_prefix(org_id: str) -> str:
    """An org's part of the upload bucket: `uploads/<org_id>/`."""
    return f"{UPLOADS}/{check_org_id(org_id)}/"


def upload_org(key: str) -> str | None:
    """The org a key of the upload bucket belongs to (None for a key outside it or of no valid org)."""
    parts = key.split("/")
    if len(parts) < 3 or parts[0] != UPLOADS or not is_org_id(parts[1]):
        return None
    return parts[1]


def probe_key(org_id: str, asset_id: str) -> str:
    return f"{check_org_id(org_id)}/probes/{asset_id}.probe.json"


def sidecar_storage_key(asset_id: str) -> str:
    """The sidecar's `storage_key` in API answers: relative to the org's folder."""
    return f"sidecars/{asset_id}.vna.json"


def sidecar_key(org_id: str, asset_id: str) -> str:
    return f"{check_org_id(org_id)}/{sidecar_storage_key(asset_id)}"


def frames_key(org_id: str, asset_id: str) -> str:
    """The scene pass's frames intermediate (`media.frame_taps.SharedFrames`), beside the sidecar."""
    return f"{check_org_id(org_id)}/sidecars/{asset_id}.frames.npz"


def qc_storage_key(asset_id: str) -> str:
    """The QC document's `storage_key` in API answers: relative to the org's folder."""
    return f"qc/{asset_id}.qc.json"


def qc_key(org_id: str, asset_id: str) -> str:
    return f"{check_org_id(org_id)}/{qc_storage_key(asset_id)}"


def thumbnails_prefix(org_id: str, asset_id: str) -> str:
    """The folder of a video's thumbnails: `<org_id>/thumbnails/<asset_id>/`."""
    return f"{check_org_id(org_id)}/thumbnails/{asset_id}/"


def storyboard_storage_key(asset_id: str, name: str) -> str:
    """A storyboard file's `storage_key` (`name`: storyboard.jpg, .vtt or .json), relative to the org's folder."""
    return f"storyboards/{asset_id}/{name}"


def storyboard_prefix(org_id: str, asset_id: str) -> str:
    """The folder of a video's storyboard: `<org_id>/storyboards/<asset_id>/`."""
    return f"{check_org_id(org_id)}/{storyboard_storage_key(asset_id, '')}"


def org_key(org_id: str, storage_key: str) -> str:
    """The full key of a `storage_key` (relative to the org's folder, as API answers give it)."""
    return check_key(f"{check_org_id(org_id)}/{storage_key}")


def storage_key_of(org_id: str, key: str) -> str:
    """A key's `storage_key`: the key relative to the org's folder."""
    prefix = f"{check_org_id(org_id)}/"
    if not key.startswith(prefix):
        raise InvalidKeyError(f"key is not in the folder of org {org_id}")
    return key[len(prefix):]
