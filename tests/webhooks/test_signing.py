"""`Heimdex-Signature`: made by the sender, checked by a receiver, and the README's receiver check works."""

import hashlib
import hmac
import re
import time
from pathlib import Path

from heimdex_pipeline.webhooks.signing import new_secret, sign, verify

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_signature_is_the_documented_hmac() -> None:
    secret, body = new_secret(), b'{"id":"evt_1","type":"asset.ready"}'
    header = sign(secret, body, timestamp=1_700_000_000)
    expected = hmac.new(secret.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    # While a rotated secret's predecessor still signs: one `v1` for each, the current secret's first.
    previous = new_secret()
    expected_previous = hmac.new(previous.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign([secret, previous], body, timestamp=1_700_000_000) == \
        f"t=1700000000,v1={expected},v1={expected_previous}"
    assert secret.startswith("whsec_") and len(secret) > 40 and new_secret() != secret


def test_verify_refuses_a_change_an_old_timestamp_and_another_secret() -> None:
    secret, body = new_secret(), b'{"id":"evt_1"}'
    now = time.time()
    header = sign(secret, body, timestamp=int(now))
    assert verify(secret, header, body, now=now)
    assert not verify(secret, header, body + b" ", now=now)
    assert not verify(new_secret(), header, body, now=now)
    assert not verify(secret, header, body, now=now + 301), "older than the 5-minute tolerance"
    assert not verify(secret, header.replace("t=", "t=1"), body, now=now)
    assert not verify(secret, "v1=" + header.partition("v1=")[2], body, now=now)
    assert not verify(secret, "garbage", body, now=now)
    # During a secret's rollover a receiver may get two signatures: either one verifies.
    assert verify(secret, f"{header},v1={'0' * 64}", body, now=now)


def test_the_readme_receiver_check_accepts_a_signed_body_and_refuses_others() -> None:
    """The README's Python receiver check, run as written, on what the sender signs."""
    code = re.search(r"```python\n(# Checking a Heimdex webhook.*?)```", README.read_text(), re.S)
    assert code, "README: the receiver's signature check is missing"
    namespace: dict = {}
    exec(code.group(1), namespace)  # noqa: S102 (the README's own code)
    check = namespace["verify_heimdex_signature"]
    secret, body = new_secret(), b'{"id":"evt_1","type":"job.failed"}'
    assert check(secret, sign(secret, body), body)
    assert not check(secret, sign(secret, body), body.replace(b"failed", b"succeeded"))
    assert not check(secret, sign(secret, body, timestamp=int(time.time()) - 600), body)
