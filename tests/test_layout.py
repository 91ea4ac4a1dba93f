"""data/layout.py and the evaluation's layout check: a row evaluated on frames of another layout
than its own (340x256 vs a short side of 256, rawframes vs videos) is refused by name, unless
--allow-layout-mismatch (recorded, never compared with the published numbers); records keep the
frame sizes they saw and the absolute data root."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cli_harness import run_cli
from i3dbench.data.layout import Probed, layout_problem, size_summary
from i3dbench.zoo import get_entry

REPO = Path(__file__).resolve().parent.parent
TRACKED = [REPO / "README.md", REPO / "results", REPO / "zoo", REPO / "i3dbench"]
SMOKE = "smoke_i3d_tiny_video"  # videos, 340x256
K400_340 = "i3d_r50_32x2x1_100e_kinetics400_rgb"  # rawframes 340x256
K400_SHORT = "i3d_r50_video_32x2x1_100e_kinetics400_rgb"  # videos short256


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """Real H.264 val videos and rawframes of both layouts (340x256 and short-256: 456x256 / 455x256)."""
    from i3dbench.checkpoints import save_checkpoint
    from i3dbench.data.synthetic import CLASSES, generate_synthetic
    from i3dbench.models import build_model

    root = tmp_path_factory.mktemp("layouts")
    generate_synthetic(root, videos_per_class=1, val_videos_per_class=1, num_frames=20, sizes=("340x256", "short256"),
                       formats=("videos", "rawframes"), classes=CLASSES[:3], workers=1, progress=False)
    torch.manual_seed(0)
    return root, save_checkpoint(root / "tiny.pth", build_model(SMOKE))


def _paths(root, fmt, res):
    from i3dbench.data.synthetic import synthetic_paths

    return synthetic_paths(root, fmt, res, "val")


def test_the_rule_on_sizes():
    e340, eshort = get_entry(K400_340), get_entry(K400_SHORT)
    ok340 = [Probed("a", "folder", 340, 256), Probed("b", "folder", 341, 256)]
    assert layout_problem(e340, ok340) is None
    wide = [Probed("a", "folder", 340, 256), Probed("b", "folder", 456, 256)]
    assert "'b' has 456x256 frames" in layout_problem(e340, wide)
    short = [Probed("a", "file", 456, 256), Probed("b", "file", 341, 256), Probed("c", "file", 256, 320)]
    assert layout_problem(eshort, short) is None
    assert "exactly 340x256" in layout_problem(eshort, [Probed("a", "file", 340, 256)] * 3)
    assert "no short side of 256" in layout_problem(eshort, [Probed("a", "file", 640, 360)])
    assert "is a folder" in layout_problem(eshort, [Probed("a", "folder", 456, 256)])
    assert "is a file" in layout_problem(e340, [Probed("a", "file", 340, 256)])
    assert layout_problem(e340, [Probed("a", "missing")]) is None  # the evaluation reports missing videos itself
    assert size_summary([(456, 256), (340, 256), (602, 256)]) == {"videos": 3, "width": [340, 456, 602],
                                                                   "height": [256, 256, 256]}


def test_a_340x256_row_on_short256_frames_is_refused_by_name(synth, tmp_path):
    root, _ = synth
    data_root, ann = _paths(root, "rawframes", "short256")
    out = tmp_path / "run"
    r = run_cli(["eval", K400_340, "--data-root", str(data_root), "--ann", str(ann), "--out", str(out), "--quiet",
                 "--workers", "0"], expect_rc=2, watch=TRACKED,
                must_name=[K400_340, "340x256", "has 455x256 frames", "--allow-layout-mismatch", str(ann)])
    assert "Traceback" not in r.out


def test_a_short256_row_on_340x256_frames_and_videos_on_rawframes_are_refused(synth, tmp_path):
    root, _ = synth
    data_root, ann = _paths(root, "videos", "340x256")
    run_cli(["eval", K400_SHORT, "--data-root", str(data_root), "--ann", str(ann), "--out", str(tmp_path / "a"),
             "--quiet", "--workers", "0"], expect_rc=2, watch=TRACKED,
            must_name=[K400_SHORT, "exactly 340x256", "--allow-layout-mismatch"])
    # a videos row given a rawframe list's folders
    fr_root, fr_ann = _paths(root, "rawframes", "short256")
    vids = tmp_path / "as_videos.txt"
    vids.write_text("".join(f"{ln.split()[0]} {ln.split()[2]}\n" for ln in fr_ann.read_text().splitlines()))
    run_cli(["eval", K400_SHORT, "--data-root", str(fr_root), "--ann", str(vids), "--out", str(tmp_path / "b"),
             "--quiet", "--workers", "0"], expect_rc=2, watch=TRACKED, must_name=[K400_SHORT, "is a folder"])


def test_the_smoke_entry_on_its_own_layout_records_sizes_and_absolute_root(synth, tmp_path, monkeypatch):
    root, ckpt = synth
    data_root, ann = _paths(root, "videos", "340x256")
    monkeypatch.chdir(root)
    rel_root = Path(data_root).relative_to(root)
    out = tmp_path / "ok"
    run_cli(["eval", SMOKE, "--data-root", str(rel_root), "--ann", str(ann), "--checkpoint", str(ckpt),
             "--out", str(out), "--quiet", "--workers", "0"], expect_rc=0)
    (rec_file,) = (out / "records").glob("*.json")
    rec = json.loads(rec_file.read_text())
    assert rec["extra"]["data_root"] == str(Path(data_root).resolve())
    assert rec["extra"]["layout_mismatch"] is None
    sizes = rec["extra"]["frame_sizes"]
    assert sizes["evaluated"] == {"videos": 3, "width": [340, 340, 340], "height": [256, 256, 256]}
    assert [(p["width"], p["height"]) for p in sizes["probe"]] == [(340, 256)] * 3


def test_allow_layout_mismatch_evaluates_and_records_it(synth, tmp_path):
    root, ckpt = synth
    data_root, ann = _paths(root, "videos", "short256")
    out = tmp_path / "forced"
    run_cli(["eval", SMOKE, "--data-root", str(data_root), "--ann", str(ann), "--checkpoint", str(ckpt),
             "--out", str(out), "--quiet", "--workers", "0"], expect_rc=2, must_name=["has 456x256 frames"])
    r = run_cli(["eval", SMOKE, "--data-root", str(data_root), "--ann", str(ann), "--checkpoint", str(ckpt),
                 "--out", str(out), "--quiet", "--workers", "0", "--allow-layout-mismatch"], expect_rc=0)
    assert "not comparable with the published numbers" in r.out
    (rec_file,) = (out / "records").glob("*.json")
    rec = json.loads(rec_file.read_text())
    assert "456x256" in rec["extra"]["layout_mismatch"]
    assert rec["extra"]["frame_sizes"]["evaluated"]["width"] == [456, 456, 456]
