"""Production by default, and never with a weak signing secret; run.sh's `.env` secret for the API and the CLI."""

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from heimdex_api.core.config import DEFAULT_JWT_SECRET, ApiSettings, get_api_settings
from heimdex_api.core.security import Tokens
from heimdex_api.main import create_app
from tests.api.support import SECRET, make_token

ROOT = Path(__file__).resolve().parents[2]
SECRET_SCRIPT = ROOT / "scripts" / "secrets.sh"
SIGNING_KEY = "k" * 32

# Each weak secret, by the algorithm it would sign: RFC 7518 §3.2 wants a key as long as the hash.
RANDOM = secrets.token_hex(32)  # 64 distinct-looking bytes, cut to each length
WEAK = [("", "HS256"), ("a", "HS256"), ("change-me", "HS256"), (RANDOM[:31], "HS256"), (RANDOM[:47], "HS384"),
        (RANDOM[:63], "HS512"), ("é" * 15, "HS256")]
STRONG = [(RANDOM[:32], "HS256"), (RANDOM[:48], "HS384"), (RANDOM[:64], "HS512"), ("é" * 16, "HS256")]


def _ids(cases: list[tuple[str, str]]) -> list[str]:
    return [f"{len(secret.encode())}-bytes-{algorithm}" for secret, algorithm in cases]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """No HEIMDEX_* variable and no .env: what a fresh shell sees; the variables a subprocess gets."""
    for key in list(os.environ):
        if key.startswith("HEIMDEX_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    get_api_settings.cache_clear()
    yield {key: value for key, value in os.environ.items() if not key.startswith("HEIMDEX_")}
    get_api_settings.cache_clear()


def test_production_is_the_default_and_refuses_the_default_secret(clean_env: dict[str, str]) -> None:
    assert ApiSettings.model_fields["env"].default == "production"
    with pytest.raises(ValidationError, match="HEIMDEX_JWT_SECRET is the default"):
        ApiSettings()
    with pytest.raises(ValidationError, match="HEIMDEX_JWT_SECRET"):
        create_app()


@pytest.mark.filterwarnings("ignore::jwt.InsecureKeyLengthWarning")
def test_development_is_asked_for_explicitly(clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEIMDEX_ENV", "development")
    settings = ApiSettings()
    assert settings.development
    assert Tokens(settings).principal(make_token("org-a", ttl_s=None, secret="change-me")).org_id == "org-a"


@pytest.mark.parametrize(("secret", "algorithm"), WEAK, ids=_ids(WEAK))
def test_production_refuses_to_start_with_a_weak_secret(clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                        secret: str, algorithm: str) -> None:
    monkeypatch.setenv("HEIMDEX_JWT_SECRET", secret)
    monkeypatch.setenv("HEIMDEX_JWT_ALGORITHM", algorithm)
    monkeypatch.setenv("HEIMDEX_URL_SIGNING_KEY", SIGNING_KEY)
    with pytest.raises(ValidationError, match="HEIMDEX_JWT_SECRET") as refused:
        create_app()
    # The message says what to do, and never shows the secret.
    assert "32 bytes for HS256" in str(refused.value)
    assert secret in ("", "a", DEFAULT_JWT_SECRET) or secret[:8] not in str(refused.value)


@pytest.mark.parametrize(("secret", "algorithm"), STRONG, ids=_ids(STRONG))
def test_production_starts_with_a_strong_secret(clean_env: dict[str, str], secret: str, algorithm: str) -> None:
    settings = ApiSettings(jwt_secret=secret, jwt_algorithm=algorithm, url_signing_key=SIGNING_KEY)
    assert not settings.development
    assert secret[:8] not in repr(settings) and SIGNING_KEY not in repr(settings)
    create_app(settings)


def _mint(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "heimdex_api.core.security", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize(("secret", "algorithm"), [WEAK[0], WEAK[2], WEAK[3]], ids=_ids([WEAK[0], WEAK[2], WEAK[3]]))
def test_the_minting_cli_refuses_a_weak_secret(clean_env: dict[str, str], tmp_path: Path, secret: str,
                                               algorithm: str) -> None:
    result = _mint(tmp_path, {**clean_env, "HEIMDEX_JWT_SECRET": secret, "HEIMDEX_JWT_ALGORITHM": algorithm})
    assert result.returncode != 0 and result.stdout == ""
    assert "HEIMDEX_JWT_SECRET" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_the_server_refuses_to_start_with_a_weak_secret(clean_env: dict[str, str], tmp_path: Path) -> None:
    env = {**clean_env, "HEIMDEX_JWT_SECRET": "short", "HEIMDEX_DERIVED_ROOT": str(tmp_path / "derived")}
    result = subprocess.run([sys.executable, "-m", "uvicorn", "heimdex_api.main:app", "--port", "0"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "HEIMDEX_JWT_SECRET is too short" in result.stderr


@pytest.mark.slow
def test_run_sh_secret_is_written_once_to_dotenv_and_read_by_the_api_and_the_cli(
        clean_env: dict[str, str], tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("POSTGRES_PASSWORD=pw")  # an operator's file, without a final newline, is kept
    subprocess.run(["bash", str(SECRET_SCRIPT), ".env"], cwd=tmp_path, env=clean_env, check=True)
    first = dotenv.read_text()
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    assert first.startswith("POSTGRES_PASSWORD=pw\nHEIMDEX_JWT_SECRET=")
    assert "\nHEIMDEX_URL_SIGNING_KEY=" in first
    subprocess.run(["bash", str(SECRET_SCRIPT), ".env"], cwd=tmp_path, env=clean_env, check=True)
    assert dotenv.read_text() == first, "a second run keeps the secret"

    settings = ApiSettings()  # production, from ./.env
    assert not settings.development and len(settings.jwt_secret.get_secret_value()) >= 64
    assert len(settings.url_signing_key.get_secret_value()) >= 64
    assert settings.url_signing_key != settings.jwt_secret
    minted = _mint(tmp_path, clean_env, "--org", "org-demo", "--scope", "admin")
    assert minted.returncode == 0, minted.stderr
    principal = Tokens(settings).principal(minted.stdout.strip())
    assert (principal.org_id, principal.scopes) == ("org-demo", frozenset({"admin"}))


@pytest.mark.slow
def test_run_sh_leaves_a_given_secret_alone(clean_env: dict[str, str], tmp_path: Path) -> None:
    given = {**clean_env, "HEIMDEX_JWT_SECRET": SECRET, "HEIMDEX_URL_SIGNING_KEY": SIGNING_KEY}
    subprocess.run(["bash", str(SECRET_SCRIPT), ".env"], cwd=tmp_path, env=given, check=True)
    assert not (tmp_path / ".env").exists()
    # Only the missing one is written.
    subprocess.run(["bash", str(SECRET_SCRIPT), ".env"], cwd=tmp_path, env={**clean_env, "HEIMDEX_JWT_SECRET": SECRET},
                   check=True)
    assert [line.split("=")[0] for line in (tmp_path / ".env").read_text().splitlines()] == ["HEIMDEX_URL_SIGNING_KEY"]


WEAK_KEYS = ["", "change-me", "k" * 31, "é" * 15]


@pytest.mark.parametrize("key", WEAK_KEYS, ids=[f"{len(k.encode())}-bytes" for k in WEAK_KEYS])
def test_production_refuses_a_weak_url_signing_key(clean_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                                   key: str) -> None:
    monkeypatch.setenv("HEIMDEX_JWT_SECRET", SECRET)
    monkeypatch.setenv("HEIMDEX_URL_SIGNING_KEY", key)
    with pytest.raises(ValidationError, match="HEIMDEX_URL_SIGNING_KEY") as refused:
        create_app()
    assert "at least 32 bytes" in str(refused.value)
    assert key in ("", "change-me") or key[:8] not in str(refused.value)
    monkeypatch.setenv("HEIMDEX_ENV", "development")
    assert ApiSettings().development


def test_run_sh_makes_the_secret_before_it_starts_anything() -> None:
    lines = (ROOT / "scripts" / "run.sh").read_text().splitlines()
    secret = next(i for i, line in enumerate(lines) if "secrets.sh" in line)
    assert secret < next(i for i, line in enumerate(lines) if "uvicorn" in line)
    assert ".env" in (ROOT / ".gitignore").read_text().split()
