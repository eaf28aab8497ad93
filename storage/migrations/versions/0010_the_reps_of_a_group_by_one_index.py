"""The reps who heard a group lately, counted from one index: (group_id, created_at, reporter_id)
replaces the index on group_id alone, which it serves as well.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 06:30:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('objection', schema=None) as batch_op:
        batch_op.create_index('ix_objection_group_id_created_at_reporter_id', ['group_id', 'created_at', 'reporter_id'], unique=False)
        batch_op.drop_index(batch_op.f('ix_objection_group_id'))


def downgrade() -> None:
    with op.batch_alter_table('objection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_objection_group_id'), ['group_id'], unique=False)
        batch_op.drop_index('ix_objection_group_id_created_at_reporter_id')
