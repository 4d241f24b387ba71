"""report rollups kept by the engine: member_months (member values), checkin_streaks

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 02:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_months",
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("community_id", sa.String(length=64), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("last_points_day", sa.Date(), nullable=True),
        sa.Column("points", sa.Double(), nullable=False),
        sa.Column("weighted", sa.Double(), nullable=False),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("links_media", sa.BigInteger(), nullable=False),
        sa.Column("attention", sa.BigInteger(), nullable=False),
        sa.Column("need_core", sa.Double(), nullable=False),
        sa.Column("need_active", sa.Double(), nullable=False),
        sa.Column("need_casual", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_months_member_id_members")),
        sa.PrimaryKeyConstraint("member_id", "month", name=op.f("pk_member_months")),
    )
    op.create_index(op.f("ix_member_months_community_id_month"), "member_months", ["community_id", "month"])
    op.create_table(
        "checkin_streaks",
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("community_id", sa.String(length=64), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("longest", sa.Integer(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_checkin_streaks_member_id_members")),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_checkin_streaks")),
    )
    op.create_index(op.f("ix_checkin_streaks_community_id"), "checkin_streaks", ["community_id"])
    # fill from the rollups already there (the same computation the engine does event by event)
    from qunyun.store.member_months import rebuild, streaks_sql

    bind = op.get_bind()
    rebuild(bind)
    bind.exec_driver_sql(streaks_sql(bind.dialect.name))


def downgrade() -> None:
    op.drop_index(op.f("ix_checkin_streaks_community_id"), table_name="checkin_streaks")
    op.drop_table("checkin_streaks")
    op.drop_index(op.f("ix_member_months_community_id_month"), table_name="member_months")
    op.drop_table("member_months")
