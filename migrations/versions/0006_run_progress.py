"""catalog: run_progress, how far each running step is

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 04:00:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'run_progress',
        sa.Column('run_id', sa.String(length=64), nullable=False),
        sa.Column('step', sa.String(length=64), nullable=False),
        sa.Column('unit', sa.String(length=16), nullable=False),
        sa.Column('done', sa.BigInteger(), nullable=False),
        sa.Column('total', sa.BigInteger(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('run_id', name=op.f('pk_run_progress')),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('run_progress')
