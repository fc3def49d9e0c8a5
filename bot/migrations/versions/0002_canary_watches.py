"""Canary watches: a watched canary's phase, state and Slack message, kept across restarts.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "canary_watches",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("target", sa.String(320), nullable=False, index=True),
        sa.Column("cluster", sa.String(64)),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("started_by", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, index=True),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("passing_since", sa.Float()),
        sa.Column("message_ts", sa.String(32)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("baseline", sa.JSON()),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("canary_watches")
