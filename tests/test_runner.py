"""runner.run_all (`i3dbench run`) on one smoke entry: eval + CPU bench + rendered tables.

The smoke checkpoint is pre-placed in a temporary cache (random weights saved where the
runner looks), and the synthetic data is a tiny set, so the test checks the orchestration
without minutes of training; training itself is tested in tests/test_train.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from i3dbench import runner
from i3dbench.checkpoints import save_checkpoint
from i3dbench.models import build_model
from i3dbench.records import load_records
from i3dbench.zoo import get_entry

ENTRY = "smoke_i3d_tiny_video"


@pytest.fixture
def tiny_world(tmp_path, monkeypatch):
    from i3dbench.data.synthetic import CLASSES, generate_synthetic, synthetic_paths

    monkeypatch.setenv("I3DBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("I3DBENCH_K400_ROOT", raising=False)
    root = tmp_path / "synthetic"
    generate_synthetic(root, videos_per_class=1, val_videos_per_class=2, num_frames=20, sizes=("short256",),
                       formats=("videos",), classes=CLASSES[:3], workers=1, progress=False)
    monkeypatch.setattr(runner, "smoke_data", lambda entry, split="val": synthetic_paths(root, "videos", "short256", split))
    # The real CPU sweep, made lighter: no training-step memory (tested with the measure module).
    from i3dbench import measure

    sweep = measure.measure_zoo_cpu
    monkeypatch.setattr(measure, "measure_zoo_cpu",
                        lambda entries, **kw: sweep(entries, **{**kw, "train_memory": False, "protocol": "published"}))
    entry = get_entry(ENTRY)
    torch.manual_seed(0)
    save_checkpoint(runner.smoke_work_dir(entry) / f"epoch_{entry.recipe.epochs}.pth", build_model(entry))
    return tmp_path


def test_run_all_evaluates_measures_and_renders(tiny_world):
    out = tiny_world / "results"
    summary = runner.run_all(only=ENTRY, out_dir=out, device="cpu", train_missing=False, measure=True,
                             num_workers=0, time_budget_s=60)
    assert summary.ok, summary.errors
    recs = load_records(out / "records")
    assert sorted(r["kind"] for r in recs) == ["bench", "eval"]
    bench = next(r for r in recs if r["kind"] == "bench")
    assert bench["metrics"]["video_per_s"] > 0 and bench["extra"]["weights"] == "random"
    assert bench["extra"]["protocol"] == "published"
    readme = (out / "README.md").read_text()
    assert ENTRY in readme and str(out / "README.md") in summary.describe()


def test_run_all_skips_kinetics_without_a_copy(tiny_world):
    out = tiny_world / "results"
    summary = runner.run_all(only="i3d_r50_32x2x1_100e_kinetics400_rgb", out_dir=out, device="cpu", measure=False)
    assert summary.ok and summary.records == []
    assert summary.skipped[0][0] == "eval i3d_r50_32x2x1_100e_kinetics400_rgb"
    assert "I3DBENCH_K400_ROOT" in summary.skipped[0][1]
    assert (out / "README.md").exists()


def test_select_entries_and_missing_checkpoint(tiny_world):
    entries = runner.select_entries({n: get_entry(n) for n in (ENTRY, "smoke_i3d_nl_tiny_video")}, "smoke_*_video")
    assert list(entries) == [ENTRY, "smoke_i3d_nl_tiny_video"]
    with pytest.raises(KeyError, match="matches no entry"):
        runner.select_entries(entries, "nope")
    shipped = get_entry("smoke_i3d_nl_tiny_video")
    # The manifest's own checkpoint is used, hash-checked, without training.
    assert runner.smoke_checkpoint(shipped, train_if_missing=False) == Path(shipped.checkpoint.url)
    # Without one, and without a cached run, it says how to train one.
    unshipped = dataclasses.replace(shipped, checkpoint=dataclasses.replace(shipped.checkpoint, url=None, sha256_prefix=None))
    with pytest.raises(FileNotFoundError, match="i3dbench train smoke_i3d_nl_tiny_video"):
        runner.smoke_checkpoint(unshipped, train_if_missing=False)
