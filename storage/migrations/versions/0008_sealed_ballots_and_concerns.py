"""Pulse answers sealed until a run closes, anonymous concerns sealed until the day's delivery.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:00:00
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('pulseballot',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['pulserun.id'], name=op.f('fk_pulseballot_run_id_pulserun'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pulseballot')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('pulseballot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pulseballot_run_id'), ['run_id'], unique=False)

    op.create_table('sealedconcern',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('key_id', sa.String(length=16), nullable=False),
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sealedconcern')),
    sqlite_with_rowid=False
    )
    # Not through a batch copy: that would give the WITHOUT ROWID table a rowid again.
    op.execute('ALTER TABLE pulseanswer DROP COLUMN answered_on')
    _remix_answers()


def _remix_answers() -> None:
    """Answers stored before this revision were written by the transaction that marked their
    author's invitation: rewrite them all as new rows, with new ids, in a shuffled order. (On
    PostgreSQL the old row versions stay in the files until VACUUM; SECURITY.md says so.)"""
    bind = op.get_bind()
    columns = ('run_id', 'question', 'side', 'audience', 'number', 'choice', 'text')
    rows = [dict(r._mapping) for r in bind.execute(sa.text(f"SELECT {', '.join(columns)} FROM pulseanswer"))]
    if not rows:
        return
    secrets.SystemRandom().shuffle(rows)
    bind.execute(sa.text('DELETE FROM pulseanswer'))
    bind.execute(
        sa.text(
            f"INSERT INTO pulseanswer (id, {', '.join(columns)}) "
            f"VALUES (:id, {', '.join(':' + c for c in columns)})"
        ),
        [{'id': secrets.token_hex(16), **row} for row in rows],
    )


def downgrade() -> None:
    op.execute('ALTER TABLE pulseanswer ADD COLUMN answered_on DATE')
    op.drop_table('sealedconcern')
    with op.batch_alter_table('pulseballot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pulseballot_run_id'))
    op.drop_table('pulseballot')
