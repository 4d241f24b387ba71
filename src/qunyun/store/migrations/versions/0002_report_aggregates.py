"""report aggregates: group_days, member_groups, community_days, retention_cells

Coarser aggregates the engine keeps beside the rollups, in the same
transaction, so the health report reads thousands of rows instead of
millions; two indexes on rollups for windows of days and for per-member
look-ups. Existing rollups are summed into the new tables (backfill).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _backfill(dialect: str) -> list[str]:
    # A frozen copy of qunyun.store.models.aggregate_sql as of this revision.
    if dialect == "sqlite":
        week = "date(day, '-' || ((CAST(strftime('%w', day) AS INTEGER) + 6) % 7) || ' days')"
    else:
        week = "CAST(date_trunc('week', day) AS date)"
    return [
        """INSERT INTO group_days (group_id, day, community_id, messages, speakers, joins, leaves, checkins)
           SELECT group_id, day, min(community_id), sum(messages),
                  sum(CASE WHEN messages > 0 THEN 1 ELSE 0 END), sum(joins), sum(leaves),
                  sum(CASE WHEN checkins > 0 THEN 1 ELSE 0 END)
           FROM rollups GROUP BY group_id, day""",
        """INSERT INTO member_groups (group_id, member_id, community_id, first_day, first_message_day,
                                      last_message_day, messages, checkin_days)
           SELECT group_id, member_id, min(community_id), min(day),
                  min(CASE WHEN messages > 0 THEN day END), max(CASE WHEN messages > 0 THEN day END),
                  sum(messages), sum(CASE WHEN checkins > 0 THEN 1 ELSE 0 END)
           FROM rollups GROUP BY group_id, member_id""",
        """INSERT INTO community_days (community_id, day, speakers)
           SELECT community_id, day, count(DISTINCT member_id)
           FROM rollups WHERE messages > 0 GROUP BY community_id, day""",
        f"""INSERT INTO retention_cells (community_id, cohort, week, speakers)
            SELECT community_id, cohort, week, count(*) FROM (
                SELECT community_id, week, min(week) OVER (PARTITION BY member_id) AS cohort FROM (
                    SELECT DISTINCT community_id, member_id, {week} AS week
                    FROM rollups WHERE messages > 0
                ) mw
            ) x GROUP BY community_id, cohort, week""",
    ]


def upgrade() -> None:
    op.create_table(
        "group_days",
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("community_id", sa.String(length=64), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("speakers", sa.Integer(), nullable=False),
        sa.Column("joins", sa.Integer(), nullable=False),
        sa.Column("leaves", sa.Integer(), nullable=False),
        sa.Column("checkins", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name=op.f("fk_group_days_group_id_groups")),
        sa.PrimaryKeyConstraint("group_id", "day", name=op.f("pk_group_days")),
    )
    op.create_index(op.f("ix_group_days_community_id_day"), "group_days", ["community_id", "day"])
    op.create_table(
        "member_groups",
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("community_id", sa.String(length=64), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("first_message_day", sa.Date(), nullable=True),
        sa.Column("last_message_day", sa.Date(), nullable=True),
        sa.Column("messages", sa.BigInteger(), nullable=False),
        sa.Column("checkin_days", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["groups.id"], name=op.f("fk_member_groups_group_id_groups")),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_groups_member_id_members")),
        sa.PrimaryKeyConstraint("group_id", "member_id", name=op.f("pk_member_groups")),
    )
    op.create_index(op.f("ix_member_groups_community_id"), "member_groups", ["community_id"])
    op.create_index(op.f("ix_member_groups_member_id"), "member_groups", ["member_id"])
    op.create_table(
        "community_days",
        sa.Column("community_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("speakers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("community_id", "day", name=op.f("pk_community_days")),
    )
    op.create_table(
        "retention_cells",
        sa.Column("community_id", sa.String(length=64), nullable=False),
        sa.Column("cohort", sa.Date(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("speakers", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("community_id", "cohort", "week", name=op.f("pk_retention_cells")),
    )
    op.create_index(op.f("ix_rollups_community_id_day"), "rollups", ["community_id", "day"])
    op.create_index(op.f("ix_rollups_member_id_day"), "rollups", ["member_id", "day"])
    op.create_index(
        op.f("ix_rollups_joins"), "rollups", ["community_id", "day"],
        sqlite_where=sa.text("joins > 0"), postgresql_where=sa.text("joins > 0"),
    )
    op.create_index(
        op.f("ix_rollups_checkins"), "rollups", ["community_id", "day", "member_id"],
        sqlite_where=sa.text("checkins > 0"), postgresql_where=sa.text("checkins > 0"),
    )
    bind = op.get_bind()
    for sql in _backfill(bind.dialect.name):
        op.execute(sa.text(sql))


def downgrade() -> None:
    op.drop_index(op.f("ix_rollups_checkins"), table_name="rollups")
    op.drop_index(op.f("ix_rollups_joins"), table_name="rollups")
    op.drop_index(op.f("ix_rollups_member_id_day"), table_name="rollups")
    op.drop_index(op.f("ix_rollups_community_id_day"), table_name="rollups")
    op.drop_table("retention_cells")
    op.drop_table("community_days")
    op.drop_index(op.f("ix_member_groups_member_id"), table_name="member_groups")
    op.drop_index(op.f("ix_member_groups_community_id"), table_name="member_groups")
    op.drop_table("member_groups")
    op.drop_index(op.f("ix_group_days_community_id_day"), table_name="group_days")
    op.drop_table("group_days")
