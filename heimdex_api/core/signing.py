"""Signed URLs the API serves itself: uploads (PUT and tus) and downloads on local storage.

A URL is signed for one purpose, one org, one subject (an upload id or a storage key) and one
expiry: `?expires=<unix seconds>&sig=<hex HMAC-SHA256>` over all four. Changing any of them,
or any byte of the signature, answers 403; so does a URL past its expiry.
"""

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Literal

from heimdex_api.core.config import ApiSettings
from heimdex_api.core.errors import Forbidden

Purpose = Literal["upload", "download"]


@dataclass(frozen=True)
class UrlSigner:
    """Signs and checks the query of the API's own URLs with the settings' `url_signing_key`."""

    key: bytes

    def _mac(self, purpose: Purpose, org_id: str, subject: str, expires: int) -> str:
        # NUL cannot occur in any of the four, so no two tuples give the same message.
        # surrogatepass: a path segment of a request may hold lone surrogates, which must fail the check, not crash it.
        message = "\x00".join((purpose, org_id, subject, str(expires))).encode("utf-8", "surrogatepass")
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()

    def sign(self, purpose: Purpose, org_id: str, subject: str, expires: int) -> dict[str, str]:
        """The query parameters that make a URL for `subject` valid until `expires` (unix seconds)."""
        return {"expires": str(expires), "sig": self._mac(purpose, org_id, subject, expires)}

    def verify(self, purpose: Purpose, org_id: str, subject: str, expires: str | None, sig: str | None) -> None:
        """403 unless `expires` and `sig` are what `sign` gave for these, and the expiry has not passed."""
        if not expires or not sig or not (expires.isascii() and expires.isdigit()):
            raise Forbidden("the URL is not signed", code="url_signature_invalid")
        # compare_digest takes ASCII strings only; a signature is hex.
        if not sig.isascii() or not hmac.compare_digest(self._mac(purpose, org_id, subject, int(expires)), sig):
            raise Forbidden("the URL's signature does not match it", code="url_signature_invalid")
        if int(expires) < time.time():
            raise Forbidden("the URL has expired: call init again for a new one", code="url_expired")


def url_signer(settings: ApiSettings) -> UrlSigner:
    """The signer of the API's own URLs, with the settings' `url_signing_key`."""
    return UrlSigner(settings.url_signing_key.get_secret_value().encode("utf-8"))
