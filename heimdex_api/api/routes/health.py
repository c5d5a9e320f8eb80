"""Liveness, and the admin's check of the tools the pipeline needs."""

import importlib.util
from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import text

from heimdex_api.api.deps import InstanceDep, PrincipalDep, SessionDep, StoreDep
from heimdex_api.api.responses import error_responses
from heimdex_api.core.security import ADMIN
from heimdex_api.schemas import EnvCheckResponse, HealthResponse
from heimdex_pipeline.media.tools import FFMPEG, FFPROBE, tool_available
from heimdex_pipeline.storage import StorageUnavailableError

router = APIRouter(prefix="/v1", tags=["health"])


# A coroutine: answered on the event loop, never queued behind the routes that wait in worker threads.
@router.get("/health", response_model=HealthResponse)
async def health() -> dict[str, str]:
    """200 while the process serves requests; no auth."""
    return {"status": "ok", "time": datetime.now(UTC).isoformat()}


@router.get("/admin/env-check", response_model=EnvCheckResponse,
            responses=error_responses("env_check", validates=False))
def env_check(principal: PrincipalDep, session: SessionDep, store: StoreDep,
              instance: InstanceDep) -> dict[str, bool]:
    """Whether ffmpeg, ffprobe, PySceneDetect, the catalog, Dagster and the storage are usable."""
    principal.require(ADMIN)
    session.execute(text("SELECT 1"))
    try:
        store.check()
        storage_usable = True
    except StorageUnavailableError:
        storage_usable = False
    return {
        "ffmpeg": tool_available(FFMPEG),
        "ffprobe": tool_available(FFPROBE),
        "pyscenedetect": importlib.util.find_spec("scenedetect") is not None,
        "database": True,
        "dagster_instance": instance.get_run_records(limit=1) is not None,
        "derived_writable": storage_usable,
        "storage": storage_usable,
    }
