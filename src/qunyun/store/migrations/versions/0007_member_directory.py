"""member directory: the console's compact search table (member_directory, member_directory_state)

The rows are derived data: the console fills them on first use (and at its
warm-up) and keeps them current from then on, so the migration only creates
the tables.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from qunyun.store.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_SORTS = {
    "last_seen": "last_seen_at",
    "first_seen": "first_seen_at",
    "name": "name_key",
    "points": "points",
    "level": "level",
    "messages": "messages",
    "view": "view",  # a viewer's rows, by id
}


def upgrade() -> None:
    op.create_table(
        "member_directory",
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False,
                  autoincrement=False),
        sa.Column("community_id", sa.String(length=64), nullable=False),
        sa.Column("view", sa.Integer(), nullable=False),
        sa.Column("name_key", sa.String(length=256), nullable=False),
        sa.Column("search", sa.Text(), nullable=False),
        sa.Column("viewer_len", sa.Integer(), nullable=False),
        sa.Column("expertise", sa.Text(), nullable=False),
        sa.Column("expertise_len", sa.Integer(), nullable=False),
        sa.Column("city", sa.Text(), nullable=False),
        sa.Column("city_len", sa.Integer(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("groups", sa.Text(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_directory_member_id_members")),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_directory")),
    )
    for name, column in _SORTS.items():
        op.create_index(f"ix_member_directory_{name}", "member_directory", ["community_id", column, "member_id"])
    op.create_table(
        "member_directory_state",
        sa.Column("community_id", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("member_mark", sa.BigInteger(), nullable=False),
        sa.Column("event_mark", sa.BigInteger(), nullable=False),
        sa.Column("posting_mark", sa.BigInteger(), nullable=False),
        sa.Column("record_mark", sa.BigInteger(), nullable=False),
        sa.Column("state_mark", UTCDateTime(), nullable=True),
        sa.Column("built_at", UTCDateTime(), nullable=False),
        sa.Column("refreshed_at", UTCDateTime(), nullable=False),
        sa.Column("refreshed_rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("community_id", name=op.f("pk_member_directory_state")),
    )


def downgrade() -> None:
    op.drop_table("member_directory_state")
    for name in _SORTS:
        op.drop_index(f"ix_member_directory_{name}", table_name="member_directory")
    op.drop_table("member_directory")
