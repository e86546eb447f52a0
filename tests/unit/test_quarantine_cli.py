"""`driftloop quarantine list | release`: nothing leaves quarantine unless it now passes."""

import socket
import subprocess
import sys

import pandas as pd
import yaml

from driftloop import cli, data, validation
from driftloop.ledger import Ledger


def test_list_then_release_only_once_the_batch_is_fixed(demo_project, capsys):
    cfg, generated = demo_project
    config = str(cfg.data.incoming.parent.parent / "driftloop.yaml")
    bad = next(d for d in generated.days if d.quality_incident)
    frame = data.read_batch(cfg.data, bad.batch_id)
    report = validation.validate(frame, cfg.validation, bad.batch_id)
    kept = data.quarantine(cfg.data, bad.batch_id, report.to_dict(), report.to_markdown(), report.to_html())
    capsys.readouterr()

    assert cli.main(["--config", config, "quarantine", "list"]) == 0
    assert f"{bad.batch_id}  failed 2 critical" in capsys.readouterr().out

    assert cli.main(["--config", config, "quarantine", "release", bad.batch_id]) == 3  # still broken: stays
    assert "still failed 2 critical" in capsys.readouterr().err and kept.path.exists()

    fixed = frame.assign(monthly_charges=frame["monthly_charges"] / 100, tenure_months=frame["tenure_months"].fillna(0))
    fixed.to_parquet(kept.path, index=False)  # the upstream team re-exports the day
    assert cli.main(["--config", config, "quarantine", "release", bad.batch_id]) == 0
    assert data.batch_path(cfg.data, bad.batch_id).exists() and not kept.path.exists()
    assert Ledger(cfg.ledger).state(bad.batch_id) == "received"
    assert cli.main(["--config", config, "quarantine", "list"]) == 0
    assert "nothing in quarantine" in capsys.readouterr().out


def _quarantine_day(cfg, day):
    frame = data.read_batch(cfg.data, day.batch_id)
    report = validation.validate(frame, cfg.validation, day.batch_id)
    return frame, data.quarantine(cfg.data, day.batch_id, report.to_dict(), report.to_markdown(), report.to_html())


def test_a_second_quarantine_of_one_id_keeps_both_files_and_reports(demo_project, capsys):
    cfg, generated = demo_project
    bad = next(d for d in generated.days if d.quality_incident)
    frame, first = _quarantine_day(cfg, bad)
    first_bytes = first.path.read_bytes()
    frame.head(len(frame) // 2).to_parquet(data.batch_path(cfg.data, bad.batch_id), index=False)  # delivered again, still bad

    _, second = _quarantine_day(cfg, bad)

    assert second.earlier is not None and second.earlier.read_bytes() == first_bytes
    assert second.path.read_bytes() != first_bytes and len(pd.read_parquet(second.path)) == len(frame) // 2
    assert (cfg.data.quarantine / f"{bad.batch_id}.attempt-1.validation.json").exists() and second.report_json.exists()
    assert cli.main(["--config", str(cfg.data.incoming.parent.parent / "driftloop.yaml"), "quarantine", "list"]) == 0
    assert f"{bad.batch_id} (attempt-1, kept)" in capsys.readouterr().out


def test_release_never_overwrites_a_batch_delivered_again_meanwhile(demo_project, capsys):
    cfg, generated = demo_project
    bad = next(d for d in generated.days if d.quality_incident)
    frame, kept = _quarantine_day(cfg, bad)
    fixed = frame.assign(monthly_charges=frame["monthly_charges"] / 100, tenure_months=frame["tenure_months"].fillna(0))
    fixed.to_parquet(kept.path, index=False)
    redelivered = data.batch_path(cfg.data, bad.batch_id)
    fixed.head(10).to_parquet(redelivered, index=False)
    before = {p: p.read_bytes() for p in (kept.path, redelivered)}

    assert cli.main(["--config", str(cfg.data.incoming.parent.parent / "driftloop.yaml"), "quarantine", "release", bad.batch_id]) == 2
    err = capsys.readouterr().err
    assert f"{redelivered} exists" in err and "nothing was moved" in err and err.count("\n") == 1
    assert {p: p.read_bytes() for p in before} == before


def test_release_with_the_ledger_out_of_reach_moves_nothing(demo_project, tmp_path, capsys):
    cfg, generated = demo_project
    bad = next(d for d in generated.days if d.quality_incident)
    frame, kept = _quarantine_day(cfg, bad)
    frame.assign(monthly_charges=frame["monthly_charges"] / 100, tenure_months=frame["tenure_months"].fillna(0)).to_parquet(kept.path, index=False)
    raw = yaml.safe_load((cfg.data.incoming.parent.parent / "driftloop.yaml").read_text())
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        raw["ledger"] = {"url": f"postgresql://postgres@127.0.0.1:{s.getsockname()[1]}/nowhere"}
    unreachable = tmp_path / "driftloop.yaml"
    unreachable.write_text(yaml.safe_dump(raw))

    assert cli.main(["--config", str(unreachable), "quarantine", "release", bad.batch_id]) == 2
    assert "the ledger database postgresql+psycopg://postgres@127.0.0.1:" in capsys.readouterr().err
    assert kept.path.exists() and not data.batch_path(cfg.data, bad.batch_id).exists()


def test_a_failed_write_of_the_prediction_log_leaves_no_partial_file_and_says_so_in_one_line(demo_project, tmp_path):
    """A real write failure: the file size limit of the process (RLIMIT_FSIZE), like a disk that fills up."""
    cfg, generated = demo_project
    batch = generated.days[0].batch_id
    script = f"""
import resource, signal
import pandas as pd
from driftloop import data
from driftloop.config import load_config
from driftloop.errors import DataError
cfg = load_config({str(cfg.data.incoming.parent.parent / 'driftloop.yaml')!r})
frame = data.read_batch(cfg.data, {batch!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
try:
    data.write_predictions(cfg.data, {batch!r}, frame)
except DataError as exc:
    print("ERROR", exc)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    folder = cfg.data.predictions / f"{data.PARTITION}={batch}"
    assert done.stdout.startswith(f"ERROR cannot write {folder / 'part-0.parquet'} (File too large)"), done.stdout + done.stderr
    assert done.stdout.count("\n") == 1 and list(folder.iterdir()) == []
