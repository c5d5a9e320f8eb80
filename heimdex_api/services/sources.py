"""Checks of client-given names and URIs, so that nothing outside an org's uploads is touched."""

from heimdex_api.core.errors import Unprocessable
from heimdex_api.services.media import source_not_found
from heimdex_pipeline.storage import InvalidKeyError, ObjectStore
from heimdex_pipeline.storage.layout import UPLOADS, org_uploads_prefix

MAX_NAME_BYTES = 255


def check_source_name(name: str) -> str:
    """`name` if it is a plain file name Heimdex can store as is; 422 otherwise."""
    problems = []
    if not name or name.strip() != name:
        problems.append("empty or padded with spaces")
    if any(c in name for c in "/\\\x00") or any(ord(c) < 32 or ord(c) == 127 for c in name):
        problems.append("holds a path separator, NUL or a control character")
    if name.startswith(("-", ".")):
        problems.append("starts with '-' or '.'")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        problems.append(f"longer than {MAX_NAME_BYTES} bytes")
    if problems:
        raise Unprocessable(f"source_name {'; '.join(problems)}", code="invalid_source_name")
    return name


def source_key(store: ObjectStore, uri: str, org_id: str, folder: str | None = None) -> str:
    """The key a client's `source_uri` names, which must lie in the org's uploads (and in `folder` of them
    when given: a commit's upload folder).

    `store.key_of` refuses any URI that is not one of the store's own (another scheme, host or
    bucket, `..`, odd bytes, a link pointing out), so only a key ever leaves this function: no
    client-given URL is fetched (no SSRF). 422 `invalid_source_uri` outside the upload area (where
    the OpenAPI document's pattern of `source_uri` ends) and, for a commit, outside the upload's
    folder; in another org's part of the area, 404 `source_not_found`, as for any other org's
    object, whatever is there.
    """
    try:
        key = store.key_of(uri)
    except InvalidKeyError as exc:
        raise Unprocessable(str(exc), code="invalid_source_uri") from None
    own = org_uploads_prefix(org_id)
    if key.startswith(f"{UPLOADS}/") and not key.startswith(own):
        raise source_not_found()
    if not key.startswith(folder or own):
        # Named without the server's paths: an error never tells where the storage is.
        raise Unprocessable("source_uri must name a file inside the org's uploads (for a commit, inside the "
                            "upload's own folder, where init's asset_uri points)", code="invalid_source_uri")
    return key
