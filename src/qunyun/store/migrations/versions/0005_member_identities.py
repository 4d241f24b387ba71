"""member identities: one member, several platform ids

A member's other platform ids (a Telegram account and a Matrix account of
the same person, say), linked by an operator. Events from any of them count
for the one member.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 02:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import qunyun.store.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_identities",
        sa.Column("community_id", sa.String(length=64), nullable=False),
        sa.Column("platform", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=256), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("linked_at", qunyun.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("linked_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["community_id"], ["communities.id"], name=op.f("fk_member_identities_community_id_communities")
        ),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_member_identities_member_id_members")),
        sa.PrimaryKeyConstraint("community_id", "platform", "user_id", name=op.f("pk_member_identities")),
    )
    op.create_index(op.f("ix_member_identities_member_id"), "member_identities", ["member_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_member_identities_member_id"), table_name="member_identities")
    op.drop_table("member_identities")
