"""The API's Dagster instance, set up to serve many reads as the webserver sets up its own."""

from dagster import DagsterInstance

# The webserver's defaults (`dagster-webserver --db-statement-timeout --db-pool-recycle --db-pool-max-overflow`).
DB_STATEMENT_TIMEOUT_MS = 15_000
DB_POOL_RECYCLE_S = 3600
DB_POOL_MAX_OVERFLOW = 20


def tuned_for_serving(instance: DagsterInstance) -> DagsterInstance:
    """`instance` with pooled connections, a statement timeout, and the run storage's schema check made once."""
    # Dagster's storages open a database connection per statement unless told that they serve a
    # long-lived process; on PostgreSQL that connection cost more than a job read's query.
    instance.optimize_for_webserver(statement_timeout=DB_STATEMENT_TIMEOUT_MS, pool_recycle=DB_POOL_RECYCLE_S,
                                    max_overflow=DB_POOL_MAX_OVERFLOW)
    storage = instance.run_storage
    # Every run record read (`get_run_record_by_id`, which `get_run_by_id` calls too) and every run
    # event first asks whether the runs table has its start and end columns, by reflecting the
    # table: three catalog queries on PostgreSQL, twice the cost of the read itself. Only
    # `dagster instance migrate` adds them, and a migrated table keeps them, so a yes is kept for
    # the process, as the storage keeps its answers about built indexes (`has_built_index`).
    if storage.has_run_stats_index_cols():
        storage.has_run_stats_index_cols = lambda: True  # type: ignore[method-assign]
    return instance
