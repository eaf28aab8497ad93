"""Pulse runs, invitations and anonymous answers; digests sent; the scheduler's lease, runs and job table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('apscheduler_jobs',
    sa.Column('id', sa.Unicode(length=191), nullable=False),
    sa.Column('next_run_time', sa.Float(precision=25), nullable=True),
    sa.Column('job_state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_apscheduler_jobs'))
    )
    with op.batch_alter_table('apscheduler_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_apscheduler_jobs_next_run_time'), ['next_run_time'], unique=False)

    op.create_table('digestissue',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_digestissue')),
    sa.UniqueConstraint('period_end', name=op.f('uq_digestissue_period_end'))
    )
    op.create_table('pulserun',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('survey', sa.String(length=64), nullable=False),
    sa.Column('slot', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('questions', sa.JSON(), nullable=False),
    sa.Column('min_group_size', sa.Integer(), nullable=False),
    sa.Column('min_group_size_comments', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closes_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pulserun')),
    sa.UniqueConstraint('survey', 'slot', name=op.f('uq_pulserun_survey'))
    )
    with op.batch_alter_table('pulserun', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pulserun_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_pulserun_survey'), ['survey'], unique=False)

    op.create_table('schedulerlease',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_schedulerlease'))
    )
    op.create_table('schedulerrun',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=200), nullable=False),
    sa.Column('scheduled_for', sa.DateTime(timezone=True), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedulerrun'))
    )
    with op.batch_alter_table('schedulerrun', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedulerrun_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_schedulerrun_job_id'), ['job_id'], unique=False)

    op.create_table('pulseanswer',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('question', sa.String(length=64), nullable=False),
    sa.Column('side', sa.String(length=16), nullable=False),
    sa.Column('audience', sa.String(length=64), nullable=False),
    sa.Column('answered_on', sa.Date(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=True),
    sa.Column('choice', sa.String(length=100), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['pulserun.id'], name=op.f('fk_pulseanswer_run_id_pulserun'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pulseanswer')),
    sqlite_with_rowid=False
    )
    with op.batch_alter_table('pulseanswer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pulseanswer_run_id'), ['run_id'], unique=False)

    op.create_table('pulseinvitation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reminded', sa.Boolean(), nullable=False),
    sa.Column('answered', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_pulseinvitation_person_id_person'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['pulserun.id'], name=op.f('fk_pulseinvitation_run_id_pulserun'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pulseinvitation')),
    sa.UniqueConstraint('run_id', 'person_id', name=op.f('uq_pulseinvitation_run_id'))
    )
    with op.batch_alter_table('pulseinvitation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pulseinvitation_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pulseinvitation_run_id'), ['run_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('pulseinvitation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pulseinvitation_run_id'))
        batch_op.drop_index(batch_op.f('ix_pulseinvitation_person_id'))

    op.drop_table('pulseinvitation')
    with op.batch_alter_table('pulseanswer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pulseanswer_run_id'))

    op.drop_table('pulseanswer')
    with op.batch_alter_table('schedulerrun', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedulerrun_job_id'))
        batch_op.drop_index(batch_op.f('ix_schedulerrun_at'))

    op.drop_table('schedulerrun')
    op.drop_table('schedulerlease')
    with op.batch_alter_table('pulserun', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pulserun_survey'))
        batch_op.drop_index(batch_op.f('ix_pulserun_status'))

    op.drop_table('pulserun')
    op.drop_table('digestissue')
    with op.batch_alter_table('apscheduler_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_apscheduler_jobs_next_run_time'))

    op.drop_table('apscheduler_jobs')
