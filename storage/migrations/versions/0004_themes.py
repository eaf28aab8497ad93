"""Themes become rows of their own (id, name, cue words, grouping profile); objections and
assets point at them by id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('theme',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('cues', sa.JSON(), nullable=False),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('merged_into_id', sa.Integer(), nullable=True),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('profile', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_heard_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['merged_into_id'], ['theme.id'], name=op.f('fk_theme_merged_into_id_theme')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_theme')),
    sa.UniqueConstraint('key', name=op.f('uq_theme_key')),
    sa.UniqueConstraint('name', name=op.f('uq_theme_name'))
    )
    with op.batch_alter_table('theme', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_theme_last_heard_at'), ['last_heard_at'], unique=False)
    with op.batch_alter_table('objection', schema=None) as batch_op:
        batch_op.add_column(sa.Column('theme_id', sa.Integer(), nullable=True))

    # Every theme name objections were filed under becomes a theme row; "other" was the
    # catch-all and is the one theme without a taxonomy key.
    connection = op.get_bind()
    now = datetime.now(UTC)
    theme = sa.table('theme', sa.column('id'), sa.column('key'), sa.column('name'), sa.column('cues', sa.JSON),
                     sa.column('origin'), sa.column('size'), sa.column('profile', sa.JSON), sa.column('created_at'))
    names = connection.execute(sa.text("SELECT theme, COUNT(*) FROM objection GROUP BY theme")).all()
    for name, size in names:
        connection.execute(theme.insert().values(
            key=None if name == 'other' else name, name=name, cues=[], origin='found' if name == 'other' else 'taxonomy',
            size=size, profile={}, created_at=now,
        ))
    connection.execute(sa.text("UPDATE objection SET theme_id = (SELECT id FROM theme WHERE theme.name = objection.theme)"))
    ids = dict(connection.execute(sa.text("SELECT name, id FROM theme")).all())
    for asset_id, themes in connection.execute(sa.text("SELECT id, themes FROM asset")).all():
        names = json.loads(themes) if isinstance(themes, str) else themes
        for name in names:
            if name not in ids:
                connection.execute(theme.insert().values(key=name, name=name, cues=[], origin='taxonomy', size=0,
                                                         profile={}, created_at=now))
                ids[name] = connection.execute(sa.text("SELECT id FROM theme WHERE name = :n"), {"n": name}).scalar_one()
        connection.execute(sa.text("UPDATE asset SET themes = :t WHERE id = :i"),
                           {"t": json.dumps([ids[n] for n in names]), "i": asset_id})

    with op.batch_alter_table('objection', schema=None) as batch_op:
        batch_op.alter_column('theme_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_index(batch_op.f('ix_objection_theme'))
        batch_op.create_index('ix_objection_theme_id_created_at', ['theme_id', 'created_at'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_objection_theme_id_theme'), 'theme', ['theme_id'], ['id'])
        batch_op.drop_column('theme')


def downgrade() -> None:
    with op.batch_alter_table('objection', schema=None) as batch_op:
        batch_op.add_column(sa.Column('theme', sa.VARCHAR(length=64), nullable=True))
    connection = op.get_bind()
    connection.execute(sa.text("UPDATE objection SET theme = (SELECT name FROM theme WHERE theme.id = objection.theme_id)"))
    names = dict(connection.execute(sa.text("SELECT id, name FROM theme")).all())
    for asset_id, themes in connection.execute(sa.text("SELECT id, themes FROM asset")).all():
        ids = json.loads(themes) if isinstance(themes, str) else themes
        connection.execute(sa.text("UPDATE asset SET themes = :t WHERE id = :i"),
                           {"t": json.dumps([names[i] for i in ids if i in names]), "i": asset_id})
    with op.batch_alter_table('objection', schema=None) as batch_op:
        batch_op.alter_column('theme', existing_type=sa.VARCHAR(length=64), nullable=False)
        batch_op.drop_constraint(batch_op.f('fk_objection_theme_id_theme'), type_='foreignkey')
        batch_op.drop_index('ix_objection_theme_id_created_at')
        batch_op.create_index(batch_op.f('ix_objection_theme'), ['theme'], unique=False)
        batch_op.drop_column('theme_id')

    op.drop_table('theme')
