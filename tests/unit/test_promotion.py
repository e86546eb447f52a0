"""Who may become champion and who is offered for review: the pure rules every path applies."""

from __future__ import annotations

from driftloop.comparison import Comparison, MetricDifference
from driftloop.config import GateConfig
from driftloop.promotion import AuditEntry, check_promotion, expected_aliases, offer_as_challenger, unaudited_aliases
from driftloop.registry import ModelRef


def version(number: str, window: str = "", **tags) -> ModelRef:
    tags = {f"driftloop.{k}": v for k, v in ({"data_window": window} | tags).items() if v}
    return ModelRef("m", number, f"run{number}", (), tags, "")


def versus(low: float, improvement: float = 0.02) -> Comparison:
    diff = MetricDifference("roc_auc", 0.8, 0.78, improvement, low, improvement + 0.02, 0.95)
    return Comparison(1000, {"roc_auc": diff}, None, {}, {})


def test_the_current_challenger_trained_on_newer_data_is_promoted_without_an_override():
    champion, challenger = version("1", "2026-01-01..2026-01-10"), version("2", "2026-02-01..2026-02-05", gate_verdict="passed")
    assert check_promotion(challenger, champion, challenger).allowed


def test_a_superseded_version_older_than_the_champion_needs_an_override_for_both_reasons():
    champion = version("8", "2026-02-11..2026-02-15")
    stale = version("6", "2026-02-08..2026-02-12", gate_verdict="passed")
    check = check_promotion(stale, champion, None)
    assert not check.allowed and check.refused is None
    assert check.needs_override == (
        "v6 is not the challenger awaiting review (no version is)",
        "v6 was trained on data up to 2026-02-12, not newer than champion v8's (up to 2026-02-15)",
    )


def test_a_rejected_version_is_refused_even_with_an_override():
    rejected = version("3", rejected_by="bob")
    assert check_promotion(rejected, version("1"), None).refused == "v3 was rejected by bob; retrain or pick another version"


def test_a_gate_failure_is_registered_but_not_offered():
    offer = offer_as_challenger(False, "roc_auc improvement", None, None, GateConfig())
    assert not offer.offered and "failed the promotion gate (roc_auc improvement)" in offer.why


def test_while_a_review_waits_a_new_version_is_offered_only_if_it_credibly_beats_the_waiting_one():
    gate = GateConfig()
    assert offer_as_challenger(True, "", None, None, gate).offered
    not_better = offer_as_challenger(True, "", "3", versus(low=-0.01), gate)
    assert not not_better.offered and "does not beat v3" in not_better.why
    better = offer_as_challenger(True, "", "3", versus(low=0.01), gate)
    assert better.offered and "beats v3" in better.why


def entry(action: str, alias: str, to: str | None, frm: str | None = None) -> AuditEntry:
    return AuditEntry("2026-02-01T00:00:00+00:00", action, alias, frm, to, "someone", "why")


def test_replaying_the_audit_trail_gives_where_aliases_should_point():
    history = [entry("register", "champion", "1"), entry("register", "challenger", "2"), entry("register", "-", None),
               entry("register", "challenger", "4", "2"), entry("promote", "champion", "4", "1")]
    assert expected_aliases(history) == {"champion": "4", "challenger": None}
    assert unaudited_aliases(history, {"champion": "4"}) == ()
    moved = unaudited_aliases(history, {"champion": "2"})
    assert [(m.alias, m.expected, m.actual) for m in moved] == [("champion", "4", "2")]
    assert "moved outside driftloop" in moved[0].warning
