"""The technical QC document (`<asset_id>.qc.json`) and its JSON Schema."""

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from heimdex_pipeline.media.qc import QcReport
from heimdex_pipeline.outputs.sidecar import published_schema

# 1.1 adds, all optional: `pictures` (where black and freeze were measured), `interlacing.sampled_windows`,
# and `heimdex` as a measuring library (the scene pass's frames read with an FFmpeg filter's rule).
SCHEMA_VERSION = "1.1"


class QcDocument(QcReport):
    """The technical QC of one video, as stored: what `measure_qc` found, and whose video it is."""

    schema_version: Literal["1.0", "1.1"] = SCHEMA_VERSION
    asset_id: str
    org_id: str
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def qc_json_schema() -> dict[str, Any]:
    """The JSON Schema of the QC document, as written to `<derived>/schemas/qc.schema.json`."""
    return published_schema(QcDocument, "qc", SCHEMA_VERSION)
