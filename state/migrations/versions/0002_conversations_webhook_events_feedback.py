"""conversations, webhook events, feedback

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "answer_feedback",
        sa.Column("turn_id", sa.String(length=64), nullable=False),
        sa.Column("rating", sa.String(length=10), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("turn", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("turn_id", name=op.f("pk_answer_feedback")),
    )
    op.create_index(op.f("ix_answer_feedback_updated_at"), "answer_feedback", ["updated_at"])

    op.create_table(
        "conversation_messages",
        sa.Column("conversation", sa.String(length=300), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("conversation", "position", name=op.f("pk_conversation_messages")),
    )
    op.create_table(
        "webhook_events",
        sa.Column("event_id", sa.String(length=300), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_webhook_events")),
    )
    op.create_index(op.f("ix_webhook_events_seen_at"), "webhook_events", ["seen_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_events_seen_at"), table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_table("conversation_messages")
    op.drop_index(op.f("ix_answer_feedback_updated_at"), table_name="answer_feedback")
    op.drop_table("answer_feedback")
