"""Hostile manifests through the real command line: every one exits 2 with one line that names
the file, the entry, the field and the offending value, prints no traceback, and changes no
file (``i3dbench zoo list --zoo F`` and ``i3dbench eval NAME --zoo F``).

Each case starts from a valid one-entry manifest (the smoke entry's settings written out) and
breaks one thing.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from cli_harness import run_cli

REPO = Path(__file__).resolve().parent.parent

ENTRY = {
    "config": "i3d_r50_video_32x2x1_100e_kinetics400_rgb",
    "mmaction": "smoke",
    "dataset": "synthetic",
    "published": {"top1": None, "top5": None, "video_per_s": None, "speed_protocol": None, "gpu_mem_mb": None,
                  "gpus": "0", "pretrain": "none", "source": "test"},
    "checkpoint": {"url": None, "sha256_prefix": None},
    "arch": {"depth": 50, "base_channels": 16, "stage_blocks": [1, 1, 1, 1], "conv1_kernel": [3, 7, 7],
             "conv1_stride_t": 1, "pool1_stride_t": 1, "inflate": [[1], [1], [1], [1]],
             "non_local": [[0], [0], [0], [0]], "num_classes": 8, "dropout_ratio": 0.0},
    "data": {"format": "videos", "resolution": "340x256", "start_index": 0, "clip_len": 8, "frame_interval": 4,
             "resize_short": 48, "train_crop": 48, "val_crop": 48},
    "test": {"num_clips": 2, "crop": "three_crop", "crop_size": 48},
    "recipe": {"lr": 0.01, "milestones": [26, 32], "epochs": 36, "videos_per_gpu": 8, "gpus": 1,
               "base_batch_size": 8, "pretrained": None},
    "tolerance": {"top1": 5.0, "top5": 5.0, "memory_rel": 0.25, "speed_min_ratio": 0.8},
}


def manifest(tmp_path: Path, changes: dict | None = None, name: str = "e") -> Path:
    """The valid manifest with ``changes`` (dotted field -> value) applied to its entry."""
    entry = copy.deepcopy(ENTRY)
    for dotted, value in (changes or {}).items():
        *parents, leaf = dotted.split(".")
        node = entry
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump({"entries": {name: entry}}, sort_keys=False))
    return path


def zoo_list(path: Path, *must_name, tmp_path: Path):
    return run_cli(["zoo", "list", "--zoo", path], must_name=[str(path), *must_name],
                   watch=[tmp_path, REPO / "zoo"])


def test_the_base_manifest_is_valid(tmp_path):
    # Without this every case below could pass for the wrong reason.
    res = run_cli(["zoo", "list", "--zoo", manifest(tmp_path)], expect_rc=0, watch=[tmp_path])
    assert "| e " in res.out


# (dotted field, bad value, what the message must say besides file/entry/field/value)
IMPOSSIBLE = [
    ("data.clip_len", 0, ">= 1"),
    ("data.frame_interval", -2, ">= 1"),
    ("data.num_clips", 0, ">= 1"),
    ("data.val_clips", 0, ">= 1"),
    ("data.resize_short", 0, ">= 1"),
    ("data.train_crop", 0, ">= 1"),
    ("data.val_crop", 300, "fit in the resized frame"),
    ("test.crop_size", 40, "must equal data.resize_short (48)"),
    ("test.num_clips", 0, ">= 1"),
    ("data.clip_len", 1, "leaves no frames"),  # pool2 halves time: one frame cannot be pooled
    ("data.start_index", -1, ">= 0"),
    ("data.filename_tmpl", "img.jpg", "format the frame number"),
    ("data.filename_tmpl", "img_{name}.jpg", "format the frame number"),
    ("data.filename_tmpl", "../img_{:05}.jpg", "no path separators"),
    ("data.std", [58.0, 0.0, 57.0], "> 0"),
    ("data.train_scales", [1.0, 1.5], "(0, 1]"),
    ("data.flip_ratio", 2.0, "[0, 1]"),
    ("arch.num_classes", 5, "8 classes of dataset synthetic"),
    ("arch.num_classes", 0, "8 classes"),
    ("arch.depth", 51, "one of"),
    ("arch.stage_blocks", [1, 1, 1], "4 block counts"),
    ("arch.inflate", [[1], [1, 1], [1], [1]], "field 'arch.inflate[1]' must have one flag per block of stage 2"),
    ("arch.non_local", [[0], [0], [2], [0]], "field 'arch.non_local[2]' must be 0/1 flags"),
    ("arch.dropout_ratio", 1.0, "[0, 1)"),
    ("recipe.epochs", 0, "1 to 1000"),
    ("recipe.videos_per_gpu", 0, ">= 1"),
    ("recipe.base_batch_size", -8, ">= 1"),
    ("recipe.milestones", [32, 26], "increasing"),
    ("recipe.lr", 0.0, "> 0"),
    ("recipe.pretrained", "torchvision://resnet18", "arch.depth"),
    ("tolerance.top1", -1.0, "(0, 100]"),
    ("tolerance.speed_min_ratio", 1.5, "(0, 1]"),
    ("tolerance.memory_rel", 0.0, "(0, 1]"),
    ("published.top1", 101.0, "[0, 100]"),
    ("published.gpu_mem_mb", -1, "> 0"),
    ("checkpoint.url", "ftp://example.org/x-12345678.pth", "http(s) URL or a file path"),
    ("checkpoint.sha256_prefix", "XYZ", "8 lowercase hex"),
]


@pytest.mark.parametrize("dotted, value, what", IMPOSSIBLE, ids=[f"{d}={v}" for d, v, _ in IMPOSSIBLE])
def test_impossible_value_is_refused_naming_file_entry_field_and_value(tmp_path, dotted, value, what):
    path = manifest(tmp_path, {dotted: value})
    # a per-stage row is named with its index, and the row itself is the value shown
    field = f"field '{dotted}" + ("[" if dotted.startswith(("arch.inflate", "arch.non_local")) else "'")
    shown = f"got {value!r}" if not dotted.startswith(("arch.inflate", "arch.non_local")) else "got ["
    zoo_list(path, "entry 'e'", field, shown, what, tmp_path=tmp_path)


def test_top5_below_top1_is_refused(tmp_path):
    path = manifest(tmp_path, {"published.top1": 80.0, "published.top5": 70.0})
    zoo_list(path, "field 'published.top5'", "below published.top1 (80.0)", "got 70.0", tmp_path=tmp_path)


def test_dense_entry_whose_clips_do_not_fit_the_sample_range_is_refused(tmp_path):
    path = manifest(tmp_path, {"data.sampler": "dense", "data.num_clips": 100})
    zoo_list(path, "field 'data.num_clips'", "dense", "got 100", tmp_path=tmp_path)


@pytest.mark.parametrize("dotted, value, what", [
    ("data.clip_len", "32", "must be of type int"),
    ("data.clip_len", 8.0, "must be of type int"),
    ("data.lazy", "yes", "must be of type bool"),
    ("data.mean", [1.0, 2.0], "list of 3 items"),
    ("tolerance.top1", True, "must be a number"),
    ("data.clip_length", 8, "is not a known field"),
    ("arch", [1, 2], "must be a mapping"),
])
def test_wrong_types_and_unknown_fields(tmp_path, dotted, value, what):
    path = manifest(tmp_path, {dotted: value})
    zoo_list(path, "entry 'e'", f"field '{dotted}'", what, tmp_path=tmp_path)


def test_missing_field_is_named(tmp_path):
    entry = copy.deepcopy(ENTRY)
    del entry["published"]["gpus"]
    path = tmp_path / "zoo.yaml"
    path.write_text(yaml.safe_dump({"entries": {"e": entry}}))
    zoo_list(path, "entry 'e'", "field 'published.gpus' is missing", tmp_path=tmp_path)


@pytest.mark.parametrize("name", ["../escape", "a/b", "-x"])
def test_entry_names_that_cannot_be_file_names_are_refused(tmp_path, name):
    zoo_list(manifest(tmp_path, name=name), repr(name), "entry name", tmp_path=tmp_path)


# --------------------------------------------------------------------------- YAML and structure


def test_bad_yaml_is_one_line_with_its_position(tmp_path):
    path = tmp_path / "zoo.yaml"
    path.write_text("entries:\n  e: {config: [unclosed\n")
    res = zoo_list(path, "not valid YAML", "line 3", tmp_path=tmp_path)
    assert len(res.out.strip().splitlines()) == 1


def test_duplicate_entry_is_refused_with_its_line(tmp_path):
    text = yaml.safe_dump({"entries": {"e": ENTRY}}, sort_keys=False)
    path = tmp_path / "zoo.yaml"
    path.write_text(text + "  e:\n    config: again\n")
    line = len(text.splitlines()) + 1
    zoo_list(path, "'e' is defined twice", f"line {line}", "remove or rename", tmp_path=tmp_path)


@pytest.mark.parametrize("text, what", [
    ("", "a manifest is a mapping"),
    ("- a\n- b\n", "a manifest is a mapping"),
    ("entries: {}\n", "non-empty mapping"),
    ("entries:\n  e: 3\n", "must be a mapping of fields, got 3"),
    ("defaults: [1, 2]\nentries:\n  e: {}\n", "field 'defaults' must be a mapping"),
    ("entires:\n  e: {}\n", "unknown top-level key(s) entires"),
])
def test_malformed_structure(tmp_path, text, what):
    path = tmp_path / "zoo.yaml"
    path.write_text(text)
    zoo_list(path, what, tmp_path=tmp_path)


def test_missing_manifest_and_a_folder_given_as_manifest(tmp_path):
    zoo_list(tmp_path / "nope.yaml", "cannot read manifest", tmp_path=tmp_path)
    (tmp_path / "dir.yaml").mkdir()
    zoo_list(tmp_path / "dir.yaml", "is a folder", tmp_path=tmp_path)


# --------------------------------------------------------------------------- include


def including(tmp_path: Path, include) -> Path:
    path = tmp_path / "main.yaml"
    path.write_text(yaml.safe_dump({"include": include, "entries": {"e": {"config": "c"}}}))
    return path


def defaults_file(tmp_path: Path, name: str = "base.yaml", **extra) -> Path:
    entry = copy.deepcopy(ENTRY)
    entry.pop("config")
    (tmp_path / name).write_text(yaml.safe_dump({**extra, "defaults": entry}))
    return tmp_path / name


def test_include_works_when_valid(tmp_path):
    defaults_file(tmp_path)
    res = run_cli(["zoo", "list", "--zoo", including(tmp_path, "base.yaml")], expect_rc=0, watch=[tmp_path])
    assert "| e " in res.out


@pytest.mark.parametrize("include, what", [
    ("missing.yaml", "cannot read manifest"),
    (["base.yaml"], "field 'include' must be the path of another manifest"),
    (42, "field 'include' must be the path"),
    (None, "field 'include' must be the path"),
    ("", "field 'include' must be the path"),
    ("https://example.org/base.yaml", "not a URL"),
    ("sub", "is a folder"),
    ("main.yaml", "names this manifest itself"),
    ("nested.yaml", "has its own include"),
    ("broken.yaml", "not valid YAML"),
    ("nodefaults.yaml", "has no 'defaults:'"),
])
def test_include_problems_name_the_including_file(tmp_path, include, what):
    defaults_file(tmp_path)
    (tmp_path / "sub").mkdir()
    defaults_file(tmp_path, "nested.yaml", include="base.yaml")
    (tmp_path / "broken.yaml").write_text("defaults: {a: [\n")
    (tmp_path / "nodefaults.yaml").write_text("entries: {}\n")
    path = including(tmp_path, include)
    res = zoo_list(path, f"{path}:", what, tmp_path=tmp_path)
    assert res.out.index(str(path)) < res.out.index(what)  # the including file comes first


def test_impossible_value_inherited_from_an_include_names_the_entry_and_field(tmp_path):
    base = defaults_file(tmp_path)
    doc = yaml.safe_load(base.read_text())
    doc["defaults"]["data"]["clip_len"] = -1
    base.write_text(yaml.safe_dump(doc))
    zoo_list(including(tmp_path, "base.yaml"), "entry 'e'", "field 'data.clip_len'", "got -1", tmp_path=tmp_path)


# --------------------------------------------------------------------------- eval --zoo


@pytest.mark.parametrize("changes, must", [
    ({"data.clip_len": 0}, ["field 'data.clip_len'", "got 0"]),
    ({"test.crop_size": 64}, ["field 'test.crop_size'", "got 64"]),
    ({"arch.num_classes": 400}, ["field 'arch.num_classes'", "got 400"]),
])
def test_eval_refuses_an_impossible_entry_before_doing_anything(tmp_path, changes, must):
    path = manifest(tmp_path, changes)
    out = tmp_path / "out"
    run_cli(["eval", "e", "--zoo", path, "--out", out],
            must_name=[str(path), "entry 'e'", *must], watch=[tmp_path, REPO / "zoo", REPO / "results"],
            env={"I3DBENCH_CACHE": str(tmp_path / "cache")})
    assert not out.exists()


def test_eval_with_a_broken_include_names_both_files(tmp_path):
    path = including(tmp_path, "missing.yaml")
    run_cli(["eval", "e", "--zoo", path, "--out", tmp_path / "out"],
            must_name=[str(path), str(tmp_path / "missing.yaml")], watch=[tmp_path, REPO / "zoo"],
            env={"I3DBENCH_CACHE": str(tmp_path / "cache")})
