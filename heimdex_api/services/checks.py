"""What the asset checks of a video say: the newest outcome of each, as Dagster's "Checks" tab shows them."""

from typing import Any

from sqlalchemy.orm import Session

from heimdex_pipeline.assets.checks import VIDEO_CHECK_KEYS
from heimdex_pipeline.catalog.repository import check_outcomes


def check_summary(session: Session, asset_id: str) -> dict[str, Any]:
    """How many of the video's checks passed at their newest evaluation, and which failed and why.

    Read from the catalog, where each check keeps its outcome as it is evaluated (one indexed
    query beside the video's own). A check not evaluated yet is in neither; one the code no
    longer has is left out.
    """
    outcomes = check_outcomes(session, asset_id)
    passed, failed = 0, []
    for key in VIDEO_CHECK_KEYS:
        outcome = outcomes.get((key.asset_key.to_user_string(), key.name))
        if outcome is None:
            continue
        if outcome.passed:
            passed += 1
        else:
            failed.append({"asset": outcome.asset_key, "check": outcome.check_name,
                           "description": outcome.description})
    return {"passed": passed, "failed": failed}
