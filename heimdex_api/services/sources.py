"""Checks of client-given names and URIs, so that nothing outside an org's uploads is touched."""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from heimdex_api.core.errors import Unprocessable

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


def resolve_source_uri(uri: str, root: Path) -> Path:
    """The real path a `file://` URI names, which must lie strictly inside `root`; 422 otherwise.

    The URI is percent-decoded, then resolved with symlinks followed, so `..`, `%2e%2e`, other
    hosts, other schemes (`http:`, `concat:`, `data:`...) and links pointing out are all refused.
    Only a local path ever leaves this function: no client-given URL is fetched (no SSRF).
    """
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise Unprocessable("source_uri must be a file:// URI", code="invalid_source_uri")
    if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
        raise Unprocessable("source_uri must name a local file, without host, query or fragment",
                            code="invalid_source_uri")
    path = unquote(parts.path)
    if "\x00" in path or not path.startswith("/") or ".." in Path(path).parts:
        raise Unprocessable("source_uri must be an absolute path without '..'", code="invalid_source_uri")
    real, real_root = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    if real == real_root or not real.is_relative_to(real_root):
        # Named without the server's paths: an error never tells where the derived root is.
        raise Unprocessable("source_uri must name a file inside the org's uploads (for a commit, inside the "
                            "upload's own folder, where init's asset_uri points)", code="invalid_source_uri")
    if any(len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for part in real.parts):
        raise Unprocessable(f"source_uri has a path segment longer than {MAX_NAME_BYTES} bytes",
                            code="invalid_source_uri")
    return real
