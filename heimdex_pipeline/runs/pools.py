"""The Dagster pools Heimdex's assets claim, and their limits set before any run claims them.

Dagster gives a pool its default limit (`concurrency.pools.default_limit` in dagster.yaml) when a
run first claims it, and sets it again when the default has changed. On PostgreSQL both can crash
the run: two runs starting together both insert the pool's row, and a changed default is written
with an insert that fails on the existing row and aborts the transaction its update then runs in
(dagster-io/dagster#33552). `prepare_pools`, run once before the services start
(`python -m heimdex_pipeline.admin.prepare`) and by a process that executes runs itself, leaves runs
nothing to set.
"""

from dagster import DagsterInstance
from sqlalchemy.exc import SQLAlchemyError

# Limits how many ffmpeg-heavy steps run at once on the instance (dagster.yaml sets the limit).
FFMPEG_POOL = "ffmpeg"
POOLS = (FFMPEG_POOL,)


def _limit(instance: DagsterInstance, name: str) -> tuple[int | None, bool] | None:
    """The pool's limit and whether it is the default's, or None while the pool has no row."""
    return next(((pool.limit, pool.from_default) for pool in instance.event_log_storage.get_pool_limits()
                 if pool.name == name), None)


def prepare_pools(instance: DagsterInstance) -> None:
    """Give each of Heimdex's pools the instance's default limit, unless someone set its limit."""
    default = instance.global_op_concurrency_default_limit
    storage = instance.event_log_storage
    if default is None or not storage.supports_global_concurrency_limits:
        return
    for name in POOLS:
        limit = _limit(instance, name)
        # Set already, to the default or by someone (the web UI, `dagster instance concurrency set`).
        if limit == (default, True) or (limit is not None and not limit[1]):
            continue
        if limit is not None:
            # The default changed: a new row, as Dagster's own update of the old one fails on PostgreSQL.
            storage.delete_concurrency_limit(name)
        try:
            storage.initialize_concurrency_limit_to_default(name)
        except SQLAlchemyError:
            # Another process prepared it at the same moment (see above): its row is the one wanted.
            if _limit(instance, name) != (default, True):
                raise
