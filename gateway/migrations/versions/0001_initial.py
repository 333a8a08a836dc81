"""The catalogue as first released: designs, images, crops (with thumbnails), dislikes.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "designs",
        sa.Column("design_id", sa.String(128), primary_key=True),
        sa.Column("brand", sa.String(128), nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
    )
    op.create_index("ix_designs_brand", "designs", ["brand"])
    op.create_index("ix_designs_year", "designs", ["year"])
    op.create_table(
        "images",
        sa.Column("image_id", sa.String(64), primary_key=True),
        sa.Column("model_version", sa.String(64), primary_key=True),
        sa.Column("design_id", sa.String(128), sa.ForeignKey("designs.design_id"), nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("crops", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_images_design_id", "images", ["design_id"])
    op.create_table(
        "crops",
        sa.Column("point_id", sa.String(36), primary_key=True),
        sa.Column("image_id", sa.String(64), nullable=False),
        sa.Column("design_id", sa.String(128), nullable=False),
        sa.Column("x1", sa.Integer, nullable=False),
        sa.Column("y1", sa.Integer, nullable=False),
        sa.Column("x2", sa.Integer, nullable=False),
        sa.Column("y2", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("thumbnail", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_crops_image_id", "crops", ["image_id"])
    op.create_index("ix_crops_design_id", "crops", ["design_id"])
    op.create_table(
        "dislikes",
        sa.Column("query_id", sa.String(64), primary_key=True),
        sa.Column("design_id", sa.String(128), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("dislikes", "crops", "images", "designs"):
        op.drop_table(table)
