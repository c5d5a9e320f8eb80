"""catalog: storage keys instead of paths (videos.source_key, sources.key and version, uploads.prefix)

Existing rows hold absolute paths under the derived root; they become keys relative to it (and
back on downgrade). The root is the one `migrate()` was given, else the settings'
(`HEIMDEX_DERIVED_ROOT`) resolved: a row outside it stops the migration, since it would name no
object of the store (the catalog was made under another root).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 18:30:00.000000

"""
from pathlib import Path
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import context, op

# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The columns that held absolute paths (uploads.directory: a folder, without the trailing slash).
_PATHS = (("videos", "source_path"), ("sources", "path"), ("uploads", "directory"))


def _root() -> str:
    """The derived root as a path prefix, ending with a slash."""
    root = context.config.attributes.get("derived_root")
    if root is None:
        from heimdex_pipeline.core.settings import PipelineSettings

        root = PipelineSettings().derived_root
    return str(Path(root).resolve()).rstrip("/") + "/"


def upgrade() -> None:
    """Upgrade schema."""
    root = _root()
    params = {"root": root, "n": len(root)}
    connection = op.get_bind()
    for table, path in _PATHS:
        outside = connection.execute(sa.text(
            f"SELECT count(*) FROM {table} WHERE substr({path}, 1, :n) != :root"), params).scalar()
        if outside:
            raise RuntimeError(f"{outside} row(s) of {table}.{path} lie outside the derived root {root}: set "
                               "HEIMDEX_DERIVED_ROOT to the root this catalog was made with")
    connection.execute(sa.text("UPDATE videos SET source_path = substr(source_path, :n + 1)"), params)
    connection.execute(sa.text("UPDATE sources SET path = substr(path, :n + 1)"), params)
    connection.execute(sa.text("UPDATE uploads SET directory = substr(directory, :n + 1) || '/'"), params)
    # Renames in place: a batch copy of `videos` would drop the table, which SQLite (foreign keys
    # on) answers by deleting its sources in cascade.
    op.alter_column('videos', 'source_path', new_column_name='source_key', existing_type=sa.Text(),
                    existing_nullable=False)
    op.alter_column('uploads', 'directory', new_column_name='prefix', existing_type=sa.Text(),
                    existing_nullable=False)
    op.alter_column('sources', 'path', new_column_name='key', existing_type=sa.Text(), existing_nullable=False)
    op.alter_column('sources', 'mtime_ns', new_column_name='version', existing_type=sa.BigInteger(),
                    existing_nullable=False)
    # A new type is a copy of the table on SQLite: `sources` is referenced by no other table.
    with op.batch_alter_table('sources') as batch:
        # The modification time in nanoseconds, as digits: what the local store's version is.
        batch.alter_column('version', type_=sa.String(length=128), existing_type=sa.BigInteger(),
                           existing_nullable=False, postgresql_using='version::varchar(128)')


def downgrade() -> None:
    """Downgrade schema."""
    root = _root()
    with op.batch_alter_table('sources') as batch:
        # An S3 ETag is no modification time: 0, so the sensor hashes the file again if it is on disk.
        batch.alter_column('version', type_=sa.BigInteger(), existing_type=sa.String(length=128),
                           existing_nullable=False,
                           postgresql_using="CASE WHEN version ~ '^[0-9]{1,18}$' OR (version ~ '^[0-9]{19}$' AND "
                                            "version <= '9223372036854775807') THEN version::bigint ELSE 0 END")
    op.alter_column('sources', 'version', new_column_name='mtime_ns', existing_type=sa.BigInteger(),
                    existing_nullable=False)
    op.alter_column('sources', 'key', new_column_name='path', existing_type=sa.Text(), existing_nullable=False)
    op.alter_column('uploads', 'prefix', new_column_name='directory', existing_type=sa.Text(),
                    existing_nullable=False)
    op.alter_column('videos', 'source_key', new_column_name='source_path', existing_type=sa.Text(),
                    existing_nullable=False)
    connection = op.get_bind()
    params = {"root": root}
    connection.execute(sa.text("UPDATE videos SET source_path = :root || source_path"), params)
    connection.execute(sa.text("UPDATE sources SET path = :root || path"), params)
    connection.execute(sa.text("UPDATE uploads SET directory = :root || rtrim(directory, '/')"), params)
