"""Shared test setup: no test writes into the checkout's runs/ folder."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _runs_root_in_tmp(tmp_path_factory, monkeypatch):
    # evaluate() searches the runs root for interrupted runs and `run`/`eval` create run
    # folders there: point it at a per-test temporary folder.
    monkeypatch.setenv("I3DBENCH_RUNS", str(tmp_path_factory.mktemp("runs")))


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    """3 real H.264 val videos of 340x256, their list, and a checkpoint of the smoke entry (seeded weights)."""
    import torch

    from i3dbench.checkpoints import save_checkpoint
    from i3dbench.data.synthetic import CLASSES, generate_synthetic, synthetic_paths
    from i3dbench.models import build_model

    root = tmp_path_factory.mktemp("tiny")
    generate_synthetic(root, videos_per_class=1, val_videos_per_class=1, num_frames=20, sizes=("340x256",),
                       formats=("videos",), classes=CLASSES[:3], workers=1, progress=False)
    data_root, ann = synthetic_paths(root, "videos", "340x256", "val")
    torch.manual_seed(0)
    return data_root, ann, save_checkpoint(root / "tiny.pth", build_model("smoke_i3d_tiny_video"))
