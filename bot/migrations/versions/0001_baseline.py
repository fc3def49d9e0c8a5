"""Baseline: the state store's tables, adopting databases from before versioned migrations.

A database created by an earlier release (tables made at start, columns added as they
appeared) keeps its rows: tables it lacks are created and columns it lacks are added,
nullable. An empty database simply gets every table.

Revision ID: 0001
Revises:
"""

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def _action_requests() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("runbook", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64)),
        sa.Column("cluster", sa.String(64)),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("origin", sa.JSON(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("requested_by", sa.String(64)),
        sa.Column("approved_by", sa.String(64)),
        sa.Column("outcome", sa.Text()),
        sa.Column("verify_at", TZ),
        sa.Column("verify_ref", sa.String(128)),
        sa.Column("approval_ref", sa.String(128)),
    ]


def _alert_posts() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("group_key", sa.String(512), nullable=False, index=True),
        sa.Column("runbook", sa.String(64)),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("ts", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("resolved_at", TZ),
        sa.Column("lease_until", TZ),
        sa.Column("incident_key", sa.String(512), index=True),
        sa.Column("alerts_firing", sa.Integer()),
        sa.Column("alerts_resolved", sa.Integer()),
        sa.Column("version", sa.Integer()),
        sa.Column("shown_version", sa.Integer()),
        sa.Column("refresh_after", TZ),
        sa.Column("digest", sa.Text()),
    ]


def _alert_states() -> list[sa.Column[object]]:
    return [
        sa.Column("fingerprint", sa.String(64), primary_key=True),
        sa.Column("post_id", sa.Integer(), sa.ForeignKey("alert_posts.id"), nullable=False),
        sa.Column("alertname", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("starts_at", sa.String(64), nullable=False),
    ]


def _leases() -> list[sa.Column[object]]:
    return [
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("until", TZ, nullable=False),
    ]


def _seen_requests() -> list[sa.Column[object]]:
    return [
        sa.Column("signature", sa.String(128), primary_key=True),
        sa.Column("seen_at", TZ, nullable=False),
    ]


def _slack_outbox() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", TZ, nullable=False),
        sa.Column("lease_until", TZ),
        sa.Column("ts", sa.String(32)),
        sa.Column("error", sa.String(255)),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("sent_at", TZ),
    ]


def _target_locks() -> list[sa.Column[object]]:
    return [
        sa.Column("target", sa.String(512), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("acquired_at", TZ, nullable=False),
    ]


# In dependency order (alert_states refers to alert_posts).
TABLES: dict[str, Callable[[], list[sa.Column[object]]]] = {
    "action_requests": _action_requests,
    "alert_posts": _alert_posts,
    "alert_states": _alert_states,
    "leases": _leases,
    "seen_requests": _seen_requests,
    "slack_outbox": _slack_outbox,
    "target_locks": _target_locks,
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    for name, columns in TABLES.items():
        if name not in existing:
            op.create_table(name, *columns())  # with the indexes its columns declare
            continue
        present = {c["name"] for c in inspector.get_columns(name)}
        indexed = {ix["name"] for ix in inspector.get_indexes(name)}
        for column in columns():
            if column.name not in present:
                # added to a table that has rows: nullable, whatever the model says
                op.add_column(name, sa.Column(column.name, column.type, nullable=True))
            if column.index and f"ix_{name}_{column.name}" not in indexed:
                op.create_index(f"ix_{name}_{column.name}", name, [column.name])


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
