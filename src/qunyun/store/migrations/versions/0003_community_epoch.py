"""community epoch: tells an engine that another process wrote

Every engine transaction that writes for a community bumps its epoch; at
the start of each transaction an engine compares the epochs with those it
last saw and drops its caches (state, members, accounts, jobs) if another
process wrote in between — an operator's command given from the CLI while
``qunyun run`` is running, say.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("communities", sa.Column("epoch", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    # a plain ALTER TABLE … DROP COLUMN (SQLite ≥ 3.35): rebuilding the table, as
    # batch mode would, is refused while other tables' foreign keys point at it
    op.drop_column("communities", "epoch")
