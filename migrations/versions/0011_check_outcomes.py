"""catalog: the newest outcome of each asset check of a video, read by the API's `checks` summary

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 20:10:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0011'
down_revision: Union[str, Sequence[str], None] = '0010'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'check_outcomes',
        sa.Column('asset_id', sa.String(length=64), nullable=False),
        sa.Column('asset_key', sa.String(length=255), nullable=False),
        sa.Column('check_name', sa.String(length=255), nullable=False),
        sa.Column('passed', sa.Boolean(), nullable=False),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('run_id', sa.String(length=64), nullable=False),
        sa.Column('evaluated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('asset_id', 'asset_key', 'check_name', name=op.f('pk_check_outcomes')),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('check_outcomes')
