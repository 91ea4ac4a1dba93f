"""report.py: tables from records (golden file), CSVs, figures, byte-identical re-renders.

The golden table is our own rendering, checked by eye once; refresh it after an intended
change with ``I3DBENCH_UPDATE_GOLDEN=1 pytest tests/test_report.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from i3dbench.evaluate import compare_with_published
from i3dbench.records import Conditions, make_record, write_record
from i3dbench.report import (
    fmt_ci,
    fmt_delta,
    fmt_speed,
    render_report,
    update_readme_block,
    zoo_table_markdown,
)
from i3dbench.zoo import get_entry

GOLDEN = Path(__file__).parent / "golden" / "report"
K400 = "i3d_r50_32x2x1_100e_kinetics400_rgb"
SMOKE = "smoke_i3d_tiny_video"


def _cond(**kw):
    c = {f.name: None for f in dataclasses.fields(Conditions)}
    c.update(device="cpu", device_name="Test CPU", precision="fp32", memory_format="contiguous", compile=False,
             batch=1, views=30, torch="2.13.0+cpu", decoder="decord", decoder_version="0.6.0",
             git_commit="0123456789abcdef0123456789abcdef01234567", git_dirty=False, dataset_fingerprint="list-sha256:abc",
             time="2024-06-11T12:00:00+00:00", host="host", python="3.11.7", num_threads=2, world_size=1)
    c.update(kw)
    return c


def _eval(name, top1, ci1, top5, ci5, time, **cond):
    m = {"top1": top1, "top1_ci": ci1, "top5": top5, "top5_ci": ci5, "mean_class_accuracy": top1 - 1,
         "num_videos": 1000, "num_listed": 1002, "num_failed": 2}
    extra = {"protocol": "10x3-prob" if name == K400 else "2x3-prob",
             "comparison": compare_with_published(get_entry(name), m)}
    return make_record(name, "eval", m, _cond(time=time, checkpoint_sha256="c25ef9a4" + "0" * 56, **cond), extra)


def write_fixture_records(root: Path) -> None:
    recs = [
        _eval(K400, 70.0, [69.0, 71.0], 89.0, [88.5, 89.5], "2024-06-10T00:00:00+00:00"),  # older, superseded
        _eval(K400, 72.5, [71.9, 73.1], 90.6, [90.2, 91.0], "2024-06-11T00:00:00+00:00"),
        _eval(SMOKE, 87.5, [81.25, 93.75], 100.0, [100.0, 100.0], "2024-06-11T00:00:01+00:00", views=6),
        make_record(K400, "bench", {"video_per_s": 0.21, "rel_std": 0.031, "peak_memory_mb": 3100.0},
                    _cond(time="2024-06-11T00:00:02+00:00"),
                    {"protocol": "published", "weights": "random", "memory_kind": "cpu_peak_rss_delta"}),
        make_record(K400, "bench", {"video_per_s": 2.9, "rel_std": 0.004, "peak_memory_mb": 2400.0,
                                    "train_memory_mb": 5012.0},
                    _cond(time="2024-06-11T00:00:03+00:00", device="cuda", device_name="NVIDIA H100 80GB HBM3",
                          cuda="12.4", cudnn=90100),
                    {"protocol": "published", "weights": "random", "memory_kind": "cuda_max_memory_allocated"}),
        make_record(SMOKE, "train", {"top1": 90.625, "top5": 100.0, "best_top1": 92.1875, "epochs": 12,
                                     "wall_time_s": 301.4, "peak_memory_mb": 410, "memory_kind": "cpu_peak_rss"},
                    _cond(time="2024-06-10T23:00:00+00:00", batch=8, views=None)),
    ]
    for r in recs:
        write_record(r, root)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    write_fixture_records(root / "records")
    res = render_report(root / "records", root / "out")
    return root, res


def test_formatting():
    assert fmt_ci(72.5, [71.9, 73.1]) == "72.50 ± 0.60"
    assert fmt_ci(None, None) == "—" and fmt_ci(3.0, None) == "3.00"
    assert fmt_delta(-0.18) == "-0.18" and fmt_delta(0.4) == "+0.40"
    assert fmt_speed(0.021345) == "0.0213" and fmt_speed(1.7) == "1.7" and fmt_speed(412.54) == "412.5"


def test_zoo_table_matches_golden(rendered):
    _, res = rendered
    table = zoo_table_markdown(res.tables) + "\n"
    golden = GOLDEN / "zoo_table.md"
    if os.environ.get("I3DBENCH_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(table)
    assert table == golden.read_text()


def test_tables_pick_newest_and_compare(rendered):
    root, _ = rendered
    acc = pd.read_csv(root / "out" / "accuracy.csv").set_index("entry")
    assert len(acc) == 18  # every zoo entry (15 K400 + 3 smoke) has a row
    row = acc.loc[K400]
    assert row["top1"] == 72.5 and row["published_top1"] == 72.68  # the newer eval record
    assert row["delta_top1"] == pytest.approx(-0.18) and bool(row["within_tolerance"])
    assert pd.isna(acc.loc["i3d_r50_video_32x2x1_100e_kinetics400_rgb", "top1"])  # not measured
    perf = pd.read_csv(root / "out" / "performance.csv")
    assert len(perf) == 2
    gpu = perf[perf["device_name"].str.contains("H100")].iloc[0]
    assert gpu["speed_ratio"] == pytest.approx(2.9 / 1.7, abs=1e-4)
    assert gpu["memory_ratio"] == pytest.approx(5012 / 5170, abs=1e-4)
    readme = (root / "out" / "README.md").read_text()
    assert "72.50 ± 0.60" in readme and "![accuracy_top1](accuracy_top1.png)" in readme
    assert "NVIDIA H100 80GB HBM3 · fp32 · torch 2.13.0+cpu/CUDA 12.4 · decord 0.6.0 · git 01234567" in readme
    assert "| smoke_i3d_tiny_video | Test CPU | 12       | 8       | 90.62" in readme  # training runs table
    assert "8 × —" in readme  # counts as integers, even from pandas' float columns
    for name in ("accuracy_top1.png", "throughput.png", "conditions.csv", "training_runs.csv"):
        assert (root / "out" / name).stat().st_size > 0


def test_rerender_is_byte_identical_and_drops_stale_files(rendered):
    root, _ = rendered
    before = {p.name: p.read_bytes() for p in (root / "out").iterdir() if p.is_file()}
    (root / "out" / "training_curves.png").write_bytes(b"stale")
    render_report(root / "records", root / "out")
    after = {p.name: p.read_bytes() for p in (root / "out").iterdir() if p.is_file()}
    assert after == before


def test_training_logs_section(tmp_path):
    def log(path, top1s, mem):
        lines = [{"env_info": "x"}]
        for e, t in enumerate(top1s, 1):
            lines.append({"mode": "train", "epoch": e, "iter": 20, "loss": 2.0 / e, "memory": mem})
            lines.append({"mode": "val", "epoch": e, "iter": 5, "top1_acc": t, "top5_acc": min(1.0, t + 0.2)})
        path.write_text("".join(json.dumps(d) + "\n" for d in lines))

    log(tmp_path / "ours.log.json", [0.3, 0.6, 0.7], 900)
    log(tmp_path / "pub.log.json", [0.35, 0.65, 0.72], 5170)
    res = render_report(tmp_path / "none", tmp_path / "out", training_log=tmp_path / "ours.log.json",
                        published_log=tmp_path / "pub.log.json")
    tr = pd.read_csv(tmp_path / "out" / "training.csv").set_index("log")
    assert tr.loc["ours", "final_top1"] == pytest.approx(70.0) and tr.loc["published", "peak_memory_mb"] == 5170
    assert (tmp_path / "out" / "training_curves.png").exists()
    assert "## Training: ours vs published log" in (tmp_path / "out" / "README.md").read_text()
    assert not (tmp_path / "out" / "accuracy_top1.png").exists()  # no eval records: no figure
    assert res.tables.used == []


def test_readme_block_is_replaced(tmp_path, rendered):
    _, res = rendered
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- ZOO-TABLE:START (generated) -->\nold\n<!-- ZOO-TABLE:END -->\nafter\n")
    assert update_readme_block(readme, zoo_table_markdown(res.tables))
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n<!-- ZOO-TABLE:START (generated) -->\n| entry")
    assert text.endswith("<!-- ZOO-TABLE:END -->\nafter\n")
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert not update_readme_block(plain, "x")
