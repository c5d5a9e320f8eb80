"""catalog: webhooks keep their previous secret for a while after it is rotated

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 10:00:00.000000

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0008'
down_revision: Union[str, Sequence[str], None] = '0007'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('webhooks') as batch:
        batch.add_column(sa.Column('previous_secret', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('previous_secret_expires_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('webhooks') as batch:
        batch.drop_column('previous_secret_expires_at')
        batch.drop_column('previous_secret')
