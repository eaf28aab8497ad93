"""Objections, assets, their audiences, the field's feedback and suggestions on drafts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('objection',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('theme', sa.String(length=64), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=True),
    sa.Column('competitor', sa.String(length=100), nullable=True),
    sa.Column('segment', sa.String(length=100), nullable=True),
    sa.Column('product', sa.String(length=100), nullable=True),
    sa.Column('deal_stage', sa.String(length=100), nullable=True),
    sa.Column('deal_size', sa.String(length=100), nullable=True),
    sa.Column('deal_link', sa.String(length=500), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('confidential', sa.Boolean(), nullable=False),
    sa.Column('reporter_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['reporter_id'], ['person.id'], name=op.f('fk_objection_reporter_id_person'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_objection'))
    )
    with op.batch_alter_table('objection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_objection_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_objection_group_id'), ['group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_objection_reporter_id'), ['reporter_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_objection_theme'), ['theme'], unique=False)

    op.create_table('asset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('link', sa.String(length=500), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('key_message', sa.Text(), nullable=False),
    sa.Column('decision_id', sa.Integer(), nullable=True),
    sa.Column('themes', sa.JSON(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('input_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('input_closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['decision_id'], ['decision.id'], name=op.f('fk_asset_decision_id_decision'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['person.id'], name=op.f('fk_asset_owner_id_person')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_asset'))
    )
    with op.batch_alter_table('asset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_asset_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_asset_status'), ['status'], unique=False)

    op.create_table('assetaudience',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('audience_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], name=op.f('fk_assetaudience_asset_id_asset'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['audience_id'], ['audience.id'], name=op.f('fk_assetaudience_audience_id_audience')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assetaudience')),
    sa.UniqueConstraint('asset_id', 'audience_id', name=op.f('uq_assetaudience_asset_id'))
    )
    with op.batch_alter_table('assetaudience', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assetaudience_asset_id'), ['asset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assetaudience_audience_id'), ['audience_id'], unique=False)

    op.create_table('assetfeedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], name=op.f('fk_assetfeedback_asset_id_asset'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_assetfeedback_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assetfeedback')),
    sa.UniqueConstraint('asset_id', 'person_id', 'kind', name=op.f('uq_assetfeedback_asset_id'))
    )
    with op.batch_alter_table('assetfeedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assetfeedback_asset_id'), ['asset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assetfeedback_person_id'), ['person_id'], unique=False)

    op.create_table('suggestion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('asset_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], name=op.f('fk_suggestion_asset_id_asset'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_suggestion_person_id_person'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suggestion'))
    )
    with op.batch_alter_table('suggestion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_suggestion_asset_id'), ['asset_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('suggestion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_suggestion_asset_id'))

    op.drop_table('suggestion')
    with op.batch_alter_table('assetfeedback', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assetfeedback_person_id'))
        batch_op.drop_index(batch_op.f('ix_assetfeedback_asset_id'))

    op.drop_table('assetfeedback')
    with op.batch_alter_table('assetaudience', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assetaudience_audience_id'))
        batch_op.drop_index(batch_op.f('ix_assetaudience_asset_id'))

    op.drop_table('assetaudience')
    with op.batch_alter_table('asset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_asset_status'))
        batch_op.drop_index(batch_op.f('ix_asset_owner_id'))

    op.drop_table('asset')
    with op.batch_alter_table('objection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_objection_theme'))
        batch_op.drop_index(batch_op.f('ix_objection_reporter_id'))
        batch_op.drop_index(batch_op.f('ix_objection_group_id'))
        batch_op.drop_index(batch_op.f('ix_objection_created_at'))

    op.drop_table('objection')
