"""The synthetic motion dataset: layout, determinism, real codecs, classes told apart only by motion."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from i3dbench.data import synthetic as S
from i3dbench.data.annotations import (
    csv_to_video_list,
    k400_class_names,
    load_label_map,
    read_k400_csv,
    read_rawframe_list,
    read_video_list,
)
from i3dbench.data.decoders import get_decoder


def _tree_digest(root: Path) -> str:
    """sha256 over every file's relative path and bytes (synthetic.json included)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "a"
    S.generate_synthetic(root, seed=3, videos_per_class=1, val_videos_per_class=1, num_frames=10, workers=1, progress=False)
    return root


def test_layout_and_annotations(tiny, tmp_path):
    meta = json.loads((tiny / "synthetic.json").read_text())
    assert meta["generator_version"] == S.GENERATOR_VERSION and meta["seed"] == 3
    classes = load_label_map(tiny / "label_map.txt")
    assert classes == sorted(classes) == list(S.CLASSES)
    for split in ("train", "val"):
        videos = read_video_list(tiny / f"{split}_list_videos.txt", num_classes=len(classes))
        frames = read_rawframe_list(tiny / f"{split}_list_rawframes.txt", num_classes=len(classes))
        assert sorted(r.label for r in videos) == list(range(8))  # one video per class and split
        assert [r.path for r in videos] == [r.path + ".mp4" for r in frames]
        assert all(r.total_frames == 10 for r in frames)
        # The Kinetics-style CSV maps to the same files and labels as the list.
        rows = read_k400_csv(tiny / f"{split}.csv")
        assert k400_class_names(rows) == classes and {r.split for r in rows} == {split}
        report = csv_to_video_list(tiny / f"{split}.csv", tiny / "videos_340x256", tmp_path / f"{split}_from_csv.txt")
        assert report.missing == []
        assert (tmp_path / f"{split}_from_csv.txt").read_text() == (tiny / f"{split}_list_videos.txt").read_text()
        for fmt in ("videos", "rawframes"):
            for res in ("short256", "340x256"):
                data_root, ann = S.synthetic_paths(tiny, fmt, res, split)
                assert ann.is_file()
                for r in read_video_list(ann) if fmt == "videos" else read_rawframe_list(ann):
                    assert (data_root / r.path).exists()


@pytest.mark.parametrize(
    "fmt,res,size",
    [("videos", "short256", (456, 256)), ("rawframes", "short256", (455, 256)), ("videos", "340x256", (340, 256)), ("rawframes", "340x256", (340, 256))],
)
def test_sizes_and_frame_counts(tiny, fmt, res, size):
    data_root, ann = S.synthetic_paths(tiny, fmt, res, "val")
    rec = (read_video_list(ann) if fmt == "videos" else read_rawframe_list(ann))[0]
    dec = get_decoder("decord" if fmt == "videos" else "rawframes")
    assert dec.num_frames(data_root / rec.path) == 10
    frames = dec.read(data_root / rec.path, np.array([0, 9]))
    assert tuple(frames.shape) == (2, size[1], size[0], 3)


def test_same_seed_same_files_any_worker_count(tiny, tmp_path):
    S.generate_synthetic(tmp_path / "b", seed=3, videos_per_class=1, val_videos_per_class=1, num_frames=10, workers=2, progress=False)
    a, b = _tree_digest(tiny), _tree_digest(tmp_path / "b")
    print(f"synthetic tree sha256 (seed 3, 1+1 per class, 10 frames): {a[:16]}")
    assert a == b  # byte-identical mp4s, JPEGs, lists and metadata


def test_render_is_deterministic_and_seed_dependent():
    specs = S._make_specs(0, S.CLASSES, {"train": 1}, 8)
    again = S._make_specs(0, S.CLASSES, {"train": 1}, 8)
    other = S._make_specs(1, S.CLASSES, {"train": 1}, 8)
    assert specs == again and specs != other
    digest = hashlib.sha256(b"".join(S.render_video(s, 178, 100).tobytes() for s in specs)).hexdigest()
    again_digest = hashlib.sha256(b"".join(S.render_video(s, 178, 100).tobytes() for s in again)).hexdigest()
    print(f"frames sha256 (seed 0, 8 videos, 8 frames, 178x100): {digest[:16]}")
    assert digest == again_digest
    assert not np.array_equal(S.render_video(specs[0], 178, 100), S.render_video(other[0], 178, 100))


