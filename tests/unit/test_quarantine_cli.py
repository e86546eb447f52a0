"""`driftloop quarantine list | release`: nothing leaves quarantine unless it now passes."""

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
