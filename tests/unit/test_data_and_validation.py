"""Reading, validating (real GX) and quarantining batches of the demo scenario."""

import hashlib
import shutil
from datetime import date

import pandas as pd
import pytest

from driftloop import data, validation
from driftloop.errors import ConfigError, DataError


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_clean_demo_batch_passes_the_shipped_suite(demo_project):
    cfg, generated = demo_project
    clean = generated.days[0]
    report = validation.validate(data.read_batch(cfg.data, clean.batch_id), cfg.validation, clean.batch_id)
    assert report.passed, report.summary


def test_quality_incident_fails_on_the_expectations_it_breaks(demo_project):
    cfg, generated = demo_project
    bad = next(d for d in generated.days if d.quality_incident)
    report = validation.validate(data.read_batch(cfg.data, bad.batch_id), cfg.validation, bad.batch_id)
    assert not report.passed
    failed = {(o.column, o.expectation) for o in report.critical_failures}
    assert ("monthly_charges", "expect_column_values_to_be_between") in failed
    assert ("tenure_months", "expect_column_values_to_not_be_null") in failed
    assert "QUARANTINED" in report.to_markdown()
    page = report.to_html()
    assert "<h1>Batch" in page and "QUARANTINED" in page and "<tr class='critical'><td>critical</td><td>monthly_charges</td>" in page
    # the quarantine report locates the bad rows (a passing batch is judged on counts alone)
    charges = next(r for r in report.gx_result["results"] if r["expectation_config"]["type"] == "expect_column_values_to_be_between"
                   and r["expectation_config"]["kwargs"]["column"] == "monthly_charges")
    assert charges["result"]["partial_unexpected_index_list"]


def test_a_missing_column_is_named(demo_project):
    cfg, generated = demo_project
    day = generated.days[0]
    frame = data.read_batch(cfg.data, day.batch_id).drop(columns=["age"])
    report = validation.validate(frame, cfg.validation, day.batch_id)
    assert not report.passed
    assert any(o.column == "age" for o in report.critical_failures)
    assert any(o.expectation == "expect_table_columns_to_match_set" and not o.success for o in report.outcomes)


