"""catalog: when the sensor saw a video's partition in Dagster's instance

The sensor asks again for the run of a video it catalogued whose partition never reached the
instance (a lost tick result). Once the partition is seen there, the video is left out of that
check, so the check costs what is still unconfirmed instead of every video of the bucket. Rows
from before start unconfirmed: the sensor's next tick checks them all once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 03:30:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('videos', sa.Column('partition_seen_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_videos_origin_partition_seen_at', 'videos', ['origin', 'partition_seen_at'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_videos_origin_partition_seen_at', table_name='videos')
    with op.batch_alter_table('videos') as batch:
        batch.drop_column('partition_seen_at')
