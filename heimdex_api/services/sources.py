"""Checks of client-given names and URIs, so that nothing outside an org's uploads is touched."""

from heimdex_api.core.errors import Unprocessable
from heimdex_pipeline.storage import InvalidKeyError, ObjectStore

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


def source_key(store: ObjectStore, uri: str, prefix: str) -> str:
    """The key a client's `source_uri` names, which must lie under `prefix`; 422 `invalid_source_uri` otherwise.

    `store.key_of` refuses any URI that is not one of the store's own (another scheme, host or
    bucket, `..`, odd bytes, a link pointing out), so only a key ever leaves this function: no
    client-given URL is fetched (no SSRF).
    """
    try:
        key = store.key_of(uri)
    except InvalidKeyError as exc:
        raise Unprocessable(str(exc), code="invalid_source_uri") from None
    if not key.startswith(prefix):
        # Named without the server's paths: an error never tells where the storage is.
        raise Unprocessable("source_uri must name a file inside the org's uploads (for a commit, inside the "
                            "upload's own folder, where init's asset_uri points)", code="invalid_source_uri")
    return key
