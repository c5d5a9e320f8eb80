"""The OpenAPI document tells the truth: schemathesis, every check, over the whole document, in-process
and against a served API as a user runs it.

A fixed seed and example count keep the runs short and repeatable; a longer run against a real
server is one command (README, "The OpenAPI document").
"""

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import jsonschema_rs
import pytest
import schemathesis
import schemathesis.engine
from dagster import DagsterInstance
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.engine import events

import tests.api.openapi_checks  # noqa: F401  (registers the Heimdex check)
from heimdex_api.api.params import RUN_ID_PATTERN
from heimdex_api.api.responses import ROUTE_ERRORS, UNAUTHORIZED, route_errors
from heimdex_api.core.config import ApiSettings
from heimdex_api.main import create_app
from heimdex_api.schemas import (
    SOURCE_NAME_BYTES,
    SOURCE_NAME_PATTERN,
    UPLOAD_ID_PATTERN,
    source_uri_schema,
    webhook_url_schema,
)
from heimdex_api.services.sources import check_source_name
from heimdex_pipeline.media.fingerprint import ASSET_ID_PATTERN
from heimdex_pipeline.storage import RESERVED_ORG_ID_PATTERN, LocalStore
from heimdex_pipeline.storage.layout import UPLOADS
from heimdex_pipeline.storage.s3 import S3Store
from heimdex_pipeline.webhooks.addresses import parse_url
from tests.api.live import api_server
from tests.api.support import SECRET, bearer, make_token

REPO_ROOT = Path(__file__).resolve().parents[2]
# The answers that are no JSON document: a storyboard's track and sprite, as players and browsers take them.
NOT_JSON = {"/v1/assets/{asset_id}/storyboard.vtt": "text/vtt", "/v1/assets/{asset_id}/storyboard.jpg": "image/jpeg",
            "/v1/assets/{asset_id}/scenes.csv": "text/csv", "/v1/assets/{asset_id}/scenes.edl": "text/plain",
            "/v1/assets/{asset_id}/scenes.otio": "application/json"}
SEED, MAX_EXAMPLES = 1, 12


def _app(tmp_path: Path, sqlite_url: str, instance: DagsterInstance, legacy: bool) -> FastAPI:
    settings = ApiSettings(derived_root=tmp_path / "derived", database_url=sqlite_url, jwt_secret=SECRET,
                           env="development", job_queue_backend="immediate", migrate_on_start=False,
                           enable_legacy=legacy)
    return create_app(settings, instance=instance)


