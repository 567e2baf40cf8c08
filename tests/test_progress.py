"""maae_tf.progress: the progress line's fraction, H:MM:SS, and the rate/ETA of fresh and resumed counts."""

from __future__ import annotations

import types

from maae_tf import progress


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_clock_and_fraction_formats():
    assert progress.clock(0) == "0:00:00"
    assert progress.clock(690) == "0:11:30"
    assert progress.clock(3 * 3600 + 61.4) == "3:01:01"
    assert progress.clock(None) == progress.clock(float("inf")) == progress.clock(-1) == "?"
    assert progress.fraction(1200, 5000) == "1200/5000 (24 %)"
    assert progress.fraction(4999, 5000) == "4999/5000 (99 %)"  # 100 % only when finished
    assert progress.fraction(3, 0) == "3/0 (0 %)"


def test_eta_from_rate_and_at_zero_rate():
    assert progress.eta_seconds(1200, 5000, 10.0) == 380.0
    assert progress.eta_seconds(5000, 5000, 10.0) == 0.0
    assert progress.eta_seconds(6000, 5000, 10.0) == 0.0
    assert progress.eta_seconds(0, 5000, 0.0) is None


def test_tracker_line_fresh_and_before_any_progress():
    clock = FakeClock()
    tracker = progress.Tracker(5000, now=clock)
    assert tracker.line(0, "pairs") == "0/5000 (0 %), 0.0 pairs/s, ETA ?"
    clock.t += 120.0  # 1200 steps of 4 pairs in 2 minutes: 10 steps/s
    assert tracker.line(1200, "pairs", per_item=4) == "1200/5000 (24 %), 40.0 pairs/s, ETA 0:06:20"


def test_tracker_of_a_resumed_count_rates_only_its_own_steps():
    clock = FakeClock()
    tracker = progress.Tracker(5000, start=4000, now=clock)
    clock.t += 50.0  # 500 steps since the restored step 4000
    assert tracker.rate(4500) == 10.0
    assert tracker.line(4500, "steps") == "4500/5000 (90 %), 10.0 steps/s, ETA 0:00:50"


def test_phase_logs_its_seconds_and_returns_the_next_start(monkeypatch):
    # the line as logged, whatever handlers absl's logging has by then in a full test session
    lines = []
    monkeypatch.setattr(progress, "logging", types.SimpleNamespace(info=lambda fmt, *args: lines.append(fmt % args)))
    assert progress.phase("export", "traced the signatures", 10.0, now=lambda: 12.5) == 12.5
    assert lines == ["export: traced the signatures in 2.5 s"]
