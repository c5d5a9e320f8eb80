"""The catalog database as a Dagster resource."""

from collections.abc import Iterator
from contextlib import contextmanager

from dagster import AssetKey, ConfigurableResource, Failure
from sqlalchemy.orm import Session

from heimdex_pipeline.catalog.db import session_scope
from heimdex_pipeline.catalog.models import Video
from heimdex_pipeline.catalog.repository import get_video, record_check_outcome


class CatalogResource(ConfigurableResource):
    """The metadata catalog (SQLite or PostgreSQL) that maps partitions to source files."""

    database_url: str

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transactional session on the catalog."""
        with session_scope(self.database_url) as session:
            yield session

    def video(self, asset_id: str) -> Video:
        """The video behind a partition; a partition nobody catalogued cannot be materialised."""
        with self.session() as session:
            video = get_video(session, asset_id)
        if video is None:
            raise Failure(description=f"video {asset_id} is not in the catalog", allow_retries=False)
        return video

    def record_check(self, video: Video, asset_key: AssetKey, check_name: str, passed: bool,
                     description: str | None, run_id: str) -> None:
        """Keep the outcome of a check of the video just evaluated, for the API's `checks` summary."""
        with self.session() as session:
            record_check_outcome(session, video.asset_id, asset_key.to_user_string(), check_name, passed,
                                 description, run_id)
