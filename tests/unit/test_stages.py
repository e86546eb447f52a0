"""Stage measurement when tasks run side by side."""

import threading

from driftloop import stages


def test_a_stage_starting_while_another_runs_keeps_the_high_water_mark_the_other_is_measuring(monkeypatch):
    resets = []
    monkeypatch.setattr(stages, "reset_peak_rss", lambda: resets.append(1))
    inside, release = threading.Event(), threading.Event()

    def beside():
        with stages.measure("beside"):
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=beside)
    thread.start()
    inside.wait(5)
    with stages.measure("overlapping"):
        pass
    release.set()
    thread.join()
    assert len(resets) == 1  # only the first of the two overlapping stages reset the mark
    with stages.measure("alone"):
        pass
    assert len(resets) == 2


def test_stages_recorded_after_a_mark_are_read_back_in_order_with_their_start_times():
    point = stages.mark()
    with stages.measure("first"):
        pass
    with stages.measure("second"):
        pass
    found = stages.since(point)
    assert [s.name for s in found] == ["first", "second"]
    assert found[0].started <= found[1].started and all(s.wall_seconds >= 0 for s in found)
