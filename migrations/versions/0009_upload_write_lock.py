"""catalog: an upload's write lock, taken by the requests that write or end its files

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 17:00:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0009'
down_revision: Union[str, Sequence[str], None] = '0008'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('uploads') as batch:
        batch.add_column(sa.Column('lock_token', sa.String(length=32), nullable=True))
        batch.add_column(sa.Column('lock_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('uploads') as batch:
        batch.drop_column('lock_until')
        batch.drop_column('lock_token')
