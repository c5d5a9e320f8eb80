"""Bearer tokens: HS256 JWTs carrying `org_id` and `scopes`; minting one from the command line."""

import argparse
import sys
import time
from dataclasses import dataclass

import jwt
from cachetools import LRUCache
from pydantic import ValidationError

from heimdex_api.core.config import ApiSettings, get_api_settings
from heimdex_api.core.errors import Forbidden, Unauthorized
from heimdex_pipeline.storage import check_org_id, is_org_id

ADMIN = "admin"
READ = "assets:read"
WRITE = "assets:write"
WEBHOOKS = "webhooks:write"


@dataclass(frozen=True)
class Principal:
    """Who calls: the org the token speaks for, and what it may do."""

    org_id: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        """403 unless the token holds `scope` (or `admin`, which may do everything)."""
        if scope not in self.scopes and ADMIN not in self.scopes:
            raise Forbidden(f"the token lacks the {scope!r} scope", code="missing_scope")

    def require_org(self, org_id: str) -> None:
        """403 when the request names another org than the token's (a reserved name is refused by the schemas)."""
        if org_id != self.org_id:
            raise Forbidden("the token is for another org", code="org_mismatch")


# Seconds past a token's expiry it is still taken: clocks of the minting and the serving host differ a little.
LEEWAY_S = 5
# Bytes of tokens kept verified (`Tokens`): tens of thousands of tokens of a few hundred bytes.
KEPT_TOKEN_BYTES = 16 * 1024 * 1024


def _verify(token: str, settings: ApiSettings) -> tuple[Principal, int | None]:
    """Verify a token's signature, algorithm and expiry (401 for anything wrong with it): its caller and expiry."""
    required = ["org_id"] if settings.development else ["org_id", "exp"]
    try:
        # Only the configured algorithm is accepted: `alg: none` and algorithm swaps fail here.
        claims = jwt.decode(token, settings.jwt_secret.get_secret_value(), algorithms=[settings.jwt_algorithm],
                            options={"require": required}, leeway=LEEWAY_S)
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired", code="token_expired") from None
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid token: {exc}", code="invalid_token") from None
    org_id, scopes = claims.get("org_id"), claims.get("scopes", settings.default_scopes)
    if not isinstance(org_id, str) or not is_org_id(org_id):
        raise Unauthorized("the token's org_id is not a valid org id", code="invalid_token")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise Unauthorized("the token's scopes must be a list of strings", code="invalid_token")
    # As PyJWT reads it: whole seconds.
    expires = claims.get("exp")
    return Principal(org_id=org_id, scopes=frozenset(scopes)), None if expires is None else int(expires)


class Tokens:
    """Tokens verified already, by their whole text, until they expire: a client sends the same token
    with every request, and verifying it again each time (base64, JSON, HMAC) was a tenth of the
    API's CPU under a crowd of readers (docs/benchmarks.md, "A crowd"). A token past its expiry
    is verified again, as if it were new. Used from the event loop only."""

    def __init__(self, settings: ApiSettings, max_bytes: int = KEPT_TOKEN_BYTES) -> None:
        self._settings = settings
        # Each entry counts its token's length (a request's head may be 64 KiB, HEIMDEX_MAX_HEADER_BYTES).
        self._kept: LRUCache[str, tuple[Principal, int | None, int]] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda kept: kept[2])

    def principal(self, token: str) -> Principal:
        """The caller `token` names; 401 for anything wrong with it."""
        kept = self._kept.get(token)
        if kept is not None and (kept[1] is None or time.time() < kept[1] + LEEWAY_S):
            return kept[0]
        principal, expires = _verify(token, self._settings)
        self._kept[token] = (principal, expires, len(token))  # without an expiry (development only): for good
        return principal


def mint_token(org_id: str, scopes: list[str] | None, settings: ApiSettings, ttl_s: int = 3600) -> str:
    """A signed token for `org_id`, expiring after `ttl_s` seconds."""
    claims: dict[str, object] = {"org_id": org_id, "exp": int(time.time()) + ttl_s}
    if scopes is not None:
        claims["scopes"] = scopes
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=settings.jwt_algorithm)


def main() -> None:
    """`python -m heimdex_api.core.security --org org-demo --scope admin`: print a token.

    It reads the API's settings (the environment, then `.env`), so it refuses a weak secret as the API does.
    """
    parser = argparse.ArgumentParser(description="Mint a Heimdex API token with HEIMDEX_JWT_SECRET.")
    parser.add_argument("--org", default="org-demo", type=_org_id)
    parser.add_argument("--scope", action="append", dest="scopes", help="repeat for several; default: read+write")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    args = parser.parse_args()
    try:
        settings = get_api_settings()
    except ValidationError as exc:
        sys.exit("heimdex: " + "; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors()))
    print(mint_token(args.org, args.scopes, settings, args.ttl))


def _org_id(value: str) -> str:
    try:
        return check_org_id(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


if __name__ == "__main__":
    main()
