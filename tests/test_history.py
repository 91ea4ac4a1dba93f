"""history.py: series over runs, and steps judged by the gate's paired tests between consecutive points.

Synthetic run folders, each measured at its own commit: bench records with raw times (the gate's
speed test needs them) and eval records with per-video correctness (McNemar). One run carries a
planted slowdown (every time x1.5): exactly that step is marked, with both commits; an unchanged
pair is not, and neither is a later point compared with anything but the point right before it.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from test_report import SMOKE, _cond

from i3dbench import history as H
from i3dbench.records import make_record, write_record
from i3dbench.report import render_report
from i3dbench.zoo import get_entry

COMMITS = ["a1" * 20, "b2" * 20, "c3" * 20, "d4" * 20]


def _times(seed: int, scale: float = 1.0, n: int = 40) -> list[float]:
    rng = random.Random(seed)
    return [scale * 0.02 * (1 + 0.03 * rng.random()) for _ in range(n)]


def _bench(commit: str, time: str, seed: int, scale: float = 1.0) -> dict:
    times = _times(seed, scale)
    vps = 1 / sorted(times)[len(times) // 2]
    method = {"name": "timed_loop", "protocol": "published", "weights": "random", "views_per_iteration": 6,
              "views_per_video": 6, "iteration": "6 views = 1 video(s); 6 views per forward"}
    cond = _cond(time=time, code={"commit": commit, "dirty": False, "source_sha256": "5" * 64},
                 inference_memory_kind="cpu_tensor_peak")
    metrics = {"video_per_s": vps, "latency_median_ms": 1000 / vps, "spread": 0.01, "n_timed": len(times),
               "inference_memory_mb": 9.5}
    return make_record(SMOKE, "bench", metrics, cond, method, extra={"times_s": times, "skipped": []})


def _eval(commit: str, time: str, hits: str) -> dict:
    n, k = len(hits), hits.count("1")
    top1 = 100 * k / n
    metrics = {"top1": top1, "top1_interval": [max(0.0, top1 - 10), min(100.0, top1 + 5)], "top5": 100.0,
               "top5_interval": [94.4, 100.0], "mean_class_accuracy": top1, "num_videos": n, "num_listed": n,
               "num_failed": 0}
    method = {"name": "eval", "protocol": "2x3-prob-sampler1.x", "interval": "exact (Clopper-Pearson) 95%"}
    cond = _cond(time=time, code={"commit": commit, "dirty": False, "source_sha256": "5" * 64}, views=6)
    return make_record(SMOKE, "eval", metrics, cond, method,
                       extra={"complete": True, "per_video": {"top1": hits, "top5": "1" * n}})


HITS = "1" * 56 + "0" * 8


def _runs(root: Path, slow: tuple[bool, ...]) -> list[Path]:
    """One run folder per commit; run i is slowed down (times x1.5) when slow[i]."""
    runs = []
    for i, is_slow in enumerate(slow):
        run = root / f"2024061{i}T000000Z-host"
        time = f"2024-06-1{i}T00:00:00+00:00"
        write_record(_bench(COMMITS[i], time, seed=i, scale=1.5 if is_slow else 1.0), run / "records")
        write_record(_eval(COMMITS[i], time.replace("00:00:00", "00:00:01"), HITS), run / "records")
        runs.append(run)
    return runs


def _series(hist: H.History, metric: str) -> H.Series:
    (s,) = [s for s in hist.series if s.metric == metric]
    return s


def test_a_planted_slowdown_is_marked_with_both_commits_and_nothing_else(tmp_path):
    entries = {SMOKE: get_entry(SMOKE)}
    _runs(tmp_path / "runs", (False, True, True))
    hist = H.build_history(entries, H.load_history([tmp_path / "runs"]))
    speed = _series(hist, "video_per_s")
    assert [p.commit for p in speed.points] == [c[:8] for c in COMMITS[:3]]
    first, slowed, unchanged = speed.points
    assert first.step is None
    # The step into the slow run: REGRESSED, named by the commit before and the commit that slowed it.
    assert slowed.step.status == "REGRESSED"
    assert (slowed.step.base_commit, slowed.step.head_commit) == (COMMITS[0][:8], COMMITS[1][:8])
    assert slowed.step.change.startswith("time x1.4") or slowed.step.change.startswith("time x1.5")
    # Slow -> slow is unchanged: not marked (against the first point it would be: only consecutive pairs count).
    assert unchanged.step.status == "ok"
    assert [(s.metric, p.step.head_commit) for s, p in hist.regressions] == [("video_per_s", COMMITS[1][:8])]
    # Accuracy did not move (the same videos right): the McNemar steps are ok.
    assert [p.step.status for p in _series(hist, "top1").points[1:]] == ["ok", "ok"]
    assert [p.step.status for p in _series(hist, "inference_memory_mb").points[1:]] == ["ok", "ok"]
    # Every speed point has the interval of its median rate around it.
    assert all(p.low < p.value < p.high for p in speed.points)


def test_unchanged_runs_are_not_marked(tmp_path):
    entries = {SMOKE: get_entry(SMOKE)}
    _runs(tmp_path / "runs", (False, False, False))
    hist = H.build_history(entries, H.load_history([tmp_path / "runs"]))
    assert hist.regressions == []
    assert all(p.step.status == "ok" for s in hist.series for p in s.points[1:])


def test_an_accuracy_drop_is_marked_by_mcnemar(tmp_path):
    entries = {SMOKE: get_entry(SMOKE)}
    (run,) = _runs(tmp_path / "a", (False,))
    worse = "1" * 40 + "0" * 24  # 16 videos lost, none gained
    write_record(_eval(COMMITS[3], "2024-06-13T00:00:00+00:00", worse), tmp_path / "b" / "records")
    hist = H.build_history(entries, H.load_history([run, tmp_path / "b"]))
    (step,) = [p.step for p in _series(hist, "top1").points[1:]]
    assert step.status == "REGRESSED" and (step.base_commit, step.head_commit) == (COMMITS[0][:8], COMMITS[3][:8])
    assert "McNemar" in step.test


def test_a_record_published_into_results_is_one_point(tmp_path):
    runs = _runs(tmp_path / "runs", (False, False))
    results = tmp_path / "results" / "records"
    results.mkdir(parents=True)
    for p in (runs[1] / "records").iterdir():
        (results / p.name).write_bytes(p.read_bytes())
    hist = H.build_history({SMOKE: get_entry(SMOKE)}, H.load_history(H.default_sources(
        tmp_path / "results", tmp_path / "runs")))
    assert len(_series(hist, "video_per_s").points) == 2


def test_report_marks_the_step_in_history_csv_html_and_markdown(tmp_path):
    runs = _runs(tmp_path / "runs", (False, True))
    res = render_report(runs[-1], tmp_path / "out", zoo={SMOKE: get_entry(SMOKE)}, history=[tmp_path / "runs"])
    with open(tmp_path / "out" / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    marked = [r for r in rows if r["step"] == "REGRESSED"]
    assert [(r["metric"], r["step_from"], r["step_to"]) for r in marked] == [
        ("video_per_s", COMMITS[0][:8], COMMITS[1][:8])]
    html = res.html.read_text()
    assert f"<code>{COMMITS[0][:8]}</code> → <code>{COMMITS[1][:8]}</code>" in html
    assert f"`{COMMITS[0][:8]}` → `{COMMITS[1][:8]}`" in (tmp_path / "out" / "README.md").read_text()


def test_a_broken_run_folder_is_left_out_of_the_history_and_said(tmp_path):
    runs = _runs(tmp_path / "runs", (False, True))
    broken = tmp_path / "runs" / "20240619T000000Z-host" / "records"
    broken.mkdir(parents=True)
    (broken / "bench-x.json").write_text("{not json")
    res = render_report(runs[-1], tmp_path / "out", zoo={SMOKE: get_entry(SMOKE)}, history=[tmp_path / "runs"])
    assert len(res.history.unreadable) == 1 and "bench-x.json" in res.history.unreadable[0]
    assert [p.step.head_commit for _, p in res.history.regressions] == [COMMITS[1][:8]]
    assert "Left out of the history" in res.html.read_text()