def test_quarantine_moves_the_file_unchanged_and_writes_reports_beside_it(demo_project):
    cfg, generated = demo_project
    day = generated.days[0]
    source = data.batch_path(cfg.data, day.batch_id)
    digest = _sha(source)
    kept = data.quarantine(cfg.data, day.batch_id, {"passed": False}, "# report\n")
    assert not source.exists()
    assert _sha(kept.path) == digest
    assert kept.report_json.exists() and kept.report_markdown.read_text() == "# report\n"


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("2026-01-01.parquet", b"", "file is empty"),
        ("2026-01-01.parquet", b"not parquet at all", "not a readable parquet file"),
        ("2026-01-01.xlsx", b"x", "unsupported file type"),
        ("2026-01-01.csv", "id,name\n1,caf\xe9\n".encode("latin-1"), "not UTF-8"),
    ],
)
def test_unreadable_files_are_one_line_errors_and_stay_on_disk(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as err:
        data.read_table(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert path.read_bytes() == content


def test_a_missing_batch_names_the_file(cfg):
    with pytest.raises(DataError, match="file not found"):
        data.read_batch(cfg.data, "2031-01-01")


def test_a_missing_suite_is_a_config_error(cfg, tmp_path):
    bad = cfg.validation.model_copy(update={"suite": tmp_path / "none.json"})
    with pytest.raises(ConfigError, match="set validation.suite"):
        validation.load_suite(bad)


def test_prediction_log_rerun_replaces_the_partition(cfg):
    frame = pd.DataFrame({"customer_id": ["a", "b"], "probability": [0.1, 0.9]})
    data.write_predictions(cfg.data, "2026-02-01", frame)
    data.write_predictions(cfg.data, "2026-02-01", frame)
    assert len(data.read_predictions(cfg.data, data.logged_batches(cfg.data))) == 2


def _log_days(cfg, days: list[str], labels: dict[str, dict[str, int]]) -> None:
    """A prediction log of ids ``<day>-0..2`` per day, and label files {arrival day: {id: label}}."""
    for day in days:
        data.write_predictions(cfg.data, day, pd.DataFrame({
            "customer_id": [f"{day}-{i}" for i in range(3)], "event_ts": pd.Timestamp(day, tz="UTC"), "probability": 0.5}))
    cfg.data.labels.mkdir(parents=True, exist_ok=True)
    for arrival, by_id in labels.items():
        pd.DataFrame({"customer_id": list(by_id), "churned": list(by_id.values())}).to_parquet(cfg.data.labels / f"{arrival}.parquet")


def test_the_matured_window_walks_back_only_as_far_as_it_needs_and_matches_a_full_read(cfg):
    days = [f"2026-02-0{d}" for d in range(1, 8)]
    # labels come two days late; day 4's never come; the newest two days have none yet
    _log_days(cfg, days, {f"2026-02-0{d + 2}": {f"2026-02-0{d}-{i}": 1 for i in range(3)} for d in (1, 2, 3, 5)})
    as_of = date(2026, 2, 7)
    window = data.labelled_batches(cfg.data, cfg.columns, as_of, n_batches=3)
    assert sorted(window[data.PARTITION].unique()) == ["2026-02-02", "2026-02-03", "2026-02-05"]
    full = data.labelled_batches(cfg.data, cfg.columns, as_of)
    pd.testing.assert_frame_equal(window, full[full[data.PARTITION].isin(window[data.PARTITION].unique())].reset_index(drop=True))


def test_a_corrected_label_arriving_later_wins_in_the_matured_window(cfg):
    _log_days(cfg, ["2026-02-01", "2026-02-02", "2026-02-03"], {
        "2026-02-02": {"2026-02-01-0": 0},
        "2026-02-04": {"2026-02-01-0": 1, "2026-02-03-0": 1},  # a correction for day 1, read after day 3's labels
    })
    window = data.labelled_batches(cfg.data, cfg.columns, date(2026, 2, 4), n_batches=2)
    assert dict(zip(window["customer_id"], window["churned"])) == {"2026-02-01-0": 1, "2026-02-03-0": 1}


@pytest.mark.parametrize("horizon", [0, 1, 3, 7])
def test_the_window_taken_from_label_matches_equals_the_walk_whatever_batches_they_cover(cfg, horizon):
    days = [f"2026-02-0{d}" for d in range(1, 8)]
    labels = {f"2026-02-0{d + 2}": {f"2026-02-0{d}-{i}": d % 2 for i in range(3)} for d in (1, 2, 3, 5)}
    labels["2026-02-06"] = {"2026-02-01-0": 0, "2026-02-06-1": 1}  # a correction of day 1; day 6's own label, on its day
    labels["2026-02-02"] = {"2026-02-04-2": 1}  # dated before the batch it names: early, never in that batch's window
    labels["2026-02-07"] |= {"nobody": 1}  # an id never scored
    _log_days(cfg, days, labels)
    as_of = date(2026, 2, 7)
    for n_batches in (1, 3, 6):
        walked = data.labelled_batches(cfg.data, cfg.columns, as_of, n_batches=n_batches)
        matches = data.match_labels(cfg.data, cfg.columns, days[len(days) - horizon:], as_of, keep=n_batches)
        taken = data.labelled_batches(cfg.data, cfg.columns, as_of, n_batches=n_batches, matches=matches)
        pd.testing.assert_frame_equal(taken, walked)
    assert dict(zip(walked["customer_id"], walked["churned"]))["2026-02-01-0"] == 0  # the correction, in both
    assert "2026-02-04-2" not in set(walked["customer_id"])


def _first_arrivals_by_merge(cfg, batches, as_of):
    """The plain answer label coverage must give: for each logged prediction, the earliest label file from the
    oldest batch to ``as_of`` that names its id."""
    log = data.read_predictions(cfg.data, batches, ["customer_id", data.PARTITION])
    files = sorted(p for p in cfg.data.labels.iterdir() if batches[0] <= p.stem <= as_of)
    labels = pd.concat([pd.read_parquet(p).assign(arrived=p.stem) for p in files]) if files else pd.DataFrame(
        {"customer_id": pd.Series(dtype="str"), "arrived": pd.Series(dtype="str")})
    first = labels.groupby("customer_id")["arrived"].min()
    return log["customer_id"].map(first).fillna("NaT").tolist()


def test_label_matches_kept_between_runs_give_what_matching_everything_again_gives(cfg):
    days = [f"2026-02-{d:02d}" for d in range(1, 11)]
    labels = {f"2026-02-{d + 1:02d}": {f"{days[d - 1]}-{i}": (d + i) % 2 for i in range(3)} for d in range(1, 10)}
    labels["2026-02-05"] |= {"2026-02-01-0": 1, "2026-02-06-1": 0, "nobody": 1}  # a correction, an early label, an unknown id
    labels["2026-02-08"] |= {"2026-02-02-2": 0}
    _log_days(cfg, days, labels)

    def run(as_of, horizon=4, unknown_from=None):
        batches = [d for d in days if d <= as_of][-horizon:]
        return batches, data.match_labels(cfg.data, cfg.columns, batches, date.fromisoformat(as_of), keep=2, unknown_from=unknown_from)

    def from_scratch(as_of):
        for folder in [*cfg.data.predictions.glob(f"*/{data.MATCHES}"), cfg.data.predictions / data.LABEL_FACTS]:
            shutil.rmtree(folder, ignore_errors=True)
        return run(as_of)[1]

    def same(kept, fresh):
        assert kept.arrivals.arrival.tolist() == fresh.arrivals.arrival.tolist()
        assert (kept.arrivals.unknown_ids, kept.arrivals.conflicts) == (fresh.arrivals.unknown_ids, fresh.arrivals.conflicts)
        assert list(kept.window) == list(fresh.window)
        for batch in kept.window:
            pd.testing.assert_frame_equal(kept.window[batch], fresh.window[batch])

    for as_of in days:  # one run a day, as the monitor does, each reusing what the earlier ones matched
        batches, kept = run(as_of)
        assert kept.arrivals.arrival.astype(str).tolist() == _first_arrivals_by_merge(cfg, batches, as_of)
        same(kept, from_scratch(as_of))
    batches, backfill = run("2026-02-06")  # an earlier day again: the label files after it are left out
    assert backfill.arrivals.arrival.astype(str).tolist() == _first_arrivals_by_merge(cfg, batches, "2026-02-06")
    same(backfill, from_scratch("2026-02-06"))
    assert run("2026-02-06", horizon=6, unknown_from=date(2026, 2, 5))[1].arrivals.unknown_ids == 1  # "nobody"
    # labels of batches that left the horizon are not unknown ids: files from unknown_from on are searched
    assert run("2026-02-10", unknown_from=date(2026, 2, 9))[1].arrivals.unknown_ids == 0
    assert run("2026-02-10")[1].arrivals.unknown_ids == 4  # day 6's labels (its batch left the horizon) and one of day 2

    # a corrected label file replaces the old one, and a batch is monitored again (its log rewritten)
    pd.DataFrame({"customer_id": ["2026-02-08-0", "2026-02-08-0"], "churned": [0, 1]}).to_parquet(cfg.data.labels / "2026-02-09.parquet")
    data.write_predictions(cfg.data, "2026-02-08", pd.DataFrame({
        "customer_id": ["2026-02-08-0", "2026-02-08-9"], "event_ts": pd.Timestamp("2026-02-08", tz="UTC"), "probability": 0.3}))
    batches, kept = run("2026-02-10")
    assert kept.arrivals.arrival.astype(str).tolist() == _first_arrivals_by_merge(cfg, batches, "2026-02-10")
    assert kept.arrivals.conflicts == 1 and kept.window["2026-02-08"]["churned"].tolist() == [1]  # the file's last row
    same(kept, from_scratch("2026-02-10"))
    pairs = sorted(cfg.data.predictions.glob(f"*/{data.MATCHES}/*.parquet"))
    written = [p.stat().st_mtime_ns for p in pairs]
    run("2026-02-10")
    assert [p.stat().st_mtime_ns for p in pairs] == written  # nothing new: nothing matched again


def test_a_window_without_labels_is_empty_but_has_the_log_columns(cfg):
    _log_days(cfg, ["2026-02-01"], {})
    window = data.labelled_batches(cfg.data, cfg.columns, date(2026, 2, 1), n_batches=3)
    assert window.empty and {"probability", "churned", data.PARTITION} <= set(window.columns)


def test_labels_are_read_as_of_their_arrival_date(demo_project):
    cfg, generated = demo_project
    first = generated.days[0]
    arrival = date.fromisoformat(first.labels_arrive)
    assert data.read_labels(cfg.data, cfg.columns, date.fromordinal(arrival.toordinal() - 1)).empty
    assert len(data.read_labels(cfg.data, cfg.columns, arrival)) == cfg.demo.rows_per_batch


def test_label_arrivals_match_the_logs_ids_to_the_first_arrival_of_their_label(cfg):
    for batch, ids in (("2026-02-01", ["a", "b", "c"]), ("2026-02-02", ["d", "e"])):
        data.write_predictions(cfg.data, batch, pd.DataFrame({"customer_id": ids, "probability": 0.5}))
    cfg.data.labels.mkdir(parents=True, exist_ok=True)
    # "a" is labelled twice (a correction), "zz" was never scored; a file from before the horizon is not read
    for arrived, ids in (("2026-01-20", ["old"]), ("2026-02-03", ["a", "d", "zz"]), ("2026-02-05", ["a", "b"])):
        pd.DataFrame({"customer_id": ids, "churned": 1}).to_parquet(cfg.data.labels / f"{arrived}.parquet")
    found = data.label_arrivals(cfg.data, cfg.columns, ["2026-02-01", "2026-02-02"], date(2026, 2, 5))
    assert found.batch_date.astype(str).tolist() == ["2026-02-01"] * 3 + ["2026-02-02"] * 2
    assert found.arrival.astype(str).tolist() == ["2026-02-03", "2026-02-05", "NaT", "2026-02-03", "NaT"]
    assert found.unknown_ids == 1  # a, b, d matched; zz unknown


def test_an_id_labelled_twice_differently_in_one_file_uses_its_last_row_and_is_counted(cfg):
    data.write_predictions(cfg.data, "2026-02-01", pd.DataFrame({"customer_id": ["a", "b", "c"], "probability": 0.5,
                                                                 "event_ts": pd.Timestamp("2026-02-01", tz="UTC")}))
    cfg.data.labels.mkdir(parents=True, exist_ok=True)
    # "a" twice with two labels (a conflict); "b" twice with the same label (a repeat, not a conflict)
    pd.DataFrame({"customer_id": ["a", "b", "a", "b", "c"], "churned": [0, 1, 1, 1, 0]}).to_parquet(cfg.data.labels / "2026-02-02.parquet")
    found = data.label_arrivals(cfg.data, cfg.columns, ["2026-02-01"], date(2026, 2, 2))
    assert found.conflicts == 1 and found.unknown_ids == 0
    window = data.labelled_batches(cfg.data, cfg.columns, date(2026, 2, 2), n_batches=1)
    assert dict(zip(window["customer_id"], window["churned"])) == {"a": 1, "b": 1, "c": 0}  # the file's last row for "a"
