"""Catalogue database (SQLAlchemy 2): designs, indexed images, crops with thumbnails, dislikes.

SQLite file by default; any SQLAlchemy URL (PostgreSQL in production). Calls are blocking; the
gateway runs them in worker threads.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, LargeBinary, String, create_engine, event, func, select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from designsearch.errors import BackendUnavailable
from designsearch.logs import get_logger

log = get_logger("catalogue")


class Base(DeclarativeBase):
    """Declarative base of the catalogue tables."""


class DesignRow(Base):
    """A design: what a match names (brand, model, year)."""

    __tablename__ = "designs"
    design_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    brand: Mapped[str] = mapped_column(String(128), index=True)
    model: Mapped[str] = mapped_column(String(256))
    year: Mapped[int] = mapped_column(Integer, index=True)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)


class ImageRow(Base):
    """A catalogue image indexed with one embedder version (the idempotency record)."""

    __tablename__ = "images"
    image_id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the bytes
    model_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    design_id: Mapped[str] = mapped_column(ForeignKey("designs.design_id"), index=True)
    source: Mapped[str] = mapped_column(String(1024), default="")
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    crops: Mapped[int] = mapped_column(Integer)  # points of this image: its crops and its whole picture
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(timezone.utc))


class CropRow(Base):
    """One indexed region (one point in the vector index): a crop, or the whole picture (kind
    ``whole_image``), with its thumbnail."""

    __tablename__ = "crops"
    point_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    image_id: Mapped[str] = mapped_column(String(64), index=True)
    design_id: Mapped[str] = mapped_column(String(128), index=True)
    x1: Mapped[int] = mapped_column(Integer)
    y1: Mapped[int] = mapped_column(Integer)
    x2: Mapped[int] = mapped_column(Integer)
    y2: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    thumbnail: Mapped[bytes] = mapped_column(LargeBinary)


class FeedbackRow(Base):
    """Designer feedback: ``user_id`` said ``design_id`` is not similar to the query image ``query_id``
    (answered by embedder ``model_version``)."""

    __tablename__ = "feedback"
    query_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    design_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(timezone.utc))


def migrate(engine) -> None:
    """Bring the catalogue schema to the latest Alembic revision (``designsearch/gateway/migrations``).

    A database made before migrations existed (tables, no ``alembic_version``) is stamped with the
    revision its tables match first, then upgraded. Several gateway replicas may start at once: on
    PostgreSQL the upgrade holds a transaction-level advisory lock (the others wait, then find nothing to
    do); on SQLite, where two upgrades can race ("table ... already exists", "database is locked"), a failed
    attempt is rolled back and retried (5 attempts, 0.2-1 s apart).

    Raises:
        sqlalchemy.exc.OperationalError: the database cannot be reached (after the attempts).
    """
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect, text

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    for attempt in range(5):
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                cfg.attributes["connection"] = conn
                tables = set(inspect(conn).get_table_names())
                if "designs" in tables and "alembic_version" not in tables:
                    command.stamp(cfg, "0002" if "feedback" in tables else "0001")
                command.upgrade(cfg, "head")
            return
        except OperationalError as exc:
            if attempt == 4:
                raise
            log.info("catalogue_migration_retry", attempt=attempt + 1, error=str(exc.orig)[:200])
            time.sleep(0.2 * (attempt + 1))


#: PostgreSQL advisory-lock key held while the catalogue schema is upgraded (any fixed 64-bit number).
MIGRATION_LOCK_KEY = 0x64736361745F6D67  # "dscat_mg"


@dataclass
class CropRecord:
    """Crop metadata joined with its design, as the gateway merges it into matches."""

    point_id: str
    image_id: str
    box: tuple[int, int, int, int]
    kind: str
    thumbnail: bytes
    design: DesignRow
    source: str


class Catalogue:
    """Design records behind a SQLAlchemy engine.

    Args:
        url: SQLAlchemy URL; ``sqlite:///path`` creates the folder and enables WAL.
        busy_timeout_ms: how long a SQLite write waits for a lock before it fails, ms.
        write_attempts: tries of :meth:`add_image` when the database is busy or a concurrent
            ingestion conflicts (exponential back-off from 0.1 s between them).

    Raises:
        BackendUnavailable: the database cannot be reached at construction.
    """

    def __init__(self, url: str, busy_timeout_ms: int = 5000, write_attempts: int = 4) -> None:
        self.write_attempts = write_attempts
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url, pool_pre_ping=True)
        if url.startswith("sqlite"):
            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _):  # noqa: ANN001
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
                cur.close()

        try:
            migrate(self.engine)
        except OperationalError as exc:
            log.error("catalogue_unavailable", error_type=type(exc).__name__, error=str(exc.orig))
            raise BackendUnavailable("catalogue database unavailable (see the gateway log)") from exc
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _session(self) -> Session:
        return self.sessions()

    def indexed_points(self, image_id: str, model_version: str) -> int | None:
        """Number of points (crop rows) recorded for this image and embedder version; None when the
        image is not indexed with that version."""
        with self._session() as s:
            row = s.get(ImageRow, (image_id, model_version))
            return None if row is None else row.crops

    def image_design(self, image_id: str, model_version: str) -> str | None:
        """The design an image is catalogued under for this embedder version, or None."""
        with self._session() as s:
            row = s.get(ImageRow, (image_id, model_version))
            return None if row is None else row.design_id

    def point_kind(self, point_id: str) -> str | None:
        """``kind`` of the crop row of a point (``wheel``, ``closeup``, ``whole_image``), or None."""
        with self._session() as s:
            row = s.get(CropRow, point_id)
            return None if row is None else row.kind

    def add_image(
        self,
        design: dict,
        image_id: str,
        model_version: str,
        source: str,
        size: tuple[int, int],
        crops: Sequence[dict],
    ) -> None:
        """Record a design (insert or update), an indexed image and its crops in one transaction.

        Called after the vectors are stored, so an image row means "fully indexed" and a crash
        before it makes the next ingestion redo that image (upserts are idempotent).

        Args:
            design: ``design_id``, ``brand``, ``model``, ``year``, ``attributes``.
            image_id: sha256 of the image bytes.
            model_version: embedder version the vectors were made with.
            source: file name or URI.
            size: ``(width, height)`` px.
            crops: ``point_id``, ``box`` (x1, y1, x2, y2), ``kind``, ``thumbnail`` (JPEG bytes).

        Raises:
            BackendUnavailable: the database stayed busy for every attempt, or another database error.
        """
        import time

        for attempt in range(self.write_attempts):
            last = attempt == self.write_attempts - 1
            try:
                self._add_image(design, image_id, model_version, source, size, crops)
                return
            except IntegrityError:
                # a concurrent ingestion inserted the same design first: retry, it now exists
                if last:
                    raise BackendUnavailable("catalogue write kept conflicting; retry") from None
            except OperationalError as exc:  # busy (locked database, lock timeout, serialization failure)
                log.warning("catalogue_busy", attempt=attempt + 1, error_type=type(exc).__name__,
                            error=str(getattr(exc, "orig", exc)))
                if last:
                    raise BackendUnavailable("catalogue is busy; retry (details in the gateway log)") from exc
            except SQLAlchemyError as exc:  # the client gets no SQL and no parameters; the log has the error
                log.error("catalogue_write_failed", error_type=type(exc).__name__, error=str(getattr(exc, "orig", exc)))
                raise BackendUnavailable("catalogue write failed; retry (details in the gateway log)") from exc
            time.sleep(0.1 * 2 ** attempt)

    def _add_image(self, design, image_id, model_version, source, size, crops) -> None:
        with self._session() as s, s.begin():
            with s.no_autoflush:
                row = s.get(DesignRow, design["design_id"])
                if row is None:
                    s.add(DesignRow(**design))
                else:
                    row.brand, row.model, row.year = design["brand"], design["model"], design["year"]
                    row.attributes = design.get("attributes", {})
                for c in crops:
                    x1, y1, x2, y2 = c["box"]
                    s.merge(CropRow(point_id=c["point_id"], image_id=image_id, design_id=design["design_id"],
                                    x1=x1, y1=y1, x2=x2, y2=y2, kind=c["kind"], thumbnail=c["thumbnail"]))
                s.merge(ImageRow(image_id=image_id, model_version=model_version, design_id=design["design_id"],
                                 source=source, width=size[0], height=size[1], crops=len(crops)))

    def crops(self, point_ids: Iterable[str]) -> dict[str, CropRecord]:
        """Crop records (with design and source) for these point ids; unknown ids are skipped."""
        ids = list(dict.fromkeys(point_ids))
        if not ids:
            return {}
        with self._session() as s:
            rows = s.execute(
                select(CropRow, DesignRow, ImageRow.source)
                .join(DesignRow, DesignRow.design_id == CropRow.design_id)
                .join(ImageRow, ImageRow.image_id == CropRow.image_id)
                .where(CropRow.point_id.in_(ids))
            ).all()
        out = {}
        for crop, design, source in rows:
            out[crop.point_id] = CropRecord(crop.point_id, crop.image_id, (crop.x1, crop.y1, crop.x2, crop.y2),
                                            crop.kind, crop.thumbnail, design, source)
        return out

    def add_dislike(self, query_id: str, design_id: str, user_id: str = "anonymous", model_version: str = "") -> None:
        """Store feedback (idempotent per query, design and user)."""
        with self._session() as s, s.begin():
            s.merge(FeedbackRow(query_id=query_id, design_id=design_id, user_id=user_id, model_version=model_version))

    def disliked(self, query_id: str, user_id: str = "anonymous") -> list[str]:
        """Design ids ``user_id`` disliked for this query image (oldest first)."""
        with self._session() as s:
            return list(s.scalars(select(FeedbackRow.design_id)
                                  .where(FeedbackRow.query_id == query_id, FeedbackRow.user_id == user_id)
                                  .order_by(FeedbackRow.created_at)))

    def feedback(self) -> list[dict]:
        """Every feedback row, oldest first: ``query_id``, ``design_id``, ``user_id``, ``model_version``, ``created_at`` (ISO)."""
        with self._session() as s:
            return [{"query_id": r.query_id, "design_id": r.design_id, "user_id": r.user_id,
                     "model_version": r.model_version, "created_at": r.created_at.isoformat()}
                    for r in s.scalars(select(FeedbackRow).order_by(FeedbackRow.created_at))]

    def design_exists(self, design_id: str) -> bool:
        """True when the design is in the catalogue."""
        with self._session() as s:
            return s.get(DesignRow, design_id) is not None

    # ------------------------------------------------------------ catalogue management
    @staticmethod
    def _summary(row: DesignRow, images: int) -> dict:
        return {"design_id": row.design_id, "brand": row.brand, "model": row.model, "year": row.year,
                "attributes": dict(row.attributes or {}), "images": images}

    def _images_count(self, s: Session, design_ids: Sequence[str]) -> dict[str, int]:
        rows = s.execute(select(ImageRow.design_id, func.count(func.distinct(ImageRow.image_id)))
                         .where(ImageRow.design_id.in_(list(design_ids))).group_by(ImageRow.design_id))
        return dict(rows.all())

    def list_designs(self, brands: Sequence[str] = (), year_min: int | None = None, year_max: int | None = None,
                     after: str = "", limit: int = 50) -> list[dict]:
        """Designs ordered by id, those after ``after`` (keyset pagination), at most ``limit``,
        filtered by brands and an inclusive year range; each with its image count."""
        q = select(DesignRow).where(DesignRow.design_id > after).order_by(DesignRow.design_id).limit(limit)
        if brands:
            q = q.where(DesignRow.brand.in_(list(brands)))
        if year_min is not None:
            q = q.where(DesignRow.year >= year_min)
        if year_max is not None:
            q = q.where(DesignRow.year <= year_max)
        with self._session() as s:
            rows = list(s.scalars(q))
            counts = self._images_count(s, [r.design_id for r in rows])
            return [self._summary(r, counts.get(r.design_id, 0)) for r in rows]

    def get_design(self, design_id: str) -> dict | None:
        """The design with its image count, or None."""
        with self._session() as s:
            row = s.get(DesignRow, design_id)
            return None if row is None else self._summary(row, self._images_count(s, [design_id]).get(design_id, 0))

    def update_design(self, design_id: str, changes: dict) -> dict | None:
        """Set ``brand``/``model``/``year``/``attributes`` of a design; returns it, or None if unknown."""
        with self._session() as s, s.begin():
            row = s.get(DesignRow, design_id)
            if row is None:
                return None
            for key, value in changes.items():
                setattr(row, key, value)
            images = self._images_count(s, [design_id]).get(design_id, 0)
            return self._summary(row, images)

    def design_points(self, design_ids: Iterable[str], model_version: str | None = None) -> list[tuple[str, str, int]]:
        """``(image_id, model_version, points)`` of every indexed image of these designs, for one
        embedder version or all."""
        ids = list(dict.fromkeys(design_ids))
        if not ids:
            return []
        q = select(ImageRow).where(ImageRow.design_id.in_(ids))
        if model_version is not None:
            q = q.where(ImageRow.model_version == model_version)
        with self._session() as s:
            return [(r.image_id, r.model_version, r.crops) for r in s.scalars(q)]

    def delete_design(self, design_id: str) -> int:
        """Delete a design, its image and crop rows (thumbnails) and its feedback; returns the
        number of distinct images removed (0 when the design is unknown)."""
        from sqlalchemy import delete

        with self._session() as s, s.begin():
            images = self._images_count(s, [design_id]).get(design_id, 0)
            s.execute(delete(CropRow).where(CropRow.design_id == design_id))
            s.execute(delete(ImageRow).where(ImageRow.design_id == design_id))
            s.execute(delete(FeedbackRow).where(FeedbackRow.design_id == design_id))
            s.execute(delete(DesignRow).where(DesignRow.design_id == design_id))
            return images

    def stats(self, model_version: str) -> tuple[int, int]:
        """``(designs, images indexed with model_version)``."""
        with self._session() as s:
            designs = s.scalar(select(func.count()).select_from(DesignRow)) or 0
            images = s.scalar(select(func.count()).select_from(ImageRow).where(ImageRow.model_version == model_version)) or 0
        return designs, images

    def close(self) -> None:
        """Dispose of the connection pool."""
        self.engine.dispose()
