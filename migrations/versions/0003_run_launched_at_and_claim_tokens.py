"""catalog: when a video's run was launched; idempotency claims with a token

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 16:00:00.000000

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.add_column('videos', sa.Column('run_launched_at', sa.DateTime(timezone=True), nullable=True))
    # Videos catalogued before this revision had their runs started: do not look for lost ones.
    op.execute("UPDATE videos SET run_launched_at = created_at")
    op.add_column('idempotency_keys', sa.Column('claim_token', sa.String(length=32), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('idempotency_keys') as batch:
        batch.drop_column('claim_token')
    with op.batch_alter_table('videos') as batch:
        batch.drop_column('run_launched_at')
