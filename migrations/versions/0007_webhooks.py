"""catalog: webhooks, their events, the delivery outbox and each attempt

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 06:06:02.135088

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

SERIAL = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        'webhooks',
        sa.Column('webhook_id', sa.String(length=40), nullable=False),
        sa.Column('org_id', sa.String(length=64), nullable=False),
        sa.Column('url', sa.Text(), nullable=False),
        sa.Column('events', sa.JSON(), nullable=False),
        sa.Column('secret', sa.String(length=128), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('webhook_id', name=op.f('pk_webhooks')),
    )
    op.create_index(op.f('ix_webhooks_org_id'), 'webhooks', ['org_id'])
    op.create_table(
        'webhook_events',
        sa.Column('event_id', sa.String(length=40), nullable=False),
        sa.Column('org_id', sa.String(length=64), nullable=False),
        sa.Column('type', sa.String(length=32), nullable=False),
        sa.Column('asset_id', sa.String(length=64), nullable=False),
        sa.Column('job_id', sa.String(length=64), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('event_id', name=op.f('pk_webhook_events')),
        sa.UniqueConstraint('job_id', 'type', name=op.f('uq_webhook_events_job_id')),
    )
    op.create_index('ix_webhook_events_created_at', 'webhook_events', ['created_at'])
    op.create_table(
        'webhook_deliveries',
        sa.Column('delivery_id', SERIAL, autoincrement=True, nullable=False),
        sa.Column('webhook_id', sa.String(length=40), nullable=False),
        sa.Column('event_id', sa.String(length=40), nullable=False),
        sa.Column('asset_id', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['event_id'], ['webhook_events.event_id'],
                                name=op.f('fk_webhook_deliveries_event_id_webhook_events'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['webhook_id'], ['webhooks.webhook_id'],
                                name=op.f('fk_webhook_deliveries_webhook_id_webhooks'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('delivery_id', name=op.f('pk_webhook_deliveries')),
        sa.UniqueConstraint('webhook_id', 'event_id', name=op.f('uq_webhook_deliveries_webhook_id')),
    )
    op.create_index('ix_webhook_deliveries_status_next_attempt_at', 'webhook_deliveries',
                    ['status', 'next_attempt_at'])
    op.create_index('ix_webhook_deliveries_webhook_id_asset_id', 'webhook_deliveries', ['webhook_id', 'asset_id'])
    op.create_index('ix_webhook_deliveries_finished_at', 'webhook_deliveries', ['finished_at'])
    op.create_table(
        'webhook_attempts',
        sa.Column('attempt_id', SERIAL, autoincrement=True, nullable=False),
        sa.Column('delivery_id', SERIAL, nullable=False),
        sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status_code', sa.Integer(), nullable=True),
        sa.Column('latency_ms', sa.Integer(), nullable=False),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.delivery_id'],
                                name=op.f('fk_webhook_attempts_delivery_id_webhook_deliveries'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('attempt_id', name=op.f('pk_webhook_attempts')),
    )
    op.create_index(op.f('ix_webhook_attempts_delivery_id'), 'webhook_attempts', ['delivery_id'])


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table('webhook_attempts')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_events')
    op.drop_index(op.f('ix_webhooks_org_id'), table_name='webhooks')
    op.drop_table('webhooks')
