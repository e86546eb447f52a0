"""Who may become champion, who is offered for review, and what the audit trail says: pure rules.

The registry adapter (MLflow) and the review flow (Prefect) both ask these functions, so a
form in the Prefect UI, the CLI and a script follow one rule:

- Only a version that passed the promotion gate takes the ``challenger`` alias, and while one
  waits for review a newer version takes it only if it credibly beats the waiting one.
- A version is promoted without an override only if it is the current challenger, passed the
  gate and was trained on data newer than the champion's. Anything else needs a written
  override reason; a rejected version is never promoted.
- Every alias move driftloop makes is an audit entry; replaying them says where each alias
  should point, so a move made elsewhere (MLflow's own alias editor) is visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from driftloop.comparison import Comparison
from driftloop.config import GateConfig

if TYPE_CHECKING:  # a type only: this module must not import mlflow
    from driftloop.registry import ModelRef

CHAMPION, CHALLENGER = "champion", "challenger"
TAG = "driftloop."


@dataclass(frozen=True)
class AuditEntry:
    at: str
    action: str  # register | promote | reject | rollback | pin
    alias: str
    from_version: str | None
    to_version: str | None
    who: str
    why: str


@dataclass(frozen=True)
class PromotionCheck:
    """Whether ``version`` may become champion, and if not, why (each reason names its fix)."""

    version: str
    refused: str | None  # a reason no override lifts (rejected, already champion)
    needs_override: tuple[str, ...]  # reasons an override with a written reason lifts

    @property
    def allowed(self) -> bool:
        return self.refused is None and not self.needs_override


def _window_end(ref: "ModelRef") -> date | None:
    window = ref.tags.get(TAG + "data_window", "")
    try:
        return date.fromisoformat(window.split("..")[-1][:10])
    except ValueError:
        return None


def check_promotion(target: "ModelRef", champion: "ModelRef | None", challenger: "ModelRef | None") -> PromotionCheck:
    """The rule every path to ``champion`` applies (review form, CLI, scripts)."""
    tag = lambda ref, key: ref.tags.get(TAG + key, "")  # noqa: E731
    if tag(target, "rejected_by"):
        return PromotionCheck(target.version, f"v{target.version} was rejected by {tag(target, 'rejected_by')}; retrain or pick another version", ())
    if champion is not None and champion.version == target.version:
        return PromotionCheck(target.version, f"v{target.version} is already the champion; nothing to promote", ())
    reasons = []
    if tag(target, "gate_verdict") == "failed":
        reasons.append(f"v{target.version} failed the promotion gate ({tag(target, 'gate_failed') or 'see its description'})")
    if challenger is None or challenger.version != target.version:
        current = f"v{challenger.version} is" if challenger is not None else "no version is"
        reasons.append(f"v{target.version} is not the challenger awaiting review ({current})")
    if champion is not None:
        mine, theirs = _window_end(target), _window_end(champion)
        if mine is not None and theirs is not None and mine <= theirs:
            reasons.append(f"v{target.version} was trained on data up to {mine}, not newer than champion "
                           f"v{champion.version}'s (up to {theirs})")
    return PromotionCheck(target.version, None, tuple(reasons))


@dataclass(frozen=True)
class Offer:
    """Whether a freshly registered version takes the ``challenger`` alias, and why."""

    offered: bool
    why: str
    replaces: str | None = None  # the waiting challenger it displaces


def offer_as_challenger(gate_passed: bool, gate_failed: str, pending: str | None,
                        versus_pending: Comparison | None, gate: GateConfig) -> Offer:
    """A gate failure is registered but not offered; while ``pending`` waits for review, a new
    version replaces it only if the lower bound of its improvement over it clears zero on every
    gated metric (the same holdout, paired)."""
    if not gate_passed:
        return Offer(False, f"failed the promotion gate ({gate_failed}): registered, not offered for review")
    if pending is None or versus_pending is None:
        return Offer(True, "passed the promotion gate: offered for review")
    shortfalls = [d for m, d in versus_pending.overall.items() if m in gate.rules and not d.low > 0]
    if shortfalls:
        d = shortfalls[0]
        return Offer(False, f"passed the gate but does not beat v{pending}, which awaits review "
                            f"({d.metric} {d.improvement:+.4f}, interval [{d.low:+.4f}, {d.high:+.4f}] does not clear 0): "
                            "registered, not offered")
    best = next(iter(versus_pending.overall.values()))
    return Offer(True, f"passed the gate and beats v{pending}, which awaited review "
                       f"({best.metric} {best.improvement:+.4f}, interval [{best.low:+.4f}, {best.high:+.4f}]): offered in its place",
                 replaces=pending)


def expected_aliases(history: list[AuditEntry]) -> dict[str, str | None]:
    """Where ``champion`` and ``challenger`` point if every move went through driftloop."""
    where: dict[str, str | None] = {CHAMPION: None, CHALLENGER: None}
    for entry in history:
        if entry.action in ("register", "promote", "rollback") and entry.alias in where:
            where[entry.alias] = entry.to_version
        if entry.action == "promote" and where[CHALLENGER] == entry.to_version:
            where[CHALLENGER] = None  # promotion takes the version off the review queue
        if entry.action == "reject" and entry.alias == CHALLENGER:
            where[CHALLENGER] = None
    return where


@dataclass(frozen=True)
class UnauditedAlias:
    alias: str
    expected: str | None
    actual: str | None

    @property
    def warning(self) -> str:
        show = lambda v: f"v{v}" if v else "nothing"  # noqa: E731
        return (f"alias {self.alias} points to {show(self.actual)} but driftloop's audit trail says {show(self.expected)}: "
                "it was moved outside driftloop (the MLflow UI's alias editor?), with no reviewer or reason recorded; "
                "move it with `driftloop promote` / `rollback` / `reject` instead")


def unaudited_aliases(history: list[AuditEntry], actual: dict[str, str]) -> tuple[UnauditedAlias, ...]:
    """Aliases whose position no audit entry explains."""
    expected = expected_aliases(history)
    return tuple(UnauditedAlias(alias, want, actual.get(alias)) for alias, want in expected.items() if actual.get(alias) != want)
