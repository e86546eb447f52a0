"""Every way a batch can be wrong: one line naming the file and the fix, a non-zero exit, the file untouched."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from driftloop import cli, data
from driftloop.errors import DataError


@pytest.fixture
def clean(demo_project):
    cfg, generated = demo_project
    day = generated.days[0]
    return cfg, data.read_batch(cfg.data, day.batch_id)


def _run(cfg, path, capsys):
    config_path = cfg.data.incoming.parent.parent / "driftloop.yaml"
    before = path.read_bytes() if path.is_file() else None
    code = cli.main(["--config", str(config_path), "validate", str(path)])
    err = capsys.readouterr().err
    if before is not None:
        assert path.read_bytes() == before  # byte for byte
    return code, err


def _write(frame: pd.DataFrame, path):
    frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path, index=False)
    return path


CASES = {
    "missing column": (lambda f: f.drop(columns=["age"]), "missing column(s) age"),
    "extra column": (lambda f: f.assign(coupon="x"), "unexpected column(s) coupon; drop them from the export, or list them in "
                                                     "columns.passthrough"),
    "wrong dtype": (lambda f: f.astype({"age": object}).assign(age=lambda d: d["age"].where(d.index != 7, "forty")),
                    "column age should be numeric but has str values (rows 7, e.g. 'forty')"),
    "all-null column": (lambda f: f.assign(region=None), "column region is empty"),
    "duplicated ids": (lambda f: f.assign(customer_id=lambda d: d["customer_id"].where(d.index != 5, d["customer_id"][4])),
                       "2 rows share an id in customer_id (rows 4, 5)"),
    "infinities": (lambda f: f.assign(monthly_charges=lambda d: d["monthly_charges"].where(d.index != 3, np.inf)),
                   "column monthly_charges has infinite values at rows 3"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_batch_is_one_line_naming_file_and_column(clean, tmp_path, capsys, case):
    cfg, frame = clean
    spoil, message = CASES[case]
    path = _write(spoil(frame), tmp_path / "2026-03-01.csv")  # CSV: how mixed-up data usually arrives
    code, err = _run(cfg, path, capsys)
    assert code == 2
    assert err.startswith(f"driftloop: error: {path}: ") and message in err and err.count("\n") == 1


def test_unparseable_timestamps_name_the_rows(clean, tmp_path, capsys):
    cfg, frame = clean
    path = _write(frame.astype({"event_ts": str}).assign(event_ts=lambda d: d["event_ts"].where(d.index != 2, "yesterday")),
                  tmp_path / "2026-03-01.csv")
    code, err = _run(cfg, path, capsys)
    assert code == 2 and "unparseable timestamps at rows 2 (e.g. 'yesterday'); write ISO 8601" in err


@pytest.mark.parametrize("name, content, message", [
    ("2026-03-01.parquet", b"", "file is empty"),
    ("2026-03-01.parquet", b"PAR1 but not really", "not a readable parquet file"),
    ("2026-03-01.csv", "customer_id,region\n1,m\xe9\n".encode("latin-1"), "not UTF-8"),
    ("2026-03-01.json", b"{}", "unsupported file type '.json'"),
])
def test_an_unreadable_file_is_one_line(clean, tmp_path, capsys, name, content, message):
    cfg, _ = clean
    path = tmp_path / name
    path.write_bytes(content)
    code, err = _run(cfg, path, capsys)
    assert code == 2 and message in err and err.count("\n") == 1


def test_a_missing_file_says_where_it_looked(clean, tmp_path, capsys):
    cfg, _ = clean
    code, err = _run(cfg, tmp_path / "nope.parquet", capsys)
    assert code == 2 and "nope.parquet: file not found" in err


def test_the_quality_incident_fails_validation_with_exit_3(demo_project, capsys):
    cfg, generated = demo_project
    bad = next(d for d in generated.days if d.quality_incident)
    code, err = _run(cfg, data.batch_path(cfg.data, bad.batch_id), capsys)
    assert code == 3 and "monthly_charges: expect_column_values_to_be_between" in err and err.count("\n") == 1


def test_a_typo_in_the_config_is_one_line_and_exit_2(clean, tmp_path, capsys):
    cfg, _ = clean
    raw = yaml.safe_load((cfg.data.incoming.parent.parent / "driftloop.yaml").read_text())
    raw["policy"]["cooldown_dayz"] = 3
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    assert cli.main(["--config", str(bad), "status"]) == 2
    err = capsys.readouterr().err
    assert "policy.cooldown_dayz: Extra inputs are not permitted" in err and err.count("\n") == 1


def test_suite_init_passes_clean_batches_and_names_what_the_incident_breaks(demo_project, tmp_path, capsys):
    cfg, generated = demo_project
    config_path = cfg.data.incoming.parent.parent / "driftloop.yaml"
    suite = tmp_path / "profiled.json"
    assert cli.main(["--config", str(config_path), "suite", "init", "--out", str(suite)]) == 0
    raw = yaml.safe_load(config_path.read_text())
    raw["validation"]["suite"] = str(suite)
    profiled_config = tmp_path / "profiled.yaml"
    profiled_config.write_text(yaml.safe_dump(raw).replace("data/", str(cfg.data.incoming.parent) + "/"))
    expectations = json.loads(suite.read_text())["expectations"]
    assert {e["meta"]["severity"] for e in expectations} == {"critical", "warning"}
    for day in generated.days:
        code = cli.main(["--config", str(profiled_config), "validate", str(data.batch_path(cfg.data, day.batch_id))])
        err = capsys.readouterr().err
        assert code == (3 if day.quality_incident else 0), err
        if day.quality_incident:
            assert "monthly_charges: expect_column_values_to_be_between" in err
            assert "tenure_months: expect_column_values_to_not_be_null" in err


LABEL_CASES = {
    "a word for a class": (lambda f: f.astype({"churned": str}).assign(churned=lambda d: d["churned"].where(d.index != 2, "yes")),
                           "column churned should hold 0 or 1 but has 'yes' at rows 2; map the labels to 0/1 upstream"),
    "a class outside 0/1": (lambda f: f.assign(churned=lambda d: d["churned"].where(d.index != 4, 2)),
                            "column churned should hold 0 or 1 but has 2 at rows 4"),
    "a missing label": (lambda f: f.assign(churned=lambda d: d["churned"].astype("float64").where(d.index != 1)),
                        "column churned has no label at rows 1; leave rows out until their label is known"),
    "a missing id": (lambda f: f.assign(customer_id=lambda d: d["customer_id"].where(d.index != 0)), "1 label rows have no customer_id (rows 0)"),
    "no target column": (lambda f: f.drop(columns=["churned"]), "missing column(s) churned"),
}


@pytest.mark.parametrize("case", list(LABEL_CASES))
def test_a_malformed_label_file_is_one_line_naming_file_rows_and_fix_and_stays_put(demo_project, case):
    cfg, generated = demo_project
    arrival = generated.days[0].labels_arrive
    path = cfg.data.labels / f"{arrival}.parquet"
    spoil, message = LABEL_CASES[case]
    spoil(pd.read_parquet(path)).to_parquet(path, index=False)
    before = path.read_bytes()
    with pytest.raises(DataError) as caught:
        data.read_labels(cfg.data, cfg.columns, date.fromisoformat(arrival))
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value) and "\n" not in str(caught.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("batch_id", ["week-01", "2026-02-19-resend", "../labels/2026-02-03", "2026-13-01", ""])
def test_a_batch_id_that_is_not_a_date_is_refused_before_it_becomes_a_path(demo_project, batch_id):
    cfg, _ = demo_project
    with pytest.raises(DataError, match=f"batch id {batch_id!r} is not a") as caught:
        data.batch_path(cfg.data, batch_id)
    assert "\n" not in str(caught.value) and "YYYY-MM-DD" in str(caught.value)


@pytest.mark.parametrize("name", ["labels-final.parquet", "2026-02-05.json", "2026-02-05-fix.csv"])
def test_a_misnamed_label_file_is_one_line_naming_it(demo_project, name):
    cfg, _ = demo_project
    (cfg.data.labels / name).write_text("x")
    with pytest.raises(DataError) as caught:
        data.check_folders(cfg.data)
    assert str(caught.value).startswith(f"{cfg.data.labels / name}: not named by the contract; name label files <YYYY-MM-DD>.parquet or .csv")


def test_a_batch_file_not_named_by_date_stops_the_take_of_new_batches(demo_project):
    cfg, _ = demo_project
    (cfg.data.incoming / "week-01.parquet").write_bytes(b"")
    with pytest.raises(DataError, match=r"week-01.parquet: not named by the contract; name each batch <YYYY-MM-DD>.parquet"):
        data.incoming_batches(cfg.data)


def test_labels_in_csv_are_read_like_parquet_ones(demo_project):
    cfg, generated = demo_project
    arrival = sorted(cfg.data.labels.glob("*.parquet"))[0]
    pd.read_parquet(arrival).to_csv(arrival.with_suffix(".csv"), index=False)
    arrival.unlink()
    labels = data.read_labels(cfg.data, cfg.columns, date.fromisoformat(generated.days[-1].batch_id))
    assert set(pd.read_csv(arrival.with_suffix(".csv"))[cfg.columns.id_column]) <= set(labels[cfg.columns.id_column])


def test_a_passthrough_column_is_accepted_and_kept_in_the_log_but_never_a_feature(demo_project):
    cfg, generated = demo_project
    schema = cfg.columns.model_copy(update={"passthrough": ("upstream_score",)})
    frame = data.read_batch(cfg.data, generated.days[0].batch_id).assign(upstream_score=0.5)
    checked = data.check_batch(frame, schema, "batch.parquet")
    assert "upstream_score" in checked.columns and "upstream_score" not in schema.features


def test_a_boolean_category_is_profiled_as_booleans_not_strings(demo_project):
    from driftloop import validation

    cfg, _ = demo_project
    reference = data.read_reference(cfg.data, cfg.columns).assign(autopay=lambda d: d.index % 3 == 0)
    schema = cfg.columns.model_copy(update={"categorical": (*cfg.columns.categorical, "autopay")})
    suite = validation.profile_suite(reference, schema, "s")
    in_set = next(e for e in suite["expectations"] if e["type"] == "expect_column_values_to_be_in_set" and e["kwargs"]["column"] == "autopay")
    assert in_set["kwargs"]["value_set"] == [False, True]
    report = validation.validate(reference.head(500), validation_cfg(cfg, suite), "b")
    assert not [w for w in report.warnings if w.column == "autopay"]


def validation_cfg(cfg, suite: dict):
    path = cfg.data.reports.parent / "suite.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(suite), encoding="utf-8")
    return cfg.validation.model_copy(update={"suite": path})


def test_suite_row_counts_follow_the_cadence(demo_project):
    from driftloop import validation

    cfg, _ = demo_project
    reference = data.read_reference(cfg.data, cfg.columns)  # 6000 rows over 10 days
    bounds = lambda days: next(e["kwargs"] for e in validation.profile_suite(reference, cfg.columns, "s", period_days=days)["expectations"]  # noqa: E731
                               if e["type"] == "expect_table_row_count_to_be_between")
    daily, weekly = bounds(1), bounds(7)
    assert daily["min_value"] <= 600 <= daily["max_value"] and weekly["min_value"] <= 4200 <= weekly["max_value"]
    assert weekly["min_value"] > daily["max_value"]  # a weekly batch would fail a suite sized for days


@pytest.mark.parametrize(("classes", "message"), [
    (["low", "mid", "high"], "it has 3 classes: high, low, mid; for more than two, set columns.task: multiclass_classification"),
    ([0, 1, 2], "it has 3 classes: 0, 1, 2; for more than two, set columns.task: multiclass_classification"),
])
def test_a_reference_whose_target_does_not_fit_the_task_is_one_line_at_bootstrap(demo_project, classes, message):
    cfg, _ = demo_project
    reference = pd.read_parquet(cfg.data.reference)
    reference.assign(churned=[classes[i % 3] for i in range(len(reference))]).to_parquet(cfg.data.reference, index=False)
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        data.read_reference(cfg.data, cfg.columns)
    assert "\n" not in str(caught.value)


def test_a_folder_where_a_batch_file_belongs_is_named_as_a_folder(clean, tmp_path, capsys):
    cfg, _ = clean
    folder = tmp_path / "2026-03-01.parquet"
    folder.mkdir()
    code, err = _run(cfg, folder, capsys)
    assert code == 2 and f"{folder}: a folder where a file belongs" in err and err.count("\n") == 1


def test_a_file_where_a_data_folder_belongs_is_one_line_naming_the_setting(demo_project):
    cfg, _ = demo_project
    shutil.rmtree(cfg.data.labels)
    cfg.data.labels.write_text("not a folder")
    with pytest.raises(DataError, match=f"data.labels is {cfg.data.labels}, a file where a folder belongs"):
        data.check_folders(cfg.data)


def test_integer_timestamps_need_a_declared_unit(clean, tmp_path, capsys):
    cfg, frame = clean
    day = frame["event_ts"].iloc[0].date().isoformat()
    epoch = frame.assign(event_ts=frame["event_ts"].astype("int64") // 10**9)  # seconds since 1970, as many exports write them
    code, err = _run(cfg, _write(epoch, tmp_path / f"{day}.parquet"), capsys)
    assert code == 2 and "column event_ts holds numbers" in err and "set columns.timestamp_unit" in err and err.count("\n") == 1
    parsed = data.check_batch(epoch, cfg.columns.model_copy(update={"timestamp_unit": "s"}), "b")
    assert (parsed["event_ts"] == frame["event_ts"].dt.floor("s")).all()


def test_rows_dated_outside_the_batch_period_are_named(clean, tmp_path, capsys):
    cfg, frame = clean
    day = frame["event_ts"].iloc[0].date()
    moved = frame.assign(event_ts=frame["event_ts"].where(frame.index != 3, pd.Timestamp("2025-06-01", tz="UTC")))
    code, err = _run(cfg, _write(moved, tmp_path / f"{day.isoformat()}.parquet"), capsys)
    assert code == 2 and err.count("\n") == 1
    assert (f"1 rows have event_ts outside the batch's period {day}..{day} (data.cadence daily: 1 day(s) a batch, "
            "+/- 1 days, data.timestamp_tolerance_days), rows 3") in err
    code, err = _run(cfg, _write(frame, tmp_path / "2026-03-01.parquet"), capsys)  # a day's rows under another day's name
    assert code == 2 and f"{len(frame)} rows have event_ts outside the batch's period 2026-03-01..2026-03-01" in err


def _duplicated_age_parquet(frame, path):
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.append_column("age", table.column("age")), path)
    return path


FILE_CASES = {
    "semicolon-separated CSV": (lambda f, p: f.to_csv(p, sep=";", index=False), "2026-03-01.csv",
                                "the file looks ';'-separated; export it with commas"),
    "CSV header with a column twice": (lambda f, p: pd.concat([f, f[["age"]]], axis=1).to_csv(p, index=False), "2026-03-01.csv",
                                       "column age appears 2 times in the header; keep one"),
    "parquet with a column twice": (_duplicated_age_parquet, "2026-03-01.parquet", "column age appears 2 times in the header"),
    "lines but no columns": (lambda f, p: p.write_text("\n\n\n"), "2026-03-01.csv", "file has no columns (no header line)"),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_a_file_of_the_wrong_shape_names_the_actual_problem(clean, tmp_path, capsys, case):
    cfg, frame = clean
    write, name, message = FILE_CASES[case]
    path = tmp_path / name
    write(frame, path)
    code, err = _run(cfg, path, capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_ids_of_another_type_in_the_labels_are_one_line_naming_both_not_silently_unknown(demo_project):
    cfg, generated = demo_project
    first = generated.days[0]
    data.write_predictions(cfg.data, first.batch_id, data.read_batch(cfg.data, first.batch_id).assign(probability=0.5))
    label_file = cfg.data.labels / f"{first.labels_arrive}.parquet"
    labels = pd.read_parquet(label_file)
    pd.DataFrame({"customer_id": range(len(labels)), "churned": labels["churned"]}).to_parquet(label_file, index=False)
    as_of = date.fromisoformat(first.labels_arrive)
    with pytest.raises(DataError) as in_window:
        data.labelled_batches(cfg.data, cfg.columns, as_of, n_batches=3)
    message = str(in_window.value)
    assert f"customer_id holds text ids in the prediction log of {first.batch_id} but int64 ids in the label files in" in message
    assert "\n" not in message
    with pytest.raises(DataError, match=f"customer_id holds text ids in the prediction log .* but int64 ids in the label file {first.labels_arrive}.parquet;"):
        data.label_arrivals(cfg.data, cfg.columns, [first.batch_id], as_of)
