"""Training: one process and DDP (torchrun, gloo, CPU), MMAction2-style logs, exact resume.

All runs use a tiny synthetic set written into a temporary folder (2 classes x 4 videos of
12 frames at 340x256) and a test manifest that scales the smoke entry down further. Data
augmentation stays on (random temporal offset, random MultiScaleCrop corner, flip): equality
between runs comes from the per-sample seeding of the data, not from switching it off.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from i3dbench.errors import UserError
import torch

from i3dbench.checkpoints import file_sha256
from i3dbench.data.dataset import build_dataset
from i3dbench.data.synthetic import generate_synthetic, synthetic_paths
from i3dbench.train import (
    build_train_model,
    find_resume_checkpoint,
    read_log_json,
    train,
)
from i3dbench.zoo import load_zoo

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "zoo" / "smoke.yaml"

# The smoke entry's defaults (included), scaled down to run in seconds. Dropout is off so a
# forward pass is a function of weights and data only (the DDP test recomputes losses).
TEST_ZOO = f"""
include: {SMOKE}
entries:
  test_tiny:
    config: i3d_r50_video_32x2x1_100e_kinetics400_rgb
    notes: "unit-test entry"
    arch: {{base_channels: 4, dropout_ratio: 0.0}}
    data: {{format: videos, resolution: 340x256, clip_len: 4, frame_interval: 2, resize_short: 32, train_crop: 32, val_crop: 32}}
    test: {{crop_size: 32}}
    recipe: {{lr: 0.05, milestones: [2], epochs: 3, videos_per_gpu: 4, gpus: 1, base_batch_size: 4, val_interval: 1, checkpoint_interval: 1}}
  test_tiny_dropout:  # the same with dropout, so that resuming must restore the torch RNG too
    config: i3d_r50_video_32x2x1_100e_kinetics400_rgb
    arch: {{base_channels: 4, dropout_ratio: 0.5}}
    data: {{format: videos, resolution: 340x256, clip_len: 4, frame_interval: 2, resize_short: 32, train_crop: 32, val_crop: 32}}
    test: {{crop_size: 32}}
    recipe: {{lr: 0.05, milestones: [2], epochs: 3, videos_per_gpu: 4, gpus: 1, base_batch_size: 4, val_interval: 1, checkpoint_interval: 1}}