def _object_features(spec: S.VideoSpec, width: int = 178, height: int = 100):
    """(single-frame features, motion features) of one video from its object masks.

    Single frame: position, log area, orientation, mean colour of the object in frame 0, and the
    frame itself average-pooled to 10x17. Motion: change of position, log area and orientation
    from the first to the last frame.
    """
    f = S.render_video(spec, width, height).astype(np.float32)
    bg = np.rint(S._background(spec, width, height))
    mask = np.abs(f - bg).sum(-1) > 30  # T x H x W: where the object is
    ys, xs = np.mgrid[0:height, 0:width]
    area = mask.sum((1, 2))
    cx = (mask * xs).sum((1, 2)) / area
    cy = (mask * ys).sum((1, 2)) / area
    dx, dy = xs - cx[:, None, None], ys - cy[:, None, None]
    mxx, myy, mxy = ((mask * dx * dx).sum((1, 2)), (mask * dy * dy).sum((1, 2)), (mask * dx * dy).sum((1, 2)))
    theta = 0.5 * np.arctan2(2 * mxy, mxx - myy)  # orientation of the second-moment ellipse
    dtheta = (theta[-1] - theta[0] + np.pi / 2) % np.pi - np.pi / 2
    colour = f[0][mask[0]].mean(0)
    pooled = f[0, :100, :170].reshape(10, 10, 17, 10, 3).mean((1, 3)).ravel()
    single = np.concatenate([[cx[0], cy[0], np.log(area[0]), np.cos(2 * theta[0]), np.sin(2 * theta[0])], colour])
    motion = np.array([cx[-1] - cx[0], cy[-1] - cy[0], np.log(area[-1] / area[0]), dtheta])
    return single, pooled, motion


def _nearest_centroid_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """Train on even-numbered videos, test on odd ones, standardised features."""
    f = (features - features.mean(0)) / (features.std(0) + 1e-9)
    train = np.arange(len(f)) % 2 == 0
    centroids = np.stack([f[train & (labels == c)].mean(0) for c in range(len(S.CLASSES))])
    pred = ((f[~train][:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    return float((pred == labels[~train]).mean())


def test_classes_are_told_apart_by_motion_not_appearance():
    specs = S._make_specs(11, S.CLASSES, {"train": 12}, 9)
    feats = [_object_features(s) for s in specs]
    labels = np.array([s.label for s in specs])
    acc_single = _nearest_centroid_accuracy(np.stack([f[0] for f in feats]), labels)
    acc_pixels = _nearest_centroid_accuracy(np.stack([f[1] for f in feats]), labels)
    acc_motion = _nearest_centroid_accuracy(np.stack([f[2] for f in feats]), labels)
    print(f"nearest-centroid accuracy, 8 classes (chance 0.125): single-frame object {acc_single:.3f}, "
          f"single-frame pixels {acc_pixels:.3f}, motion {acc_motion:.3f}")
    assert acc_motion >= 0.95
    assert acc_single <= 0.35 and acc_pixels <= 0.35


def test_ensure_synthetic_reuses_current_and_replaces_stale(tmp_path, monkeypatch):
    calls = []

    def fake_generate(out, **kw):  # the real generator is tested above; here only the cache logic
        calls.append(kw)
        Path(out).mkdir(parents=True, exist_ok=True)
        meta = dict(S.DEFAULTS, sizes={s: {} for s in S.DEFAULTS["sizes"]}, formats=list(S.FORMATS),
                    generator_version=S.GENERATOR_VERSION, classes_generated=sorted(S.CLASSES))
        (Path(out) / "marker").write_text(str(len(calls)))
        (Path(out) / "synthetic.json").write_text(json.dumps(meta))
        return Path(out)

    monkeypatch.setattr(S, "generate_synthetic", fake_generate)
    monkeypatch.setenv("I3DBENCH_CACHE", str(tmp_path / "cache"))
    root = S.ensure_synthetic(progress=False)
    assert root == tmp_path / "cache" / "synthetic" and (root / "marker").read_text() == "1"
    assert S.ensure_synthetic(progress=False) == root and len(calls) == 1  # current: reused
    meta = json.loads((root / "synthetic.json").read_text())
    meta["generator_version"] = S.GENERATOR_VERSION - 1
    (root / "synthetic.json").write_text(json.dumps(meta))
    S.ensure_synthetic(progress=False)
    assert len(calls) == 2 and (root / "marker").read_text() == "2"  # stale: regenerated
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".synthetic.") and "lock" not in p.name] == []


def test_ensure_synthetic_leaves_nothing_half_made(tmp_path, monkeypatch):
    def failing(out, **kw):
        (Path(out) / "videos_256p").mkdir(parents=True)
        raise RuntimeError("disk full")

    monkeypatch.setattr(S, "generate_synthetic", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        S.ensure_synthetic(tmp_path / "syn", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".syn.lock"]


def test_cli_synth(tmp_path):
    from i3dbench.cli import main

    rc = main(["data", "synth", str(tmp_path / "s"), "--seed", "5", "--videos-per-class", "1", "--val-videos-per-class", "0", "--frames", "4", "--workers", "1"])
    assert rc == 0
    meta = json.loads((tmp_path / "s" / "synthetic.json").read_text())
    assert (meta["seed"], meta["num_frames"], len(meta["videos"])) == (5, 4, 8)
    assert len(list((tmp_path / "s" / "videos_256p").glob("*.mp4"))) == 8
    assert (tmp_path / "s" / "val_list_videos.txt").read_text() == ""


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown classes"):
        S.generate_synthetic(tmp_path, classes=["jumping"], progress=False)
    with pytest.raises(ValueError, match="unknown sizes"):
        S.generate_synthetic(tmp_path, sizes=["224x224"], progress=False)
    with pytest.raises(ValueError, match="resolution"):
        S.synthetic_paths(tmp_path, "videos", "224p", "train")
