"""Inputs that would poison every later run are refused before anything is written, in one line
naming the setting or the file; the silent cases (a gap in the cadence, two label files for one
day, a header with a stray space) are named."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from driftloop import cli, data
from driftloop.errors import DataError


def test_a_retrain_as_of_a_day_never_monitored_is_refused_naming_what_the_log_holds(cfg):
    for batch in ("2026-02-01", "2026-02-02"):
        (cfg.data.predictions / f"batch_id={batch}").mkdir(parents=True)
        pd.DataFrame({"x": [1]}).to_parquet(cfg.data.predictions / f"batch_id={batch}" / "part-0.parquet")
    assert data.check_as_of(cfg.data, "2026-02-02") == "2026-02-02"
    with pytest.raises(DataError, match=r"retrain as of 2027-01-01: no batch 2027-01-01 in the prediction log .* "
                                        r"\(it holds 2026-02-01..2026-02-02\); name a monitored batch"):
        data.check_as_of(cfg.data, "2027-01-01")


def test_a_retrain_before_any_monitor_run_says_to_run_the_monitor_first(cfg):
    with pytest.raises(DataError, match="it is empty: run the monitor flow first"):
        data.check_as_of(cfg.data, "2026-02-01")


def test_batches_the_cadence_expected_but_never_came_are_named(cfg):
    known = {"2026-02-01", "2026-02-02", "2026-02-05"}
    assert data.missing_batches(cfg.data, known, "2026-02-06") == ()
    assert data.missing_batches(cfg.data, known - {"2026-02-05"}, "2026-02-06") == ("2026-02-03", "2026-02-04", "2026-02-05")
    assert data.missing_batches(cfg.data, set(), "2026-02-06") == ()  # the first batch has no gap before it
    weekly = cfg.data.model_copy(update={"cadence": "weekly"})
    assert data.missing_batches(weekly, {"2026-02-01"}, "2026-02-22") == ("2026-02-08", "2026-02-15")


def test_a_csv_and_a_parquet_label_file_for_one_day_are_refused_rather_than_one_winning(cfg):
    cfg.data.labels.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"customer_id": ["a"], "churned": [1]}).to_parquet(cfg.data.labels / "2026-02-03.parquet")
    pd.DataFrame({"customer_id": ["a"], "churned": [0]}).to_csv(cfg.data.labels / "2026-02-03.csv", index=False)
    with pytest.raises(DataError, match=r"holds 2026-02-03.csv and 2026-02-03.parquet: two label files for one arrival day; merge"):
        data.check_folders(cfg.data)


def test_a_header_with_a_trailing_space_is_named_as_such():
    frame = pd.DataFrame({"id": [1], "age ": [30]})
    with pytest.raises(DataError, match=r"missing column\(s\) age; the file has 'age ' \(spaces or case differ from 'age'\): rename it"):
        data.require_columns(frame, ["id", "age"], "batch.csv")


def test_force_without_batch_ids_is_refused_instead_of_ignored(config_path, capsys):
    assert cli.main(["--config", str(config_path), "run", "monitor", "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force processes named batches again: give their ids" in err


def test_a_reversed_backfill_range_is_refused_before_any_prefect_api_starts(config_path, capsys):
    started = time.monotonic()
    assert cli.main(["--config", str(config_path), "run", "backfill", "--start", "2026-02-10", "--end", "2026-02-01"]) == 2
    assert "--end 2026-02-01 is before --start 2026-02-10; swap them" in capsys.readouterr().err
    assert time.monotonic() - started < 5  # a local Prefect API takes longer than this to start


def _description(command, capsys) -> str:
    with pytest.raises(SystemExit) as leaving:
        cli.main([*command, "--help"])
    assert leaving.value.code == 0
    return " ".join(capsys.readouterr().out.split("\n\n")[1].split())  # usage, then the description


def test_the_help_says_whole_sentences_and_each_command_opens_with_its_summary(capsys):
    assert _description([], capsys) == ("The driftloop command: run the loop on a config, inspect the registry, approve or "
                                        "reject a challenger, check files, make demo data.")
    assert _description(["run", "monitor"], capsys) == (
        "monitor the given batches, or every batch in data.incoming not done yet (oldest first)")
    assert _description(["promote"], capsys) == "approve a version: the champion alias moves to it"
