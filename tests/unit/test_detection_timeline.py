"""Which signal saw an event first, and what it flagged that was not already flagged before."""

from types import SimpleNamespace

from driftloop.report import SIGNALS, detection_timeline


def _day(**fired) -> SimpleNamespace:
    """A report as the timeline reads it: signal -> what it flagged that day."""
    return SimpleNamespace(signals={s: tuple(fired.get(s.replace(" ", "_"), ())) for s in SIGNALS})


def test_each_signal_is_dated_by_the_first_new_thing_it_flags_on_or_after_the_event():
    reports = {
        6: _day(feature_drift=["usage"]),  # an earlier covariate shift, already on before the event
        7: _day(feature_drift=["usage"]),
        8: _day(feature_drift=["usage"]),  # the event day: nothing new yet
        9: _day(feature_drift=["usage", "calls"], prediction_drift=["probability"]),
        11: _day(feature_drift=["usage", "calls"], prediction_drift=["probability"], realized_performance=["roc_auc"]),
    }
    first = {d.signal: d for d in detection_timeline(reports, event_day=8)}
    assert (first["prediction drift"].day, first["prediction drift"].lag_days) == (9, 1)
    assert first["feature drift"].new == ("calls",) and first["feature drift"].already_on == ("usage",)
    assert (first["realized performance"].day, first["realized performance"].new) == (11, ("roc_auc",))
    assert first["estimated performance"].day is None and first["estimated performance"].lag_days is None


def test_a_signal_that_was_already_on_and_flags_nothing_new_never_detects_the_event():
    reports = {1: _day(feature_drift=["usage"]), 2: _day(feature_drift=["usage"]), 3: _day(feature_drift=["usage"])}
    assert next(d for d in detection_timeline(reports, 2) if d.signal == "feature drift").day is None
