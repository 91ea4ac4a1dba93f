"""ClipDataset on a tiny dataset written here: tiny mp4s (PyAV) and JPEG rawframes."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch
from pipeline_media import smooth_frames, write_mp4

from i3dbench.data import transforms as T
from i3dbench.data.dataset import (
    ClipDataset,
    DecodeFailure,
    build_dataset,
    collate_views,
)
from i3dbench.data.decoders import DecodeError, get_decoder
from i3dbench.data.sampling import sample_frames
from i3dbench.zoo import SMOKE_ZOO, load_zoo

ZOO = load_zoo(SMOKE_ZOO)
# The smoke entries with the pipeline settings these tests were written for, pinned here so
# that retuning zoo/smoke.yaml does not change what the tests check.
_PIPELINE = dict(clip_len=8, frame_interval=2, resize_short=64, train_crop=56, train_scales=(1.0, 0.8),
                 flip_ratio=0.5, val_crop=56)


def _pinned(entry):
    return dataclasses.replace(
        entry,
        data=dataclasses.replace(entry.data, **_PIPELINE),
        test=dataclasses.replace(entry.test, num_clips=2, crop="three_crop", crop_size=64),
    )


VIDEO_ENTRY = _pinned(ZOO["smoke_i3d_tiny_video"])  # clip 8x2, short 64, train/val crop 56, test 2 clips x 3 crops 64
RAW_ENTRY = _pinned(ZOO["smoke_i3d_tiny_rawframes_lazy"])  # rawframes, start_index 1, lazy train/val
LENGTHS = (30, 12, 45)  # 12 frames: shorter than one 8x2 clip, indices loop
H, W = 72, 96  # resized to 64 x 85


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("tiny")
    (root / "videos").mkdir()
    (root / "rawframes").mkdir()
    video_lines, raw_lines = [], []
    for i, n in enumerate(LENGTHS):
        frames = smooth_frames(i, n, H, W, cell=12)
        write_mp4(root / "videos" / f"v{i}.mp4", frames)
        d = root / "rawframes" / f"v{i}"
        d.mkdir()
        for k, f in enumerate(frames):
            Image.fromarray(f).save(d / f"img_{k + 1:05}.jpg", quality=95)
        video_lines.append(f"v{i}.mp4 {i % 2}\n")
        raw_lines.append(f"v{i} {n} {i % 2}\n")
    (root / "videos" / "broken.mp4").write_text("this is not a video\n")
    (root / "videos.txt").write_text("".join(video_lines))
    (root / "videos_broken.txt").write_text("".join(video_lines) + "broken.mp4 1\n")
    (root / "rawframes.txt").write_text("".join(raw_lines))
    return root


def _videos(tiny, split, **kw):
    return build_dataset(VIDEO_ENTRY, split, tiny / "videos", tiny / "videos.txt", **kw)


def test_shapes_labels_and_views_per_video(tiny):
    shapes = {"train": (1, 3, 8, 56, 56), "val": (1, 3, 8, 56, 56), "test": (6, 3, 8, 64, 64)}
    for split, shape in shapes.items():
        ds = _videos(tiny, split, seed=0)
        assert len(ds) == 3 and ds.split == split and ds.entry is VIDEO_ENTRY
        assert [r.label for r in ds.records] == [0, 1, 0]
        for i in range(len(ds)):
            views, label, index = ds[i]
            assert views.dtype == torch.uint8 and tuple(views.shape) == shape, split
            assert (label, index) == (i % 2, i)
        assert ds.views_per_video == shape[0]


def test_test_views_are_the_mmaction_pipeline_on_decoded_frames(tiny):
    """Sampling indices + Resize + ThreeCrop + FormatShape, recomputed from the decoded video."""
    ds = _videos(tiny, "test")
    dec = get_decoder("decord")
    for i, n in enumerate(LENGTHS):
        path = tiny / "videos" / f"v{i}.mp4"
        assert dec.num_frames(path) == n
        idx = sample_frames(n, 8, 2, 2, test_mode=True)
        clips = T.resize_short(dec.read(path, idx), 64).reshape(2, 8, 64, 85, 3)
        want = torch.stack([clips[..., x1:x2, :] for x1, _, x2, _ in T.three_crop_boxes(64, 85, 64)])
        want = want.reshape(6, 8, 64, 64, 3).permute(0, 4, 1, 2, 3)
        assert torch.equal(ds[i][0], want)


def test_training_items_deterministic_per_seed_epoch_index(tiny):
    a, b = _videos(tiny, "train", seed=3), _videos(tiny, "train", seed=3)
    for i in range(3):
        assert torch.equal(a[i][0], b[i][0])
    def plans(ds):
        return [(tuple(p.sample.indices), p.geometry) for p in (ds.plan(i, 200, (256, 340)) for i in range(40))]

    assert plans(a) == plans(b)
    a.set_epoch(1)
    assert plans(a) != plans(b)  # a new epoch, new draws
    c = _videos(tiny, "train", seed=4)
    assert plans(c) != plans(b)
    drawn = [g for _, g in plans(c)]
    assert {g.flip for g in drawn} == {True, False}
    assert len({g.box for g in drawn}) > 1
    # test / val items do not depend on the seed
    assert torch.equal(_videos(tiny, "val", seed=1)[0][0], _videos(tiny, "val", seed=2)[0][0])


def test_rawframes_lazy_entry(tiny):
    for split, shape in {"train": (1, 3, 8, 56, 56), "val": (1, 3, 8, 56, 56), "test": (6, 3, 8, 64, 64)}.items():
        ds = build_dataset(RAW_ENTRY, split, tiny / "rawframes", tiny / "rawframes.txt", seed=0)
        assert [r.total_frames for r in ds.records] == list(LENGTHS)
        for i in range(3):
            views, label, _ = ds[i]
            assert tuple(views.shape) == shape and label == i % 2
    val = build_dataset(RAW_ENTRY, "val", tiny / "rawframes", tiny / "rawframes.txt")
    plan = val.plan(0, 30, (H, W))
    assert plan.geometry.lazy_box is not None  # one fused crop + resize
    # the same content decoded from JPEG and from H.264: close (both lossy)
    mp4 = _videos(tiny, "test")[0][0].float()
    jpg = build_dataset(RAW_ENTRY, "test", tiny / "rawframes", tiny / "rawframes.txt")[0][0].float()
    assert (mp4 - jpg).abs().mean() < 4


def test_dense_sampler_test_views():
    entry = dataclasses.replace(VIDEO_ENTRY, data=dataclasses.replace(VIDEO_ENTRY.data, sampler="dense"))
    test = ClipDataset(entry, "test", [], ".", decoder=None)
    assert test.views_per_video == entry.test.num_clips * 3
    plan = test.plan(0, 100, (64, 85))
    assert plan.sample.num_clips == entry.test.num_clips and plan.geometry is None


def test_normalize_option(tiny):
    raw = _videos(tiny, "val", seed=0)[1][0]
    views, _, _ = _videos(tiny, "val", normalize=True)[1]
    assert views.dtype == torch.float32
    assert torch.equal(views, T.normalize(raw, VIDEO_ENTRY.data.mean, VIDEO_ENTRY.data.std))


def test_decode_failure_raise_or_report(tiny):
    ds = build_dataset(VIDEO_ENTRY, "test", tiny / "videos", tiny / "videos_broken.txt")
    with pytest.raises(DecodeError, match="broken.mp4"):
        ds[3]
    rep = build_dataset(VIDEO_ENTRY, "test", tiny / "videos", tiny / "videos_broken.txt", on_error="report")
    failure, label, index = rep[3]
    assert isinstance(failure, DecodeFailure) and failure.path.endswith("broken.mp4") and failure.reason
    assert (label, index) == (1, 3)
    assert pickle.loads(pickle.dumps(failure)) == failure
    views, labels, indices, failures = collate_views([rep[0], rep[3]])
    assert views.shape == (1, 6, 3, 8, 64, 64) and labels.tolist() == [0] and indices.tolist() == [0]
    assert failures == [(failure, 1, 3)]


def test_bad_arguments(tiny):
    with pytest.raises(ValueError, match="split"):
        _videos(tiny, "eval")
    with pytest.raises(ValueError, match="on_error"):
        _videos(tiny, "val", on_error="ignore")
    with pytest.raises(FileNotFoundError, match="data root"):
        build_dataset(VIDEO_ENTRY, "val", tiny / "nowhere", tiny / "videos.txt")
    with pytest.raises(ValueError, match="rawframes"):
        build_dataset(RAW_ENTRY, "val", tiny / "rawframes", tiny / "rawframes.txt", decoder="pyav")


@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true")
def test_dataloader_two_workers_matches_in_process(tiny):
    ds = build_dataset(VIDEO_ENTRY, "train", tiny / "videos", tiny / "videos_broken.txt", seed=11, on_error="report")
    ds.set_epoch(2)
    clone = pickle.loads(pickle.dumps(ds))  # what a spawned worker gets
    assert clone.seed == ds.seed and clone.epoch == 2 and torch.equal(clone[1][0], ds[1][0])
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, pin_memory=False,
                                         collate_fn=collate_views, multiprocessing_context="fork")
    got_views, got_idx, got_fail = [], [], []
    for views, labels, indices, failures in loader:
        got_views += list(views)
        got_idx += indices.tolist()
        got_fail += [f[2] for f in failures]
    assert got_idx == [0, 1, 2] and got_fail == [3]
    for i in range(3):
        assert torch.equal(got_views[i], ds[i][0])
    loader = torch.utils.data.DataLoader(_videos(tiny, "val"), batch_size=3, num_workers=0, pin_memory=True)
    views, labels, indices = next(iter(loader))
    assert views.shape == (3, 1, 3, 8, 56, 56) and labels.tolist() == [0, 1, 0]
