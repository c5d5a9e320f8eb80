"""`POST /metadata`: the earlier service's probe of an uploaded file, behind HEIMDEX_ENABLE_LEGACY."""

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile

from heimdex_api.api.deps import PrincipalDep, SettingsDep
from heimdex_api.api.responses import error_responses
from heimdex_api.core.errors import Unprocessable
from heimdex_api.core.security import READ
from heimdex_api.schemas import MetadataResponse
from heimdex_api.services.media import probe_for_client
from heimdex_pipeline.media.limits import limits_from

router = APIRouter(tags=["legacy"])


@router.post("/metadata", response_model=MetadataResponse, responses=error_responses("metadata"))
def metadata(file: Annotated[UploadFile, File()], principal: PrincipalDep, settings: SettingsDep) -> dict[str, Any]:
    """The probe document of the uploaded file, with its `filename`; the file is not kept."""
    principal.require(READ)
    with tempfile.TemporaryDirectory(prefix="heimdex-legacy-") as folder:
        path = Path(folder) / "upload"
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out)
        if path.stat().st_size == 0:
            raise Unprocessable("the uploaded file is empty", code="empty_source")
        # Errors name the temporary file by its name, "upload", never by the client's name or a path.
        probe = probe_for_client(path, limits_from(settings))
    return {**probe, "filename": file.filename}
