"""gate.py and `i3dbench gate`: 0 when nothing regressed, 1 on a regression, 2 when it cannot judge."""

from __future__ import annotations

import shutil

import pytest
from test_report import K400, SMOKE, _cond, _eval

from i3dbench.cli import main
from i3dbench.gate import run_gate
from i3dbench.records import load_records, make_record, write_record


def _bench(name, vps, rel_std, time, device="cuda", mem=5000.0, protocol="published"):
    name_ = "NVIDIA H100 80GB HBM3" if device == "cuda" else "Test CPU"
    return make_record(name, "bench", {"video_per_s": vps, "rel_std": rel_std, "train_memory_mb": mem,
                                       "peak_memory_mb": mem / 2},
                       _cond(time=time, device=device, device_name=name_), {"protocol": protocol})


def test_published_ok_then_regressed(tmp_path, capsys):
    d = tmp_path / "records"
    write_record(_eval(K400, 72.5, [71.9, 73.1], 90.6, [90.2, 91.0], "2024-06-11T00:00:00+00:00"), d)
    write_record(_bench(K400, 1.9, 0.01, "2024-06-11T00:00:01+00:00"), d)
    assert main(["gate", "--records", str(d)]) == 0
    out = capsys.readouterr().out
    assert "gate: OK" in out and "REGRESSED" not in out

    # A deliberately regressed eval, newer than the good one: 1 point lower with a tight CI.
    write_record(_eval(K400, 71.0, [70.6, 71.4], 90.6, [90.2, 91.0], "2024-06-12T00:00:00+00:00"), d)
    assert main(["gate", "--records", str(d)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSIONS (1)" in out and "-1.68 pts" in out
    res = run_gate(d)
    (bad,) = res.regressions
    assert (bad.entry, bad.metric, bad.reference, bad.measured) == (K400, "top1", 72.68, 71.0)


def test_published_speed_and_memory_on_gpu_only(tmp_path):
    d = tmp_path / "records"
    write_record(_bench(K400, 1.2, 0.01, "2024-06-11T00:00:01+00:00"), d)  # x0.71 of 1.7 video/s
    write_record(_bench(K400, 0.05, 0.01, "2024-06-11T00:00:02+00:00", device="cpu"), d)  # CPU: not comparable
    res = run_gate(d)
    assert res.exit_code == 1
    assert [(c.metric, c.device) for c in res.regressions] == [("video_per_s", "NVIDIA H100 80GB HBM3")]
    assert any(c.status == "skipped" and c.device == "Test CPU" for c in res.checks)
    d2 = tmp_path / "mem"
    write_record(_bench(K400, 1.8, 0.01, "2024-06-11T00:00:01+00:00", mem=6000.0), d2)  # > 5170 * 1.1
    assert [c.metric for c in run_gate(d2).regressions] == ["train_memory_mb"]


def test_baseline_unchanged_passes_and_regressions_fail(tmp_path):
    base = tmp_path / "base"
    write_record(_eval(SMOKE, 87.5, [81.25, 93.75], 100.0, [100.0, 100.0], "2024-06-11T00:00:00+00:00"), base)
    write_record(_bench(SMOKE, 40.0, 0.02, "2024-06-11T00:00:01+00:00", device="cpu", protocol="fast"), base)
    cur = tmp_path / "cur"
    shutil.copytree(base, cur)
    assert run_gate(cur, baseline=base).exit_code == 0  # the unchanged records

    # Within noise: 10% slower with 5% spread on each side (allowed max(0.2, 3*7.1%) = 21%).
    write_record(_bench(SMOKE, 36.0, 0.05, "2024-06-12T00:00:00+00:00", device="cpu", protocol="fast"), cur)
    assert run_gate(cur, baseline=base).exit_code == 0
    # Far beyond it: 2x slower and an accuracy drop outside the CI + tolerance.
    write_record(_bench(SMOKE, 20.0, 0.02, "2024-06-13T00:00:00+00:00", device="cpu", protocol="fast"), cur)
    write_record(_eval(SMOKE, 60.0, [52.0, 68.0], 100.0, [100.0, 100.0], "2024-06-13T00:00:01+00:00"), cur)
    res = run_gate(cur, baseline=base)
    assert res.exit_code == 1
    assert sorted(c.metric for c in res.regressions) == ["top1", "video_per_s"]
    speed = next(c for c in res.regressions if c.metric == "video_per_s")
    assert speed.change == "x0.500"


def test_cannot_judge(tmp_path, capsys):
    assert main(["gate", "--records", str(tmp_path / "empty")]) == 2
    assert "no eval or bench records" in capsys.readouterr().out
    d = tmp_path / "unknown"
    write_record(_eval(K400, 72.5, [71.9, 73.1], 90.6, [90.2, 91.0], "2024-06-11T00:00:00+00:00") | {"entry": "nope"}, d)
    res = run_gate(d)
    assert res.exit_code == 2 and "nope" in res.problems[0]
    smoke_only = tmp_path / "smoke"  # smoke entries have nothing published to compare with
    write_record(_eval(SMOKE, 87.5, [81.25, 93.75], 100.0, [100.0, 100.0], "2024-06-11T00:00:00+00:00"), smoke_only)
    assert run_gate(smoke_only).exit_code == 2
    assert run_gate(smoke_only, baseline=tmp_path / "empty").exit_code == 2
    assert len(load_records(smoke_only)) == 1


@pytest.mark.parametrize("spread", [0.0, 0.03])
def test_small_speed_drift_is_not_an_alarm(tmp_path, spread):
    # Published protocol on GPU, K400 tolerance speed_min_ratio 1.0: only noise allows a drop.
    base, cur = tmp_path / "b", tmp_path / "c"
    write_record(_bench(K400, 2.00, spread, "2024-06-11T00:00:00+00:00"), base)
    write_record(_bench(K400, 1.93, spread, "2024-06-12T00:00:00+00:00"), cur)  # -3.5%
    assert run_gate(cur, baseline=base).exit_code == 0
    write_record(_bench(K400, 1.70, spread, "2024-06-13T00:00:00+00:00"), cur)  # -15%
    assert run_gate(cur, baseline=base).exit_code == 1
