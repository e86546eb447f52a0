"""The batch ledger: where each batch is in the loop, so a rerun neither repeats nor skips one.

States, in order: received -> validated -> scored -> evaluated, or received -> quarantined.
Every transition is appended to a history table; the current state is kept beside it. A
batch whose last state is not `evaluated` or `quarantined` was interrupted (a killed worker,
MLflow down) and is processed again by the next run; an `evaluated` batch is not, unless
asked to. SQLite by default; any SQLAlchemy URL (PostgreSQL in production).

Retrains are recorded here too, from the moment a monitor run asks for one: requested ->
running -> registered (or failed). A requested or running retrain counts for the cooldown
exactly as a registered one does, so a backfill through the server, whose retrains run later
through an automation, asks for no more retrains than an inline run of the same days.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from driftloop.config import LedgerConfig
from driftloop.errors import ConfigError, DriftloopError, LedgerDamaged, LedgerUnavailable

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


# Who is processing a batch right now: one row per batch while a run holds it. Taking it is one
# conditional statement (an insert, or an update of an expired or dead holder's row), so two runs
# started for the same batch on SQLite or PostgreSQL never both get it.
_claims = sa.Table(
    "driftloop_claims", _metadata,
    sa.Column("batch_id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),  # "<run>@<host>:<pid>"
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

RETRAIN_STATES = ("requested", "running", "registered", "failed")
_retrains = sa.Table(
    "driftloop_retrains", _metadata,
    sa.Column("trigger_id", sa.String(128), primary_key=True),  # "<trigger>@<as_of>"
    sa.Column("trigger", sa.String(128), nullable=False),  # "monitor:<batch>" or "manual"
    sa.Column("as_of", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False, default="[]"),  # JSON list, as the monitor gave them
    sa.Column("monitor_run_id", sa.String(64), nullable=True),
    sa.Column("version", sa.String(16), nullable=True),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, default=""),
)


@dataclass(frozen=True)
class Retrain:
    trigger_id: str
    trigger: str
    as_of: str
    state: str
    reasons: tuple[str, ...]
    monitor_run_id: str | None
    version: str | None
    updated_at: datetime
    detail: str


@dataclass(frozen=True)
class Transition:
    batch_id: str
    state: str
    at: datetime
    detail: str


@dataclass(frozen=True)
class Claim:
    batch_id: str
    owner: str
    claimed_at: datetime
    expires_at: datetime


def claim_owner(run: str) -> str:
    """Who holds a claim: the run, and the process it runs in (a dead process's claim is taken over at once)."""
    return f"{run}@{socket.gethostname()}:{os.getpid()}"


def _dead_here(owner: str) -> bool:
    """Whether ``owner`` was a process on this machine that no longer runs."""
    host, _, pid = owner.rpartition("@")[2].rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: only its lease can say it is gone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _store_error(url: str, exc: BaseException) -> DriftloopError | None:
    """A one-line error for a ledger database that is damaged or out of reach (None: any other error,
    such as the integrity errors that claims rely on)."""
    original = getattr(exc, "orig", None) or exc
    reason = (str(original).strip().splitlines() or [type(original).__name__])[0][:200]
    if isinstance(exc, sa.exc.OperationalError) and ("connect" in reason.lower() or getattr(exc, "connection_invalidated", False)):
        return LedgerUnavailable(f"the ledger database {url} is unreachable ({reason}); start it, or fix ledger.url")
    if type(original).__name__ == "DatabaseError" or "malformed" in reason or "not a database" in reason:
        return LedgerDamaged(f"the ledger database {url} cannot be read ({reason}); restore it from a backup, or point "
                             "ledger.url at a new database (the monitoring history lives there too)")
    return None


@functools.lru_cache(maxsize=8)
def engine(url: str) -> sa.Engine:
    """One engine (and one create_all) per URL and process, however many Ledger objects are made;
    the monitoring history (driftloop.history) keeps its tables in the same database. A database that
    is damaged or down is one line wherever it is used (the ledger, the history, the metrics endpoint)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        opened = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        raise ConfigError(f"ledger at {url} cannot be opened ({type(exc).__name__}: {exc}); fix ledger.url") from None

    @sa.event.listens_for(opened, "handle_error")
    def _one_line(context) -> None:
        found = _store_error(url, context.sqlalchemy_exception or context.original_exception)
        if found is not None:
            raise found from None

    try:
        _metadata.create_all(opened)
    except sa.exc.DatabaseError as exc:  # an error the listener did not recognise
        raise ConfigError(f"ledger at {url} cannot be opened ({type(exc).__name__}); fix ledger.url") from None
    return opened


class Ledger:
    def __init__(self, cfg: LedgerConfig):
        self.engine = engine(cfg.url)

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

    def states(self) -> dict[str, str]:
        """Every batch the ledger knows, with its current state (one query)."""
        with self.engine.connect() as conn:
            return {r.batch_id: r.state for r in conn.execute(sa.select(_batches.c.batch_id, _batches.c.state))}

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

    # -- claims -----------------------------------------------------------------------

    def claim(self, batch_id: str, owner: str, lease: timedelta) -> Claim | None:
        """Take ``batch_id`` for ``owner`` until ``lease`` from now; None when another live holder has it.

        A holder's claim ends when it releases it, when its lease expires, or (on the same machine)
        as soon as its process is gone: a run killed mid-batch does not block the rerun."""
        now = datetime.now(timezone.utc)
        try:
            with self.engine.begin() as conn:
                conn.execute(_claims.insert().values(batch_id=batch_id, owner=owner, claimed_at=now, expires_at=now + lease))
            return Claim(batch_id, owner, now, now + lease)
        except sa.exc.IntegrityError:
            pass
        held = self.holder(batch_id)
        if held is None:  # released between our insert and our look: try once more
            return self.claim(batch_id, owner, lease)
        if held.owner == owner or _aware(held.expires_at) <= now or _dead_here(held.owner):
            with self.engine.begin() as conn:  # conditional on the row we saw: of two takers, one wins
                taken = conn.execute(_claims.update().where(
                    (_claims.c.batch_id == batch_id) & (_claims.c.owner == held.owner) & (_claims.c.claimed_at == held.claimed_at)
                ).values(owner=owner, claimed_at=now, expires_at=now + lease)).rowcount
            if taken == 1:
                return Claim(batch_id, owner, now, now + lease)
        return None

    def holder(self, batch_id: str) -> Claim | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(_claims).where(_claims.c.batch_id == batch_id)).first()
        return Claim(row.batch_id, row.owner, row.claimed_at, row.expires_at) if row else None

    def release(self, batch_id: str, owner: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(_claims.delete().where((_claims.c.batch_id == batch_id) & (_claims.c.owner == owner)))

    # -- retrains ---------------------------------------------------------------------

    def request_retrain(self, trigger: str, as_of: str, reasons: list[str] | tuple[str, ...] = (),
                        monitor_run_id: str | None = None) -> bool:
        """Record that a retrain was asked for; False if this trigger already has one (nothing is written)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(_retrains.insert().values(
                    trigger_id=retrain_id(trigger, as_of), trigger=trigger, as_of=as_of, state="requested",
                    reasons=json.dumps(list(reasons)), monitor_run_id=monitor_run_id, version=None,
                    updated_at=datetime.now(timezone.utc), detail=""))
        except sa.exc.IntegrityError:  # the primary key makes the request idempotent across processes
            return False
        return True

    def retrain_state(self, trigger: str, as_of: str, state: str, version: str | None = None, detail: str = "") -> None:
        """Move a retrain on (creating its entry, for a retrain started by hand)."""
        if state not in RETRAIN_STATES:
            raise ValueError(f"unknown retrain state {state!r}; one of {', '.join(RETRAIN_STATES)}")
        self.request_retrain(trigger, as_of)
        with self.engine.begin() as conn:
            conn.execute(_retrains.update().where(_retrains.c.trigger_id == retrain_id(trigger, as_of)).values(
                state=state, version=version, updated_at=datetime.now(timezone.utc), detail=detail[:2000]))

    def retrains(self, state: str | None = None, before: str | None = None) -> list[Retrain]:
        """Retrains oldest first, optionally only those in ``state`` with ``as_of`` before ``before``."""
        query = sa.select(_retrains).order_by(_retrains.c.as_of, _retrains.c.trigger_id)
        if state is not None:
            query = query.where(_retrains.c.state == state)
        if before is not None:
            query = query.where(_retrains.c.as_of < before)
        with self.engine.connect() as conn:
            return [Retrain(r.trigger_id, r.trigger, r.as_of, r.state, tuple(json.loads(r.reasons)), r.monitor_run_id,
                            r.version, r.updated_at, r.detail) for r in conn.execute(query)]

    def last_retrain_as_of(self) -> str | None:
        """The newest ``as_of`` of a retrain that is requested, running or registered (a failed one does not hold the next back)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(_retrains.c.as_of)).where(_retrains.c.state != "failed")).scalar()


def _aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; every one the ledger writes is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def retrain_id(trigger: str, as_of: str) -> str:
    """One retrain per trigger: the key of its ledger entry and of its version's `trigger_id` tag."""
    return f"{trigger}@{as_of}"
