"""Fast checks that always run (no --benchmark needed): the manifest is valid, every model builds."""

from __future__ import annotations

import re

import pytest
import torch

from i3dbench.models import build_model


def test_manifest_entries_are_complete(zoo_entry):
    e = zoo_entry
    assert e.views_per_video >= 1 and e.arch.num_classes >= 2
    t = e.tolerance
    assert t.top1 > 0 and t.top5 > 0 and t.memory_rel > 0 and 0 < t.speed_min_ratio <= 1
    if e.dataset == "kinetics400":
        p = e.published
        assert p.top1 is not None and p.top5 is not None and 0 < p.top1 < p.top5 <= 100
        assert p.source, "a published number needs its source"
        assert e.checkpoint.url and re.search(r"-[0-9a-f]{8}\.pth$", e.checkpoint.url)
    else:
        assert e.published.top1 is None, "smoke entries have no published numbers"


def test_model_builds_with_published_size(zoo_entry):
    model = build_model(zoo_entry)
    head = model.cls_head.fc_cls
    assert head.out_features == zoo_entry.arch.num_classes
    params = sum(p.numel() for p in model.parameters())
    published = zoo_entry.published.params_m
    if published is not None:
        # Millions as the metafile prints them (0.x: 2 decimals, 1.x: 1): agree to that rounding.
        decimals = len(repr(published).split(".")[1]) if "." in repr(published) else 0
        assert params / 1e6 == pytest.approx(published, abs=0.5 * 10**-decimals + 1e-9)
    if zoo_entry.dataset == "synthetic":  # tiny: run one view of the test protocol through it
        x = torch.zeros(1, 3, zoo_entry.data.clip_len, zoo_entry.test.crop_size, zoo_entry.test.crop_size)
        with torch.no_grad():
            assert model.eval()(x).shape == (1, zoo_entry.arch.num_classes)
