"""Slack: members of user groups that app.yaml names, and who caused each channel post.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('groupmember',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_ref', sa.String(length=64), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_groupmember_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_groupmember')),
    sa.UniqueConstraint('group_ref', 'person_id', name=op.f('uq_groupmember_group_ref'))
    )
    with op.batch_alter_table('groupmember', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_groupmember_group_ref'), ['group_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_groupmember_person_id'), ['person_id'], unique=False)

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sender_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_outbox_sender_id_person'), 'person', ['sender_id'], ['id'], ondelete='SET NULL')



def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_outbox_sender_id_person'), type_='foreignkey')
        batch_op.drop_column('sender_id')

    with op.batch_alter_table('groupmember', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_groupmember_person_id'))
        batch_op.drop_index(batch_op.f('ix_groupmember_group_ref'))

    op.drop_table('groupmember')
