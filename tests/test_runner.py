"""runner.run_all (`i3dbench run`) on one smoke entry: eval + both bench protocols + tables, in a run folder.

The synthetic data is a tiny set and the loops have tiny budgets, so the test checks the
orchestration in seconds; evaluation, measurement and training are tested in their own modules.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
from cli_harness import run_cli, snapshot

from i3dbench import runner
from i3dbench.errors import UsageError, UserError
from i3dbench.records import load_records
from i3dbench.timing import LoopBudget
from i3dbench.zoo import get_entry

ENTRY = "smoke_i3d_tiny_video"
REPO = Path(__file__).resolve().parent.parent
TRACKED = [REPO / "README.md", REPO / "results", REPO / "zoo", REPO / "i3dbench"]


@pytest.fixture
def tiny_world(tmp_path, monkeypatch):
    from i3dbench import measure
    from i3dbench.data.synthetic import CLASSES, generate_synthetic, synthetic_paths

    monkeypatch.delenv("I3DBENCH_K400_ROOT", raising=False)
    root = tmp_path / "synthetic"
    generate_synthetic(root, videos_per_class=1, val_videos_per_class=2, num_frames=20, sizes=("340x256",),
                       formats=("videos",), classes=CLASSES[:3], workers=1, progress=False)
    monkeypatch.setattr(runner, "smoke_data", lambda entry, split="val": synthetic_paths(root, "videos", "340x256", split))
    tiny = LoopBudget(warmup_iterations=1, warmup_s=0.0, min_iterations=3, min_seconds=0.0)
    pair = measure.bench_pair
    monkeypatch.setattr(measure, "bench_pair", lambda e, d, **kw: pair(e, d, **{**kw, "budget": tiny,
                                                                                "train_memory": False}))
    from i3dbench import provenance

    monkeypatch.setattr(provenance, "environment_report", lambda: "env\n")  # collect_env takes seconds
    return tmp_path


def test_run_all_evaluates_measures_and_renders_into_its_run_folder(tiny_world):
    before = snapshot(TRACKED)
    summary = runner.run_all(only=ENTRY, out=tiny_world / "run", device="cpu", num_workers=0, progress=False)
    assert summary.exit_code == 0, summary.errors
    recs = load_records(tiny_world / "run")
    plain = [r for r in recs if "sweep" not in r["extra"]]
    assert sorted((r["kind"], r["method"]["protocol"]) for r in plain) == [
        ("bench", "fast"), ("bench", "published"), ("eval", "2x3-prob-sampler1.x")]
    # the small protocol sweep: the entry's own protocol and the three other sampler x averaging variants
    swept = sorted(r["extra"]["sweep"]["label"] for r in recs if "sweep" in r["extra"])
    assert swept == ["sampler=0.x, averaging=prob", "sampler=0.x, averaging=score", "sampler=1.x, averaging=prob",
                     "sampler=1.x, averaging=score"]
    assert summary.sweep_table.exists() and "protocol sweep" in summary.describe()
    ev = next(r for r in plain if r["kind"] == "eval")
    assert ev["obtained"]["how"] == "computed" and ev["conditions"]["checkpoint_verified"].startswith("verified: sha256 prefix")
    assert (tiny_world / "run" / "report" / "README.md").exists() and (tiny_world / "run" / "env.txt").exists()
    # The page a person opens: its path is printed, and it shows this run in the history.
    html = tiny_world / "run" / "report" / "index.html"
    assert f"report: {html}" in summary.describe() and 'id="history"' in html.read_text()
    assert ENTRY in summary.table and str(tiny_world / "run") in summary.describe()
    assert snapshot(TRACKED) == before  # a run never modifies the checkout


def test_run_all_skips_kinetics_without_a_copy(tiny_world):
    summary = runner.run_all(only="i3d_r50_32x2x1_100e_kinetics400_rgb", out=tiny_world / "run", device="cpu",
                             measure=False, progress=False)
    assert summary.exit_code == 0 and summary.records == []
    assert summary.skipped[0][0] == "eval i3d_r50_32x2x1_100e_kinetics400_rgb"
    assert "I3DBENCH_K400_ROOT" in summary.skipped[0][1]


def test_a_failing_step_is_reported_and_the_run_goes_on(tiny_world, monkeypatch):
    from i3dbench import measure

    def boom(*a, **k):
        raise RuntimeError("planted")

    monkeypatch.setattr(measure, "bench_pair", boom)
    summary = runner.run_all(only=ENTRY, out=tiny_world / "run", device="cpu", num_workers=0, progress=False)
    assert summary.exit_code == 3  # an internal error: never 0 or 1
    (what, err, code), = summary.errors
    assert what.startswith("bench") and "planted" in err and "traceback" in err
    assert any(r["kind"] == "eval" for r in load_records(tiny_world / "run"))  # the eval still ran


def test_select_entries_and_missing_checkpoint():
    entries = runner.select_entries({n: get_entry(n) for n in (ENTRY, "smoke_i3d_nl_tiny_video")}, "smoke_*_video")
    assert list(entries) == [ENTRY, "smoke_i3d_nl_tiny_video"]
    with pytest.raises(UsageError, match="matches no entry"):
        runner.select_entries(entries, "nope")
    shipped = get_entry("smoke_i3d_nl_tiny_video")
    # The manifest's own checkpoint is used, hash-checked, without training.
    assert runner.smoke_checkpoint(shipped, train_if_missing=False) == Path(shipped.checkpoint.url)
    unshipped = dataclasses.replace(shipped, checkpoint=dataclasses.replace(shipped.checkpoint, url=None, sha256_prefix=None))
    with pytest.raises(UserError, match="i3dbench train smoke_i3d_nl_tiny_video"):
        runner.smoke_checkpoint(unshipped, train_if_missing=False)


def test_cli_run_prints_the_table_and_leaves_git_clean(tiny_world):
    def status():
        return subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=all"],
                              capture_output=True, text=True).stdout

    before = status()
    res = run_cli(["run", "--only", ENTRY, "--out", tiny_world / "cli-run", "--quiet"], expect_rc=0,
                  must_name=[ENTRY, "published top-1", "tables:"], watch=TRACKED)
    assert "i3dbench publish" in res.out
    assert status() == before  # nothing tracked changed, nothing untracked appeared in the checkout
