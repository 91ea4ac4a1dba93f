"""The zoo manifest: shipped manifests load, validation limits are exactly where the model and
the pipeline stop working, the constants the validation keeps agree with the code they mirror,
and the parse cache follows edits (of the manifest and of its include).

Hostile manifests through the command line: tests/test_hostile_zoo.py.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from pathlib import Path

import pytest
import torch
import yaml

from cli_harness import run_cli
from i3dbench.zoo import (
    DATASET_CLASSES,
    DENSE_SAMPLE_RANGE,
    DEFAULT_ZOO,
    DEPTH_BLOCKS,
    SMOKE_ZOO,
    ZooError,
    _check_entry,
    load_zoo,
    load_zoos,
)

REPO = Path(__file__).resolve().parent.parent
SMOKE = load_zoo(SMOKE_ZOO)["smoke_i3d_tiny_video"]


def test_shipped_manifests_load_and_list():
    zoo = load_zoos()
    assert set(load_zoo(DEFAULT_ZOO)) | set(load_zoo(SMOKE_ZOO)) == set(zoo)
    res = run_cli(["zoo", "list"], expect_rc=0, watch=[REPO / "zoo"])
    for name in zoo:
        assert f"| {name} " in res.out


def test_constants_kept_in_zoo_agree_with_the_code_they_mirror():
    from i3dbench.data.sampling import plan_dense_sample_frames
    from i3dbench.data.synthetic import CLASSES
    from i3dbench.models.resnet3d import ARCH_SETTINGS

    assert DEPTH_BLOCKS == {depth: blocks for depth, (_, blocks) in ARCH_SETTINGS.items()}
    assert DATASET_CLASSES["synthetic"] == len(CLASSES)
    assert DENSE_SAMPLE_RANGE == inspect.signature(plan_dense_sample_frames).parameters["sample_range"].default


def with_(entry, **sections):
    """``entry`` with fields of its sections replaced: with_(e, data={"clip_len": 3})."""
    return dataclasses.replace(
        entry, **{sec: dataclasses.replace(getattr(entry, sec), **changes) for sec, changes in sections.items()}
    )


def accepted(entry) -> bool:
    try:
        _check_entry(entry, "test")
    except ZooError:
        return False
    return True


def runs(arch, t: int, size: int) -> bool:
    from i3dbench.models import build_i3d

    model = build_i3d(dataclasses.replace(arch, base_channels=4)).eval()
    try:
        with torch.no_grad():
            return model(torch.zeros(1, 3, t, size, size)).shape == (1, arch.num_classes)
    except RuntimeError:
        return False


def test_clip_length_limit_is_where_the_backbone_stops_working():
    # conv1 and pool1 strided in time, then pool2: 5 frames are the fewest that leave one.
    entry = with_(SMOKE, arch={"conv1_stride_t": 2, "pool1_stride_t": 2})
    verdicts = [(t, accepted(with_(entry, data={"clip_len": t})), runs(entry.arch, t, 32)) for t in range(1, 8)]
    assert [(t, ok) for t, ok, _ in verdicts] == [(t, t >= 5) for t in range(1, 8)]
    assert all(ok == ran for _, ok, ran in verdicts), verdicts


def test_crop_size_limit_is_where_the_backbone_stops_working():
    # An even conv1 kernel pads one pixel too few: a 1-pixel input has nothing left after conv1.
    entry = with_(SMOKE, arch={"conv1_kernel": (3, 8, 8)})
    for size in (1, 2, 3):
        ok = accepted(with_(entry, data={"train_crop": size}))
        assert ok == (size >= 2) == runs(entry.arch, 8, size), size


def test_three_crop_must_span_the_resized_short_side():
    from i3dbench.data.transforms import eval_views

    clips = torch.zeros(1, 3, 2, 60, 80, dtype=torch.uint8)  # N x C x T x H x W, as in the test pipeline
    for crop in (40, 48, 56):
        entry = with_(SMOKE, test={"crop_size": crop})
        try:
            eval_views(clips, SMOKE.data.resize_short, crop, three_crop=True)
            ran = True
        except ValueError:
            ran = False
        assert accepted(entry) == ran == (crop == SMOKE.data.resize_short), crop


def test_center_crop_must_fit_in_the_resized_frame():
    assert accepted(with_(SMOKE, test={"crop": "center_crop", "crop_size": 48}))
    assert accepted(with_(SMOKE, test={"crop": "center_crop", "crop_size": 20}))
    assert not accepted(with_(SMOKE, test={"crop": "center_crop", "crop_size": 49}))


def test_stage_rows_follow_stage_blocks():
    two = with_(SMOKE, arch={"stage_blocks": (1, 2, 1, 1), "inflate": ((1,), (1, 0), (1,), (1,)),
                             "non_local": ((0,), (0, 0), (0,), (0,))})
    assert accepted(two) and runs(two.arch, 8, 32)
    short = with_(two, arch={"inflate": ((1,), (1,), (1,), (1,))})
    assert not accepted(short)
    with pytest.raises(ValueError, match="flags for 2 blocks"):
        runs(short.arch, 8, 32)  # what a user would otherwise meet at build time
    # stage_blocks null: the rows follow the depth's block counts
    assert accepted(with_(SMOKE, arch={"stage_blocks": None, "inflate": tuple((1,) * n for n in DEPTH_BLOCKS[50]),
                                       "non_local": tuple((0,) * n for n in DEPTH_BLOCKS[50])}))
    assert not accepted(with_(SMOKE, arch={"stage_blocks": None}))  # one flag per stage, 3-4-6-3 blocks


def test_filename_template_must_format_a_frame_number():
    for tmpl, ok in [("img_{:05}.jpg", True), ("{}.jpg", True), ("frame_{:d}.png", True),
                     ("img.jpg", False), ("img_{:s}.jpg", False), ("img_{0}_{1}.jpg", False), ("{x}.jpg", False)]:
        assert accepted(with_(SMOKE, data={"filename_tmpl": tmpl})) == ok, tmpl


def test_yaml_merge_keys_work_and_duplicates_do_not(tmp_path):
    defaults = yaml.safe_dump({"defaults": yaml.safe_load(SMOKE_ZOO.read_text())["defaults"]})
    f = tmp_path / "z.yaml"
    f.write_text(defaults + "entries:\n  a: &a {config: c, notes: first}\n  b:\n    <<: *a\n    notes: second\n")
    zoo = load_zoo(f)
    assert (zoo["a"].notes, zoo["b"].notes, zoo["b"].config) == ("first", "second", "c")
    f.write_text(f.read_text() + "    notes: third\n")
    last = len(f.read_text().splitlines())
    with pytest.raises(ZooError, match=f"line {last}, column 5: 'notes' is defined twice"):
        load_zoo(f)


def write(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def test_cache_follows_edits_of_the_manifest_and_of_its_include(tmp_path):
    base = yaml.safe_load(SMOKE_ZOO.read_text())
    inc = write(tmp_path / "base.yaml", {"defaults": base["defaults"]})
    main = write(tmp_path / "main.yaml", {"include": "base.yaml",
                                          "entries": {"e": {"config": "c", "notes": "first"}}})
    assert load_zoo(main)["e"].data.clip_len == 8

    base["defaults"]["data"]["clip_len"] = 6
    write(inc, {"defaults": base["defaults"]})
    os.utime(inc, ns=(1, 10**18))  # a distinct mtime even on coarse-grained file systems
    assert load_zoo(main)["e"].data.clip_len == 6  # the include changed: not served stale

    write(main, {"include": "base.yaml", "entries": {"e": {"config": "c", "notes": "second"}}})
    os.utime(main, ns=(1, 2 * 10**18))
    assert load_zoo(main)["e"].notes == "second"
