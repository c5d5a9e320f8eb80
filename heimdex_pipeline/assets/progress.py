"""A step's progress, where the API and the web UI see it: the catalog's `run_progress` row of the run,
and a line in the run's logs."""

from dagster import AssetExecutionContext
from sqlalchemy.exc import SQLAlchemyError

from heimdex_pipeline.catalog.repository import record_progress
from heimdex_pipeline.core.logs import get_logger
from heimdex_pipeline.media.progress import Report
from heimdex_pipeline.resources import CatalogResource


def step_progress(context: AssetExecutionContext, catalog: CatalogResource, unit: str) -> Report:
    """The `progress(done, total)` a media function reports to while this asset's step runs."""
    step, run_id = context.asset_key.to_user_string(), context.run.run_id

    def record(done: int, total: int) -> None:
        try:
            with catalog.session() as session:
                record_progress(session, run_id, step, unit, done, total)
        except SQLAlchemyError as exc:
            # Progress is a courtesy: a database blip must not fail an hour of decoding.
            get_logger("assets", job_id=run_id).warning("progress.not_recorded", step=step, error=str(exc))

    def report(done: int, total: int) -> None:
        context.log.info(f"{step}: {done:,} of {total:,} {unit} ({done / total:.0%})")
        record(done, total)

    record(0, 0)  # started, its total not known yet
    return report