def _run(schema: schemathesis.BaseSchema) -> tuple[set[str], int]:
    """Run every phase of `schemathesis run` over the schema; answer its unique failures and errors, and its cases."""
    problems: set[str] = set()
    cases = 0
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished | events.FuzzScenarioFinished):
            cases += len(event.recorder.cases)
            problems |= {f"{event.recorder.label}: {check.failure_info.failure.title}: "
                         f"{check.failure_info.failure.message}\n{check.failure_info.code_sample}"
                         for checks in event.recorder.checks.values() for check in checks
                         if check.failure_info is not None}
        elif isinstance(event, events.NonFatalError):
            problems.add(f"{event.label}: error: {event.value!r}")
        elif isinstance(event, events.FatalError):
            problems.add(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            problems |= {f"{f.operation}: {f.title}: {f.message}" for f in event.failures}
    return problems, cases


@pytest.mark.parametrize("legacy", [False, True], ids=["legacy-off", "legacy-on"])
def test_the_api_answers_as_documented(tmp_path: Path, sqlite_url: str, dagster_instance: DagsterInstance, org: str,
                                       legacy: bool) -> None:
    """Every check of schemathesis.toml (all of them), as an admin of a test org: no failure.

    With `HEIMDEX_ENABLE_LEGACY` the app only gains the legacy router: every other operation is the same
    route under the same document (asserted here), which the legacy-off run has just tested. So the
    legacy-on run tests what legacy adds; testing the rest twice cost minutes of schemathesis's coverage
    phase and could find nothing the other run does not.

    The legacy-off run leaves out the coverage phase (about 100 s of CPU here): the served run below
    goes through the same operations in it with schemathesis's stricter defaults, which fail every 422
    to a valid request where the Heimdex check fails only `validation_error`. The legacy-on run keeps
    it, as the served run has no legacy routes.
    """
    project: dict[str, Any] = tomllib.loads((REPO_ROOT / "schemathesis.toml").read_text())
    project.pop("hooks")  # imported above
    project.update(seed=SEED, headers=bearer(make_token(org, ["admin"])), generation={"max-examples": MAX_EXAMPLES})
    if not legacy:
        project["phases"] = {"coverage": {"enabled": False}}
    config = schemathesis.Config.from_dict(project)
    config.projects.default.checks.update(included_check_names=["all"])
    app = _app(tmp_path, sqlite_url, dagster_instance, legacy)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    if legacy:
        document, plain = app.openapi(), _app(tmp_path, sqlite_url, dagster_instance, legacy=False).openapi()
        added = sorted(set(document["paths"]) - set(plain["paths"]))
        assert added and {path: document["paths"][path] for path in plain["paths"]} == plain["paths"]
        schemas = document["components"]["schemas"]
        assert {name: schemas[name] for name in plain["components"]["schemas"]} == plain["components"]["schemas"]
        schema = schema.include(path=added)
    problems, cases = _run(schema)
    assert cases > (10 if legacy else 100)
    assert not problems, "\n\n".join(sorted(problems))


def test_a_user_running_schemathesis_against_the_served_api_sees_no_failure(tmp_path: Path, sqlite_url: str,
                                                                          org: str) -> None:
    """The README's command, as a user runs it: `uvicorn heimdex_api.main:app` in production mode on a port
    of 127.0.0.1, a token from `python -m heimdex_api.core.security`, and `schemathesis run --checks all`
    from a folder without the repository's schemathesis.toml, so that its default expectations judge:
    what the document calls invalid answers 4xx but 413, what it calls valid answers no 422.

    Seed 1 and 25 examples per operation: about 2,100 cases, some 30 s of schemathesis on 2 cores. Most of its
    CPU is the coverage phase, which cannot go: run against the API before issue 19's fixes (60deff7^), the
    coverage phase alone found all three of its failures (content_length 53687091201 answered 413, source_uri
    "file:///" and webhook url "0" answered 422), while examples, fuzzing and stateful at 25 examples found
    the last two only.
    """
    server = {"env": "production", "jwt_secret": SECRET, "url_signing_key": "u" * 32}
    with api_server(tmp_path / "home", tmp_path / "derived", sqlite_url, **server) as url:
        environment = {"PATH": os.environ["PATH"], **{f"HEIMDEX_{k.upper()}": v for k, v in server.items()}}
        token = subprocess.run([sys.executable, "-m", "heimdex_api.core.security", "--org", org, "--scope", "admin"],
                               cwd=tmp_path, env={**environment, "PYTHONPATH": str(REPO_ROOT)}, check=True,
                               capture_output=True, text=True, timeout=60).stdout.strip()
        run = subprocess.run([str(Path(sys.executable).with_name("schemathesis")), "run", f"{url}/openapi.json",
                              "--checks", "all", "-H", f"Authorization: Bearer {token}",
                              "--max-examples", "25", "--seed", "1", "--no-color"],
                             cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    report = run.stdout + run.stderr
    assert "Configuration:" not in report  # no schemathesis.toml was read: its defaults judge
    cases = re.search(r"(\d+) generated", report)
    assert run.returncode == 0 and cases and int(cases.group(1)) > 1000, report


def _document(make_client: Callable[..., TestClient], settings: ApiSettings, **changes: Any) -> dict[str, Any]:
    return make_client(settings.model_copy(update=changes)).get("/openapi.json").json()


@pytest.mark.parametrize("legacy", [False, True], ids=["legacy-off", "legacy-on"])
def test_every_error_is_documented_with_the_real_shape(make_client: Callable[..., TestClient], settings: ApiSettings,
                                                        legacy: bool) -> None:
    document = _document(make_client, settings, enable_legacy=legacy)
    assert ("/metadata" in document["paths"]) is legacy
    assert not {"HTTPValidationError", "ValidationError"} & set(document["components"]["schemas"])
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if status == "204":  # no content: a deletion
                    assert "content" not in answer, (method, path)
                    continue
                if int(status) < 400:
                    if path in NOT_JSON:
                        assert list(answer["content"]) == [NOT_JSON[path]], (method, path, status)
                    else:
                        assert "$ref" in answer["content"]["application/json"]["schema"], (method, path, status)
                    continue
                model = _resolve(document, answer["content"]["application/json"]["schema"])
                assert model["required"] == ["error", "detail"] and model["properties"]["error"]["enum"]
            if operation.get("security"):
                assert _codes(document, operation, "401") == list(UNAUTHORIZED), (method, path)
                assert "missing_scope" in _codes(document, operation, "403"), (method, path)


def test_codes_are_listed_per_route(make_client: Callable[..., TestClient], settings: ApiSettings) -> None:
    document = _document(make_client, settings)
    paths = document["paths"]
    commit, job = paths["/v1/ingest/commit"]["post"], paths["/v1/assets/{asset_id}/sidecar"]["post"]
    assert _codes(document, commit, "409") == ["upload_already_committed", "upload_incomplete", "asset_busy"]
    assert {"unsupported_format", "media_limit_exceeded", "validation_error"} <= set(_codes(document, commit, "422"))
    assert _codes(document, job, "409") == ["idempotency_conflict", "idempotency_in_progress", "asset_busy"]
    assert set(_codes(document, job, "503")) == {"dagster_unavailable", "media_unavailable", "database_unavailable",
                                                 "storage_unavailable", "storage_bucket_missing",
                                                 "storage_access_denied"}
    assert _codes(document, paths["/v1/ingest/init"]["post"], "413") == ["payload_too_large"]
    assert "upload_too_large" in _codes(document, paths["/v1/ingest/init"]["post"], "422")
    assert _codes(document, paths["/v1/jobs/{job_id}"]["get"], "404") == ["job_not_found"]


def test_every_code_the_code_raises_is_documented() -> None:
    """Each `code="..."` in heimdex_api belongs to some route's table (a new code must be documented)."""
    raised = {code for source in (REPO_ROOT / "heimdex_api").rglob("*.py")
              for code in re.findall(r'code="([a-z_]+)"', source.read_text())}
    documented = {code for route in ROUTE_ERRORS for codes in route_errors(route).values() for code in codes}
    assert raised and raised <= documented


def test_constraints_the_code_enforces_are_in_the_schema(make_client: Callable[..., TestClient],
                                                         settings: ApiSettings) -> None:
    document = _document(make_client, settings, max_upload_bytes=1000)
    schemas = document["components"]["schemas"]
    assert schemas["InitRequest"]["properties"]["content_length"]["maximum"] == 1000
    assert schemas["InitRequest"]["properties"]["source_name"]["pattern"] == SOURCE_NAME_PATTERN
    uploads = (settings.derived_root.resolve() / "uploads").as_uri()
    for name in ("CommitRequest", "SourceRequest", "ThumbnailsRequest"):
        source_uri = schemas[name]["properties"]["source_uri"]
        assert source_uri == {**source_uri, **source_uri_schema(uploads)} and "maxLength" not in source_uri
    pattern = re.compile(source_uri["pattern"])
    assert pattern.match(f"{uploads}/org-a/up_1/vid%C3%A9o.mp4") and pattern.match(f"{uploads}/org-b/.a")
    assert not any(pattern.match(uri) for uri in ("file:///", f"{uploads}/org-a/", f"{uploads}/org-a/../a",
                                                  f"{uploads}/org-a/%2e%2e/a", f"{uploads}/org-a/a%00",
                                                  f"{uploads}/org-a/{'a' * 256}", "file:///etc/passwd",
                                                  f"{uploads}/org-a{('/' + 'a' * 255) * 4}"))  # a key past 1024 bytes
    assert schemas["InitRequest"]["properties"]["source_name"]["anyOf"] == SOURCE_NAME_BYTES
    assert {k: v for k, v in schemas["WebhookCreate"]["properties"]["url"].items()
            if k in ("format", "pattern", "not")} == webhook_url_schema(allow_private=False)
    assert schemas["SourceRequest"]["properties"]["org_id"]["not"] == {"pattern": RESERVED_ORG_ID_PATTERN.pattern}
    assert schemas["CommitRequest"]["properties"]["upload_id"]["pattern"] == UPLOAD_ID_PATTERN.pattern
    policy = schemas["ThumbnailPolicyIn"]["properties"]
    assert [_bounds(policy[name]) for name in ("interval_s", "max_count", "max_height")] == \
        [(0, 86_400), (1, 50), (64, 2160)]
    job_start = document["paths"]["/v1/assets/{asset_id}/sidecar"]["post"]
    parameters = {p["name"]: p["schema"] for p in job_start["parameters"]}
    assert parameters["asset_id"]["pattern"] == ASSET_ID_PATTERN.pattern
    assert (parameters["Idempotency-Key"]["minLength"], parameters["Idempotency-Key"]["maxLength"]) == (1, 255)
    job = document["paths"]["/v1/jobs/{job_id}"]["get"]
    assert job["parameters"][0]["schema"]["pattern"] == RUN_ID_PATTERN.pattern
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            status, success = next(item for item in operation["responses"].items() if item[0].startswith("2"))
            if status != "204" and path not in NOT_JSON:
                assert success["content"]["application/json"]["schema"].get("$ref"), (method, path)


@pytest.mark.parametrize("allow_private", [False, True], ids=["public-only", "private-allowed"])
def test_a_webhook_url_the_document_allows_is_registered(allow_private: bool) -> None:
    """Every URL the pattern allows, `parse_url` takes: no 422 for a URL the document calls valid. Numeric hosts,
    which the resolver reads as addresses, and IPv6 literals are outside it."""
    schema = webhook_url_schema(allow_private)
    valid = jsonschema_rs.validator_for({"type": "string", **schema}, validate_formats=True)

    @hypothesis.settings(max_examples=300, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(hypothesis.strategies.from_regex(schema["pattern"], fullmatch=True))
    def registered(url: str) -> None:
        if valid.is_valid(url):
            parse_url(url, allow_private)

    registered()
    for url in ("0", "http://0/", "http://2130706433/", "http://127.1/", "http://0x7f.1/", "http://127.0.0.1./",
                "http://[::ffff:127.0.0.1]/", "http://[64:ff9b::7f00:1]/", "http://user@hooks.example.com/",
                "http://hooks.example.com:0/", "ftp://hooks.example.com/"):
        assert not valid.is_valid(url), url
    assert valid.is_valid("https://hooks.example.com:8443/heimdex?x=1#y")
    assert valid.is_valid("http://127.0.0.1:8000/hook") is valid.is_valid("http://localhost/") is allow_private


@pytest.mark.parametrize("storage", ["local", "s3"])
def test_a_source_uri_the_document_allows_names_a_key_in_the_uploads(tmp_path: Path, storage: str) -> None:
    """Every URI the pattern allows, the store reads as a key of the upload area (then 404 or the file's answer),
    never refusing it as `invalid_source_uri`."""
    store = (LocalStore(tmp_path) if storage == "local"
             else S3Store("bucket", endpoint_url="http://127.0.0.1:9", prefix="heimdex/", region="us-east-1"))
    schema = source_uri_schema(store.uri(UPLOADS))
    valid = jsonschema_rs.validator_for({"type": "string", **schema}, validate_formats=True)

    @hypothesis.settings(max_examples=300, deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(hypothesis.strategies.from_regex(schema["pattern"], fullmatch=True))
    def read(uri: str) -> None:
        if valid.is_valid(uri):
            assert store.key_of(uri).startswith(f"{UPLOADS}/")

    read()


def test_a_source_name_the_document_allows_is_taken() -> None:
    schema = {"type": "string", "pattern": SOURCE_NAME_PATTERN, "anyOf": SOURCE_NAME_BYTES}
    valid = jsonschema_rs.validator_for(schema)

    @hypothesis.settings(max_examples=500, deadline=None)
    @hypothesis.given(hypothesis.strategies.text(min_size=1, max_size=300))
    def taken(name: str) -> None:
        if valid.is_valid(name):
            check_source_name(name)

    taken()
    assert valid.is_valid("a" * 255) and valid.is_valid("é" * 127) and valid.is_valid("😀" * 63)
    assert not any(valid.is_valid(name) for name in ("a" * 256, "é" * 128, "😀" * 64))


def test_the_schemas_agree_with_the_code(client: TestClient, org: str) -> None:
    """What the schema allows is taken (12.0 is an integer), what it refuses is refused (a reserved org)."""
    admin = bearer(make_token(org, ["admin"]))
    body = {"org_id": org, "source_name": "a.mp4", "content_type": "video/mp4"}
    assert client.post("/v1/ingest/init", headers=admin, json={**body, "content_length": 5.0}).status_code == 201
    reserved = client.post("/v1/ingest/init", headers=bearer(make_token("uploads", ["admin"])),
                           json={**body, "org_id": "uploads", "content_length": 5})
    assert reserved.status_code in {401, 422}
    garbled = client.post("/v1/ingest/probe", headers={**admin, "Content-Type": "application/json"},
                          content=b"zr\xff[E")
    assert (garbled.status_code, garbled.json()["error"]) == (400, "invalid_body")
    allowed = client.request("OPTIONS", "/v1/assets/v_00000000000000000000000000000000/sidecar", headers=admin)
    assert allowed.status_code == 405 and allowed.headers["allow"] == "GET, POST"


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]


def _codes(document: dict[str, Any], operation: dict[str, Any], status: str) -> list[str]:
    schema = operation["responses"][status]["content"]["application/json"]["schema"]
    return _resolve(document, schema)["properties"]["error"]["enum"]


def _bounds(schema: dict[str, Any]) -> tuple[float, float]:
    inner = next(s for s in schema["anyOf"] if s["type"] != "null")
    return inner["minimum"], inner["maximum"]
