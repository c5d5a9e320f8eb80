"""Alembic environment: the URL comes from Heimdex's settings unless a caller set one."""

from alembic import context

import heimdex_api.models  # noqa: F401  (the API's tables, so autogenerate sees them)
from heimdex_pipeline.catalog.db import make_engine, normalize_url
from heimdex_pipeline.catalog.models import Base
from heimdex_pipeline.core.settings import PipelineSettings

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    """The URL set by `migrate()`, else HEIMDEX_DATABASE_URL (or the SQLite default)."""
    return config.get_main_option("sqlalchemy.url") or normalize_url(PipelineSettings().catalog_url)


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(database_url())
    with engine.connect() as connection:
        # Batch mode lets SQLite alter tables by copying them.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
