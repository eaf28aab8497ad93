"""People, audiences, decisions, acknowledgements, questions, the outbox and the audit log.

Revision ID: 0001
Revises: 
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('audience',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audience')),
    sa.UniqueConstraint('key', name=op.f('uq_audience_key'))
    )
    op.create_table('inboundevent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=200), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inboundevent')),
    sa.UniqueConstraint('platform', 'event_id', name=op.f('uq_inboundevent_platform'))
    )
    with op.batch_alter_table('inboundevent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inboundevent_received_at'), ['received_at'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.Column('card', sa.JSON(), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('updates_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('message_ref', sa.String(length=200), nullable=True),
    sa.Column('error', sa.String(length=1000), nullable=True),
    sa.ForeignKeyConstraint(['updates_id'], ['outbox.id'], name=op.f('fk_outbox_updates_id_outbox')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_platform'), ['platform'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_subject'), ['subject'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_updates_id'), ['updates_id'], unique=False)

    op.create_table('person',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('home_platform', sa.String(length=16), nullable=True),
    sa.Column('from_config', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_person')),
    sa.UniqueConstraint('key', name=op.f('uq_person_key'))
    )
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_person_email'), ['email'], unique=False)

    op.create_table('audiencemember',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('audience_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['audience_id'], ['audience.id'], name=op.f('fk_audiencemember_audience_id_audience'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_audiencemember_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audiencemember')),
    sa.UniqueConstraint('audience_id', 'person_id', name=op.f('uq_audiencemember_audience_id'))
    )
    with op.batch_alter_table('audiencemember', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audiencemember_audience_id'), ['audience_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audiencemember_person_id'), ['person_id'], unique=False)

    op.create_table('audiencetarget',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('audience_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('address', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['audience_id'], ['audience.id'], name=op.f('fk_audiencetarget_audience_id_audience'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audiencetarget')),
    sa.UniqueConstraint('audience_id', 'platform', 'address', name=op.f('uq_audiencetarget_audience_id'))
    )
    with op.batch_alter_table('audiencetarget', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audiencetarget_audience_id'), ['audience_id'], unique=False)

    op.create_table('auditentry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['person.id'], name=op.f('fk_auditentry_actor_id_person'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auditentry'))
    )
    with op.batch_alter_table('auditentry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_auditentry_at'), ['at'], unique=False)

    op.create_table('decision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('decision', sa.Text(), nullable=False),
    sa.Column('why', sa.Text(), nullable=False),
    sa.Column('reps_may', sa.Text(), nullable=False),
    sa.Column('reps_may_not', sa.Text(), nullable=False),
    sa.Column('effective_on', sa.Date(), nullable=False),
    sa.Column('review_on', sa.Date(), nullable=True),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['person.id'], name=op.f('fk_decision_author_id_person')),
    sa.ForeignKeyConstraint(['supersedes_id'], ['decision.id'], name=op.f('fk_decision_supersedes_id_decision')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decision'))
    )
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decision_author_id'), ['author_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_decision_status'), ['status'], unique=False)

    op.create_table('identity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_identity_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity')),
    sa.UniqueConstraint('platform', 'external_id', name=op.f('uq_identity_platform'))
    )
    with op.batch_alter_table('identity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_identity_person_id'), ['person_id'], unique=False)

    op.create_table('acknowledgement',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('decision_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['decision_id'], ['decision.id'], name=op.f('fk_acknowledgement_decision_id_decision'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_acknowledgement_person_id_person'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_acknowledgement')),
    sa.UniqueConstraint('decision_id', 'person_id', name=op.f('uq_acknowledgement_decision_id'))
    )
    with op.batch_alter_table('acknowledgement', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_acknowledgement_decision_id'), ['decision_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_acknowledgement_person_id'), ['person_id'], unique=False)

    op.create_table('decisionaudience',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('decision_id', sa.Integer(), nullable=False),
    sa.Column('audience_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['audience_id'], ['audience.id'], name=op.f('fk_decisionaudience_audience_id_audience')),
    sa.ForeignKeyConstraint(['decision_id'], ['decision.id'], name=op.f('fk_decisionaudience_decision_id_decision'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_decisionaudience')),
    sa.UniqueConstraint('decision_id', 'audience_id', name=op.f('uq_decisionaudience_decision_id'))
    )
    with op.batch_alter_table('decisionaudience', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decisionaudience_audience_id'), ['audience_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_decisionaudience_decision_id'), ['decision_id'], unique=False)

    op.create_table('question',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('decision_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('asker_id', sa.Integer(), nullable=True),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('asked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answer', sa.Text(), nullable=True),
    sa.Column('answered_by_id', sa.Integer(), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['answered_by_id'], ['person.id'], name=op.f('fk_question_answered_by_id_person'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['asker_id'], ['person.id'], name=op.f('fk_question_asker_id_person'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['decision_id'], ['decision.id'], name=op.f('fk_question_decision_id_decision'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_question'))
    )
    with op.batch_alter_table('question', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_question_decision_id'), ['decision_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('question', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_question_decision_id'))

    op.drop_table('question')
    with op.batch_alter_table('decisionaudience', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decisionaudience_decision_id'))
        batch_op.drop_index(batch_op.f('ix_decisionaudience_audience_id'))

    op.drop_table('decisionaudience')
    with op.batch_alter_table('acknowledgement', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_acknowledgement_person_id'))
        batch_op.drop_index(batch_op.f('ix_acknowledgement_decision_id'))

    op.drop_table('acknowledgement')
    with op.batch_alter_table('identity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_identity_person_id'))

    op.drop_table('identity')
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decision_status'))
        batch_op.drop_index(batch_op.f('ix_decision_author_id'))

    op.drop_table('decision')
    with op.batch_alter_table('auditentry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_auditentry_at'))

    op.drop_table('auditentry')
    with op.batch_alter_table('audiencetarget', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audiencetarget_audience_id'))

    op.drop_table('audiencetarget')
    with op.batch_alter_table('audiencemember', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audiencemember_person_id'))
        batch_op.drop_index(batch_op.f('ix_audiencemember_audience_id'))

    op.drop_table('audiencemember')
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_person_email'))

    op.drop_table('person')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_updates_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_subject'))
        batch_op.drop_index(batch_op.f('ix_outbox_status'))
        batch_op.drop_index(batch_op.f('ix_outbox_platform'))

    op.drop_table('outbox')
    with op.batch_alter_table('inboundevent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inboundevent_received_at'))

    op.drop_table('inboundevent')
    op.drop_table('audience')