"""

ENV = {
    **os.environ,
    "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    "OMP_NUM_THREADS": "1",
    "I3DBENCH_CACHE": "/nonexistent-i3dbench-cache",  # a test must never fall back to the real cache
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = generate_synthetic(
        root / "synthetic",
        seed=3,
        videos_per_class=4,
        val_videos_per_class=1,
        num_frames=12,
        sizes=("340x256",),
        formats=("videos",),
        classes=("moving left", "moving right"),
        workers=1,
        progress=False,
    )
    zoo = root / "zoo.yaml"
    zoo.write_text(TEST_ZOO)
    entry = load_zoo(zoo)["test_tiny"]
    train_root, train_ann = synthetic_paths(data, "videos", "340x256", "train")
    val_root, val_ann = synthetic_paths(data, "videos", "340x256", "val")
    return {"root": root, "zoo": zoo, "entry": entry, "train": (train_root, train_ann), "val": (val_root, val_ann)}


def _cli(setup, work_dir, *extra, entry="test_tiny", torchrun: int = 0, check=True, popen=False):
    train_root, train_ann = setup["train"]
    val_root, val_ann = setup["val"]
    args = [
        "train", entry, "--zoo", str(setup["zoo"]),
        "--data-root", str(train_root), "--ann", str(train_ann),
        "--val-data-root", str(val_root), "--val-ann", str(val_ann),
        "--work-dir", str(work_dir), "--workers", "0", "--deterministic", "--no-record",
        *map(str, extra),
    ]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={torchrun}",
               "-m", "i3dbench.cli", *args]
    else:
        cmd = [sys.executable, "-m", "i3dbench.cli", *args]
    if popen:
        return subprocess.Popen(cmd, env=ENV, cwd=setup["root"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = subprocess.run(cmd, env=ENV, cwd=setup["root"], capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _train_lines(log):
    return [d for d in read_log_json(log) if d.get("mode") == "train"]


def test_single_process_run_logs_checkpoints_and_records(setup, tmp_path):
    train_root, train_ann = setup["train"]
    val_root, val_ann = setup["val"]
    torch.set_num_threads(1)
    res = train(
        setup["entry"], train_root, train_ann, tmp_path / "work",
        val_ann_file=val_ann, val_data_root=val_root, epochs=2, num_workers=0, deterministic=True,
        log_interval=1, records_dir=tmp_path / "records",
    )
    # Result: two epochs of 2 iterations (8 videos / 4), a checkpoint whose hash is the file's.
    assert (res.epochs, res.iters, res.world_size, res.total_batch) == (2, 4, 1, 4)
    assert res.checkpoint == tmp_path / "work" / "latest.pth"
    assert res.checkpoint.resolve().name == "epoch_2.pth"
    assert res.checkpoint_sha256 == file_sha256(tmp_path / "work" / "epoch_2.pth")
    assert (tmp_path / "work" / "epoch_1.pth").is_file()
    assert 0 <= res.final_top1 <= 100 and res.final_top1 <= res.final_top5
    assert res.memory_kind == "cpu_peak_rss" and res.peak_memory_mb > 0
    # The lr is the recipe's (total batch 4 = base batch 4), stepped by MultiStepLR at epoch 2.
    assert res.lr == pytest.approx(0.05)

    lines = read_log_json(res.log_json)
    meta, rest = lines[0], lines[1:]
    assert "mode" not in meta and meta["memory_kind"] == "cpu_peak_rss" and meta["seed"] == 0
    assert meta["world_size"] == 1 and meta["total_batch"] == 4 and meta["deterministic"] is True
    train_lines = [d for d in rest if d["mode"] == "train"]
    val_lines = [d for d in rest if d["mode"] == "val"]
    assert [(d["epoch"], d["iter"]) for d in train_lines] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for d in train_lines:
        assert set(d) == {"mode", "epoch", "iter", "lr", "memory", "data_time", "time", "loss_cls", "loss",
                          "top1_acc", "top5_acc"}
        assert d["loss"] == d["loss_cls"] > 0 and 0 <= d["top1_acc"] <= d["top5_acc"] <= 1
        assert d["lr"] == pytest.approx(0.05)  # milestone 2: the drop applies from epoch 3
    assert [d["epoch"] for d in val_lines] == [1, 2]
    assert set(val_lines[-1]) >= {"top1_acc", "top5_acc", "mean_class_accuracy"}
    assert val_lines[-1]["top1_acc"] * 100 == pytest.approx(res.final_top1)

    # The record holds the final accuracy, wall time, memory and the checkpoint hash.
    (record_file,) = list((tmp_path / "records").glob("*.json"))
    assert res.record_path == record_file
    rec = json.loads(record_file.read_text())
    assert rec["kind"] == "train" and rec["entry"] == "test_tiny"
    assert rec["metrics"]["top1"] == pytest.approx(res.final_top1)
    assert rec["metrics"]["wall_time_s"] > 0 and rec["metrics"]["peak_memory_mb"] == res.peak_memory_mb
    assert rec["conditions"]["checkpoint_sha256"] == res.checkpoint_sha256
    assert rec["obtained"] == {"how": "computed"} and rec["method"]["name"] == "train"
    # Conditions are those of the start: the record's time is before the training's last log line.
    import datetime as _dt

    started = _dt.datetime.fromisoformat(rec["conditions"]["time"])
    assert started.timestamp() <= record_file.stat().st_mtime - res.wall_time_s + 5.0
    assert rec["conditions"]["code"]["source_sha256"]

    # Resume finds the newest complete checkpoint: a newer but truncated file and a
    # temporary file (what an interrupted atomic save leaves) are passed over.
    work = tmp_path / "work"
    (work / ".epoch_3.pth.abc123.tmp").write_bytes(b"half")
    (work / "epoch_9.pth").write_bytes((work / "epoch_2.pth").read_bytes()[:1000])
    assert find_resume_checkpoint(work) == work / "epoch_2.pth"
    # A fresh run into a work dir holding another run's checkpoints is refused.
    with pytest.raises(UserError, match="--resume auto"):
        train(setup["entry"], train_root, train_ann, work, num_workers=0)


def _reference_loss(setup, samples: list[int]) -> float:
    """The first-iteration loss of a batch of these training samples, computed here from scratch."""
    from i3dbench.data.transforms import normalize

    entry = setup["entry"]
    ds = build_dataset(entry, "train", *setup["train"], seed=0)  # train() seeds its data with its seed
    ds.set_epoch(0)
    model, _ = build_train_model(entry, seed=0, init="none")
    model.train()
    views = torch.stack([ds[i][0] for i in samples])
    labels = torch.tensor([ds[i][1] for i in samples])
    x = normalize(views.flatten(0, 1), entry.data.mean, entry.data.std)
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(model(x), labels).item()


def test_ddp_first_iteration_matches_single_process(setup, tmp_path):
    # Same total batch of 4: one process x 4 videos, and torchrun 2 processes x 2 videos.
    _cli(setup, tmp_path / "single", "--videos-per-gpu", 4, "--max-iters", 1, "--log-interval", 1)
    ddp = _cli(setup, tmp_path / "ddp", "--videos-per-gpu", 2, "--max-iters", 1, "--log-interval", 1, torchrun=2)
    single_meta = read_log_json(tmp_path / "single" / "log.json")[0]
    ddp_meta = read_log_json(tmp_path / "ddp" / "log.json")[0]
    assert (single_meta["world_size"], single_meta["total_batch"]) == (1, 4)
    assert (ddp_meta["world_size"], ddp_meta["total_batch"]) == (2, 4), ddp.stdout[-2000:]
    assert ddp_meta["lr"] == single_meta["lr"]  # same total batch: no rescaling
    (single_line,) = _train_lines(tmp_path / "single" / "log.json")
    (ddp_line,) = _train_lines(tmp_path / "ddp" / "log.json")

    # The shuffled order of epoch 0 (same for both: it depends on the seed and epoch only).
    order = list(torch.utils.data.DistributedSampler(range(8), num_replicas=1, rank=0, shuffle=True, seed=0))
    total_batch = order[:4]
    rank_batches = [order[0::2][:2], order[1::2][:2]]  # what DistributedSampler gives ranks 0 and 1
    assert sorted(rank_batches[0] + rank_batches[1]) == sorted(total_batch)  # the same four videos

    # Each rank normalises with BatchNorm statistics of its own 2 videos (MMAction2's per-GPU
    # BN), one process with those of all 4, so the two losses are equal only up to that; each
    # must equal exactly its own recomputation, and the DDP loss is the mean over ranks.
    single_ref = _reference_loss(setup, total_batch)
    ddp_ref = sum(_reference_loss(setup, b) for b in rank_batches) / 2
    assert single_line["loss"] == pytest.approx(single_ref, rel=1e-5, abs=1e-6)
    assert ddp_line["loss"] == pytest.approx(ddp_ref, rel=1e-5, abs=1e-6)
    assert ddp_line["loss"] == pytest.approx(single_line["loss"], rel=0.05)


def _final_state(work_dir: Path) -> dict:
    return torch.load(work_dir / "latest.pth", map_location="cpu", weights_only=True)["state_dict"]


def test_sigkill_and_resume_auto_gives_identical_weights(setup, tmp_path):
    epochs, entry = 4, "test_tiny_dropout"
    _cli(setup, tmp_path / "straight", "--epochs", epochs, entry=entry)

    work = tmp_path / "killed"
    proc = _cli(setup, work, "--epochs", epochs, entry=entry, popen=True)
    deadline = time.monotonic() + 120
    while not (work / "epoch_1.pth").exists():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (work / f"epoch_{epochs}.pth").exists(), "the run finished before it was killed"

    resumed = _cli(setup, work, "--epochs", epochs, "--resume", "auto", entry=entry)
    assert "resumed from" in (work / "log.json").read_text(), resumed.stdout[-2000:]

    a, b = _final_state(tmp_path / "straight"), _final_state(work)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"weights differ after resume: {different[:5]}"
    # The logs agree too: the same per-epoch validation and no repeated epochs.
    def val(p):
        return [(d["epoch"], d["top1_acc"]) for d in read_log_json(p / "log.json") if d.get("mode") == "val"]

    assert val(work) == val(tmp_path / "straight")
    epochs_logged = [d["epoch"] for d in _train_lines(work / "log.json")]
    assert epochs_logged == sorted(epochs_logged)


def _to_torchvision_2d(state_dict_3d: dict) -> dict:
    """A torchvision-layout 2D ResNet state dict with the shapes of a 3D backbone (first time slice)."""
    out = {}
    for key, value in state_dict_3d.items():
        if not key.startswith("backbone."):
            continue
        k = key[len("backbone."):]
        k = k.replace("conv1.conv.", "conv1.").replace("conv1.bn.", "bn1.") if k.startswith("conv1.") else k
        for i in (1, 2, 3):
            k = k.replace(f"conv{i}.conv.", f"conv{i}.").replace(f"conv{i}.bn.", f"bn{i}.")
        k = k.replace("downsample.conv.", "downsample.0.").replace("downsample.bn.", "downsample.1.")
        out[k] = value[:, :, 0].clone() if value.dim() == 5 else value.clone()
    out["fc.weight"], out["fc.bias"] = torch.zeros(10, 1), torch.zeros(10)
    return out


def test_init_from_2d_imagenet_weights_and_from_a_checkpoint(setup, tmp_path):
    entry = setup["entry"]
    donor, _ = build_train_model(entry, seed=7, init="none")
    sd2d = _to_torchvision_2d(donor.state_dict())
    torch.save(sd2d, tmp_path / "resnet2d.pth")
    model, desc = build_train_model(entry, seed=0, init=str(tmp_path / "resnet2d.pth"))
    assert "inflated" in desc
    w3d = model.state_dict()["backbone.conv1.conv.weight"]  # out x in x t x k x k
    t = w3d.shape[2]
    assert t > 1 and torch.allclose(w3d, sd2d["conv1.weight"].unsqueeze(2).expand_as(w3d) / t)
    assert torch.equal(model.state_dict()["backbone.layer1.0.conv1.bn.weight"], sd2d["layer1.0.bn1.weight"])

    # An MMAction2-layout checkpoint ({'state_dict': backbone.* / cls_head.*}) loads as it is.
    torch.save({"state_dict": donor.state_dict(), "meta": {}}, tmp_path / "mm.pth")
    model, desc = build_train_model(entry, seed=0, init=str(tmp_path / "mm.pth"))
    assert "MMAction2" in desc
    assert all(torch.equal(v, donor.state_dict()[k]) for k, v in model.state_dict().items())

    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="neither a 2D torchvision ResNet"):
        build_train_model(entry, seed=0, init=str(tmp_path / "other.pth"))
