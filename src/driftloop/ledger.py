"""The batch ledger: where each batch is in the loop, so a rerun neither repeats nor skips one.

States, in order: received -> validated -> scored -> evaluated, or received -> quarantined.
Every transition is appended to a history table; the current state is kept beside it. A
batch whose last state is not `evaluated` or `quarantined` was interrupted (a killed worker,
MLflow down) and is processed again by the next run; an `evaluated` batch is not, unless
asked to. SQLite by default; any SQLAlchemy URL (PostgreSQL in production).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from driftloop.config import LedgerConfig
from driftloop.errors import ConfigError

STATES = ("received", "validated", "quarantined", "scored", "evaluated")
DONE = ("evaluated", "quarantined")

_metadata = sa.MetaData()
_batches = sa.Table(
    "driftloop_batches", _metadata,
    sa.Column("batch_id", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
_transitions = sa.Table(
    "driftloop_batch_transitions", _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("batch_id", sa.String(64), nullable=False, index=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)


@dataclass(frozen=True)
class Transition:
    batch_id: str
    state: str
    at: datetime
    detail: str


@functools.lru_cache(maxsize=8)
def _engine(url: str) -> sa.Engine:
    """One engine (and one create_all) per URL and process, however many Ledger objects are made."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(url)
        _metadata.create_all(engine)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, sa.exc.OperationalError) as exc:
        raise ConfigError(f"ledger at {url} cannot be opened ({type(exc).__name__}); fix ledger.url") from None
    return engine


class Ledger:
    def __init__(self, cfg: LedgerConfig):
        self.engine = _engine(cfg.url)

    def record(self, batch_id: str, state: str, detail: str = "") -> None:
        if state not in STATES:
            raise ValueError(f"unknown ledger state {state!r}; one of {', '.join(STATES)}")
        now = datetime.now(timezone.utc)
        with self.engine.begin() as conn:  # one transaction: history and current state never disagree
            conn.execute(_transitions.insert().values(batch_id=batch_id, state=state, at=now, detail=detail[:2000]))
            updated = conn.execute(_batches.update().where(_batches.c.batch_id == batch_id).values(state=state, updated_at=now))
            if updated.rowcount == 0:
                conn.execute(_batches.insert().values(batch_id=batch_id, state=state, updated_at=now))

    def state(self, batch_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(_batches.c.state).where(_batches.c.batch_id == batch_id)).scalar()

    def history(self, batch_id: str | None = None) -> list[Transition]:
        query = sa.select(_transitions).order_by(_transitions.c.id)
        if batch_id is not None:
            query = query.where(_transitions.c.batch_id == batch_id)
        with self.engine.connect() as conn:
            return [Transition(r.batch_id, r.state, r.at, r.detail) for r in conn.execute(query)]

    def unfinished(self) -> list[str]:
        """Batches that started and were cut off: the next run picks them up."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(_batches.c.batch_id).where(_batches.c.state.not_in(DONE)).order_by(_batches.c.batch_id))
            return [r.batch_id for r in rows]
