"""catalog: per-video claims, so that a deletion and a commit of the same video take turns

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 17:30:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0010'
down_revision: Union[str, Sequence[str], None] = '0009'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'asset_claims',
        sa.Column('asset_id', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('asset_id', name=op.f('pk_asset_claims')),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('asset_claims')
