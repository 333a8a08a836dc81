"""Feedback per caller and model version (issue 11): ``feedback`` replaces ``dislikes``, whose rows
move over as the anonymous caller's.

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("query_id", sa.String(64), primary_key=True),
        sa.Column("design_id", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("INSERT INTO feedback (query_id, design_id, user_id, model_version, created_at) "
               "SELECT query_id, design_id, 'anonymous', '', created_at FROM dislikes")
    op.drop_table("dislikes")


def downgrade() -> None:
    op.create_table(
        "dislikes",
        sa.Column("query_id", sa.String(64), primary_key=True),
        sa.Column("design_id", sa.String(128), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute("INSERT INTO dislikes (query_id, design_id, created_at) "
               "SELECT query_id, design_id, MIN(created_at) FROM feedback GROUP BY query_id, design_id")
    op.drop_table("feedback")
