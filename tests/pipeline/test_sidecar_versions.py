"""Sidecar 1.1 adds each scene's `transition` and nothing else: it validates against its published schema, a
reader of 1.0 finds every field it knows as it was, and this code reads 1.0 documents.

`sidecar-1.0.schema.json` is the schema 1.0 published (`sidecar_json_schema()` before 1.1), kept as written.
"""

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from heimdex_pipeline.outputs.sidecar import SCHEMA_VERSION, Sidecar, sidecar_json_schema

SCHEMA_1_0 = json.loads((Path(__file__).parent / "sidecar-1.0.schema.json").read_text())


def _document(**changes: Any) -> dict[str, Any]:
    """A sidecar of two scenes, the second beginning with a dissolve, as the sidecar step writes it."""
    return Sidecar(
        asset_id="v_" + "0" * 32, org_id="org-demo",
        source={"uri": "file:///media/a.mp4", "filename": "a.mp4", "size_bytes": 10, "hash": "0" * 64,
                "hash_quality": "strong"},
        probe={"duration_s": 4.0, "width": 320, "height": 180, "fps": 25.0, "codec": "h264", "rotation": 0,
               "streams": []},
        scenes=[{"index": 0, "start_s": 0.0, "end_s": 2.0, "start_frame": 0, "end_frame": 50},
                {"index": 1, "start_s": 2.0, "end_s": 4.0, "start_frame": 50, "end_frame": 100,
                 "transition": {"kind": "dissolve", "start_frame": 44, "end_frame": 55, "start_s": 1.76,
                                "end_s": 2.24}}],
        detector={"name": "HeimdexShotDetector", "version": "1", "parameters": {"kind": "heimdex"}},
        **changes,
    ).model_dump(mode="json")


def _errors(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    return sorted(error.json_path for error in Draft202012Validator(schema).iter_errors(document))


def test_the_transition_block_validates_against_the_published_schema() -> None:
    document = _document()
    assert document["schema_version"] == SCHEMA_VERSION == "1.1"
    assert "transition" not in document["scenes"][0]  # the first scene begins with no boundary
    assert _errors(sidecar_json_schema(), document) == []
    for wrong in ({"kind": "crossfade"}, {"start_frame": -1}):
        broken = json.loads(json.dumps(document))
        broken["scenes"][1]["transition"].update(wrong)
        assert _errors(sidecar_json_schema(), broken), wrong


def test_a_reader_of_1_0_reads_a_1_1_sidecar() -> None:
    document = _document()
    # The version is the one thing 1.0 does not know; every field it reads is there, as it was.
    assert _errors(SCHEMA_1_0, document) == ["$.schema_version"]
    assert _errors(SCHEMA_1_0, {**document, "schema_version": "1.0"}) == []
    scene = document["scenes"][1]
    assert {key: scene[key] for key in SCHEMA_1_0["$defs"]["SidecarScene"]["required"]} == {
        "index": 1, "start_s": 2.0, "end_s": 4.0, "start_frame": 50, "end_frame": 100}


def test_a_1_0_sidecar_is_still_read() -> None:
    document = _document()
    del document["scenes"][1]["transition"]
    document["schema_version"] = "1.0"
    assert _errors(sidecar_json_schema(), document) == []
    read = Sidecar.model_validate(document)
    assert read.schema_version == "1.0" and read.scenes[1].transition is None
    # Written back, its scenes are as 1.0 wrote them: no `transition` key where none is known.
    assert read.model_dump(mode="json")["scenes"] == document["scenes"]
