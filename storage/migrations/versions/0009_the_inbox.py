"""The inbox: what people did in chat, stored before the platform is told it arrived.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('inboxitem',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('fields', sa.Text(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_by', sa.String(length=64), nullable=True),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inboxitem')),
    sa.UniqueConstraint('platform', 'key', name=op.f('uq_inboxitem_platform'))
    )
    with op.batch_alter_table('inboxitem', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inboxitem_done'), ['done'], unique=False)
        batch_op.create_index(batch_op.f('ix_inboxitem_received_at'), ['received_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inboxitem', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inboxitem_received_at'))
        batch_op.drop_index(batch_op.f('ix_inboxitem_done'))
    op.drop_table('inboxitem')
