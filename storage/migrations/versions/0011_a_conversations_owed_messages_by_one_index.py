"""A conversation's owed messages by one index: (platform, address, status, due_at) on the
outbox, read at every claim so that no message is claimed ahead of an earlier one of its
conversation; it replaces the index on platform alone, which it serves as well.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 19:30:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(
            'ix_outbox_platform_address_status_due_at', ['platform', 'address', 'status', 'due_at'], unique=False
        )
        batch_op.drop_index(batch_op.f('ix_outbox_platform'))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_platform'), ['platform'], unique=False)
        batch_op.drop_index('ix_outbox_platform_address_status_due_at')
