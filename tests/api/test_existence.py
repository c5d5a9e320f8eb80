"""A job request on an asset the org does not hold answers alike whether the asset is unknown or another org's."""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Connection, Engine, event

from heimdex_api.core.config import ApiSettings
from tests.api.support import bearer, commit, make_token, place

UNKNOWN = "v_" + "5" * 32


def _victims_asset(client: TestClient, clip: Path) -> tuple[str, Path, str, dict[str, str]]:
    """Another org's committed clip (its asset id and path), and an intruding org with its token."""
    victim, intruder = f"org-a{uuid4().hex[:8]}", f"org-b{uuid4().hex[:8]}"
    victim_auth = bearer(make_token(victim))
    upload_id, path = place(client, victim_auth, victim, clip)
    return commit(client, victim_auth, victim, upload_id, path).json()["asset_id"], path, intruder, \
        bearer(make_token(intruder))


def test_unknown_and_foreign_assets_answer_alike(client: TestClient, clip: Path) -> None:
    foreign, path, intruder, intruder_auth = _victims_asset(client, clip)
    # The intruder holds the same file in its own uploads (its own asset id differs: ids are per org).
    _, own_copy = place(client, intruder_auth, intruder, clip)
    for kind in ("sidecar", "thumbnails"):
        for source_uri in (own_copy.as_uri(), path.as_uri(), own_copy.with_name("none.mp4").as_uri()):
            answers = [client.post(f"/v1/assets/{asset_id}/{kind}", headers=intruder_auth,
                                   json={"org_id": intruder, "source_uri": source_uri})
                       for asset_id in (foreign, UNKNOWN)]
            assert [(a.status_code, a.json()) for a in answers] == \
                [(404, {"error": "asset_not_found", "detail": "no such asset"})] * 2, source_uri


@dataclass
class Work:
    """What the process did for one request: the SQL statements it sent the catalog (their text, in order), and
    the files under `root` it opened and the programs it ran on them (Python's audit events), in order."""

    root: str
    statements: list[str] = field(default_factory=list)
    files: list[tuple] = field(default_factory=list)


_recording: list[Work] = []
_hooked: list[bool] = []


def _audit(event: str, args: tuple) -> None:
    if not _recording:
        return
    work = _recording[-1]
    if event == "open" and isinstance(args[0], str) and args[0].startswith(work.root):
        work.files.append(("open", args[0], args[1]))
    elif event == "subprocess.Popen" and any(work.root in str(arg) for arg in args[1]):
        work.files.append(("run", *map(str, args[1])))


@contextmanager
def recording(root: Path) -> Iterator[Work]:
    """Record the work of the process under `root` meanwhile."""
    if not _hooked:
        # For good (a hook cannot be removed), so once; it looks at nothing unless a Work is recorded.
        sys.addaudithook(_audit)
        _hooked.append(True)
    work = Work(str(root))

    def statement(connection: Connection, cursor: object, sql: str, *args: object) -> None:
        work.statements.append(sql)

    event.listen(Engine, "before_cursor_execute", statement)
    _recording.append(work)
    try:
        yield work
    finally:
        _recording.remove(work)
        event.remove(Engine, "before_cursor_execute", statement)


def test_unknown_and_foreign_assets_take_the_same_work(client: TestClient, clip: Path, settings: ApiSettings) -> None:
    # Answering a foreign asset before reading the caller's file would make it measurably faster: both must
    # send the same statements, read the caller's file and probe it alike, and answer the same bytes.
    foreign, _, intruder, intruder_auth = _victims_asset(client, clip)
    _, own_copy = place(client, intruder_auth, intruder, clip)

    def ask(asset_id: str) -> Response:
        return client.post(f"/v1/assets/{asset_id}/sidecar", headers=intruder_auth,
                           json={"org_id": intruder, "source_uri": own_copy.as_uri()})

    ask(foreign), ask(UNKNOWN)  # whatever is loaded or cached on first use is, for both
    answers, works = {}, {}
    for asset_id in (foreign, UNKNOWN):
        with recording(settings.derived_root) as works[asset_id]:
            answers[asset_id] = ask(asset_id)
    assert works[foreign] == works[UNKNOWN]
    assert works[foreign].statements, "the catalog was asked nothing"
    assert ("open", str(own_copy)) in [entry[:2] for entry in works[foreign].files], "the caller's file was not read"
    assert any(entry[0] == "run" and "ffprobe" in entry[1] for entry in works[foreign].files), "nor probed"
    first, second = answers[foreign], answers[UNKNOWN]
    assert first.status_code == second.status_code == 404
    assert (first.headers.raw, first.content) == (second.headers.raw, second.content)
