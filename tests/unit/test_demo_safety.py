"""The demo writes and resets only folders of its own: a config pointing at someone's data is refused."""

from __future__ import annotations

import pytest

from driftloop import demo
from driftloop.errors import DriftloopError
from tests.conftest import write_project


@pytest.fixture
def config_path(tmp_path):
    return write_project(tmp_path, new_store=False)  # the demo's folders, the MLflow store's included, start absent


def test_the_demo_refuses_a_folder_that_holds_files_it_did_not_write_and_deletes_nothing(cfg, config_path):
    cfg.data.incoming.mkdir(parents=True)
    theirs = cfg.data.incoming / "2026-01-05.parquet"
    theirs.write_bytes(b"a batch of someone's")
    with pytest.raises(DriftloopError, match="already holds files the demo did not write") as caught:
        demo.reset(cfg, config_path.parent)
    assert str(cfg.data.incoming) in str(caught.value) and "\n" not in str(caught.value)
    assert theirs.read_bytes() == b"a batch of someone's"
    assert not (config_path.parent / demo.MANIFEST).exists()  # nothing claimed either


def test_the_demo_resets_what_it_claimed_including_what_the_loop_wrote_there(cfg, config_path):
    demo.claim(cfg, config_path.parent)  # empty folders: the demo's now
    demo.generate(cfg.demo, cfg.data)
    cfg.data.predictions.mkdir(parents=True)
    (cfg.data.predictions / "x").write_text("a monitor run's log")
    demo.reset(cfg, config_path.parent)
    assert not cfg.data.incoming.exists() and not cfg.data.predictions.exists()
