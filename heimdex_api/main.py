"""The FastAPI application: `heimdex_api.main:app`, or `create_app()` with explicit parts for tests."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache, cached_property
from typing import Any

import anyio
from dagster import DagsterInstance
from fastapi import FastAPI

from heimdex_api.api.job_threads import install_job_threads, limit_request_threads
from heimdex_api.api.routes import assets, files, health, ingest, jobs, legacy, uploads, webhooks
from heimdex_api.api.shared_reads import SharedReads
from heimdex_api.core.admission import ReadAdmissionMiddleware
from heimdex_api.core.config import ApiSettings, get_api_settings
from heimdex_api.core.errors import install_error_handlers
from heimdex_api.core.limits import BodyLimitMiddleware, BodyReadTimeoutMiddleware
from heimdex_api.core.security import Tokens
from heimdex_api.schemas import (
    CommitRequest,
    SourceRequest,
    ThumbnailsRequest,
    source_uri_schema,
    webhook_url_schema,
)
from heimdex_api.services.dagster_instance import tuned_for_serving
from heimdex_api.services.finished_jobs import FinishedJobs
from heimdex_api.services.launchers import JobLauncher, make_launcher
from heimdex_pipeline.catalog.migrate import migrate
from heimdex_pipeline.core.logs import configure_logging
from heimdex_pipeline.storage import ObjectStore, store_from_settings
from heimdex_pipeline.storage.layout import UPLOADS


class Runtime:
    """The Dagster instance, launcher and object store, made on first use so that the app starts without them."""

    def __init__(self, settings: ApiSettings, instance: DagsterInstance | None,
                 launcher: JobLauncher | None) -> None:
        self._settings = settings
        self._instance_given = instance is not None
        if instance is not None:
            self.instance = instance
        if launcher is not None:
            self.launcher = launcher

    @cached_property
    def store(self) -> ObjectStore:
        """The storage the settings configure, one for the app's every request."""
        return store_from_settings(self._settings)

    @cached_property
    def instance(self) -> DagsterInstance:
        """The instance of $DAGSTER_HOME, the one the webserver and the daemon use."""
        return tuned_for_serving(DagsterInstance.get())

    @cached_property
    def launcher(self) -> JobLauncher:
        # Runs executed in this process (`immediate`) write through an instance of their own, as a
        # run worker does: the serving instance keeps its connections open, and a run's failure
        # written on one that a database restart dropped is lost, the run left `STARTED` (fault 3).
        return make_launcher(self._settings, (lambda: self.instance) if self._instance_given else DagsterInstance.get,
                             lambda: self.instance)

    async def made(self, part: str) -> Any:
        """`store`, `instance` or `launcher`, made in a worker thread on first use (making the instance
        connects to its database), then answered without leaving the event loop."""
        made = vars(self)  # where cached_property keeps a part once made
        return made[part] if part in made else await anyio.to_thread.run_sync(getattr, self, part)


def _document_deployment(app: FastAPI, settings: ApiSettings) -> None:
    """Write what these settings and this store enforce into the OpenAPI document: the largest `content_length`
    (above it: 422 `upload_too_large`), where a `source_uri` may point, which webhook URLs are taken."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schemas = build()["components"]["schemas"]
            schemas["InitRequest"]["properties"]["content_length"]["maximum"] = settings.max_upload_bytes
            source_uri = source_uri_schema(app.state.runtime.store.uri(UPLOADS))
            for model in (CommitRequest, SourceRequest, ThumbnailsRequest):
                documented = schemas[model.__name__]["properties"]["source_uri"]
                del documented["maxLength"]  # the model's coarse guard: the pattern bounds the length tighter
                documented.update(source_uri)
            schemas["WebhookCreate"]["properties"]["url"].update(
                webhook_url_schema(settings.webhook_allow_private_addresses))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: ApiSettings | None = None, instance: DagsterInstance | None = None,
               launcher: JobLauncher | None = None) -> FastAPI:
    """The Heimdex API over the given settings and Dagster instance (the environment's by default)."""
    settings = settings or get_api_settings()
    configure_logging()  # before the first request: it also redacts the server's own access and error logs

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        limit_request_threads()
        if settings.migrate_on_start:
            migrate(settings.catalog_url, derived_root=settings.derived_root)
        yield

    app = FastAPI(title="Heimdex API", version="1.0.0", lifespan=lifespan,
                  description="Ingest videos: probe metadata, scene sidecars and thumbnails, run by Dagster.")
    app.state.settings = settings
    app.state.runtime = Runtime(settings, instance, launcher)
    install_job_threads(app)
    # A finished job's answer is given again for a minute at most, while its URLs have most of their time left.
    app.state.finished_jobs = FinishedJobs(answer_max_age_s=min(60.0, settings.download_url_ttl_s / 10))
    app.state.shared_reads = SharedReads()
    app.state.tokens = Tokens(settings)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes,
                       legacy_limit=settings.max_legacy_upload_bytes)
    app.add_middleware(BodyReadTimeoutMiddleware, timeout_s=settings.body_read_timeout_s)
    app.add_middleware(ReadAdmissionMiddleware, limit=settings.max_concurrent_reads)
    for module in (health, ingest, assets, jobs, uploads, files, webhooks):
        app.include_router(module.router)
    if settings.enable_legacy:
        app.include_router(legacy.router)
    _document_deployment(app, settings)
    return app


@cache
def _environment_app() -> FastAPI:
    app = create_app()
    # The served app's heap is now mostly what importing Dagster and the app made: about 265,000
    # objects that live as long as the process. Each full collection walked them all, 160 to 290 ms
    # with the event loop stopped (a health check waiting behind it); frozen, the collector skips
    # them (the `gc.freeze` docs' advice for servers).
    gc.collect()
    gc.freeze()
    # A young collection every 50,000 new objects instead of 700: most of a request's objects are gone
    # by then, so far fewer survive into the older generations, whose collections were the long pauses
    # (189 pauses over 10 ms in a 30 s crowd, 11 with this).
    gc.set_threshold(50_000, 20, 10)
    return app


def __getattr__(name: str) -> FastAPI:
    # `heimdex_api.main:app` is made when the server asks for it: importing `create_app` needs no
    # settings, while a server whose settings are refused (a weak secret) stops before it serves.
    if name == "app":
        return _environment_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
