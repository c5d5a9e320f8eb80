"""Dependencies of the routes, as `Annotated` aliases so that signatures read plainly.

They are coroutines, except the catalog session's: FastAPI runs each plain function dependency in
a worker thread, one thread hand-over per dependency and request. What may block (making the
Dagster instance or the store on first use) goes to a thread in `Runtime.made`.
"""

from collections.abc import Iterator
from typing import Annotated

from dagster import DagsterInstance
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from heimdex_api.core.config import ApiSettings
from heimdex_api.core.errors import Unauthorized
from heimdex_api.core.security import Principal
from heimdex_api.core.signing import url_signer
from heimdex_api.services.launchers import JobLauncher
from heimdex_api.services.urls import DownloadUrls
from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.storage import ObjectStore


async def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


def get_db(settings: SettingsDep) -> Iterator[Session]:
    with session_scope(settings.catalog_url) as session:
        yield session


async def get_store(request: Request) -> ObjectStore:
    return await request.app.state.runtime.made("store")


async def get_download_urls(request: Request, settings: SettingsDep,
                            store: Annotated[ObjectStore, Depends(get_store)]) -> DownloadUrls:
    """The `url` builder of this request's answers: absolute URLs on HEIMDEX_PUBLIC_URL, else the request's base."""
    return DownloadUrls(store, url_signer(settings), settings.base_url(str(request.base_url)),
                        settings.download_url_ttl_s)


async def get_instance(request: Request) -> DagsterInstance:
    return await request.app.state.runtime.made("instance")


async def get_launcher(request: Request) -> JobLauncher:
    return await request.app.state.runtime.made("launcher")


_bearer = HTTPBearer(auto_error=False)


async def get_principal(request: Request,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    """The caller named by the bearer token; 401 without a valid one."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("a bearer token is required", code="missing_token")
    return request.app.state.tokens.principal(credentials.credentials)


# Committed before the answer is sent (FastAPI's default scope ends a dependency after it): a client that
# reads right after a 201 or a 204 sees the write, and a commit that fails answers an error, not the 201.
SessionDep = Annotated[Session, Depends(get_db, scope="function")]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
DownloadUrlsDep = Annotated[DownloadUrls, Depends(get_download_urls)]
InstanceDep = Annotated[DagsterInstance, Depends(get_instance)]
LauncherDep = Annotated[JobLauncher, Depends(get_launcher)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
