"""records.py: conditions, atomic writes, file names, loading, newest-per-key."""

from __future__ import annotations

import dataclasses
import json
import os
import re

import pytest
import torch

from i3dbench import records as R


def _cond(**kw):
    c = {f.name: None for f in dataclasses.fields(R.Conditions)}
    c.update(device="cpu", device_name="Test CPU", precision="fp32", memory_format="contiguous", compile=False,
             torch="2.13.0+cpu", time="2024-06-11T12:00:00.000001+00:00", host="h", python="3.11", num_threads=1,
             world_size=1)
    c.update(kw)
    return c


def test_collect_conditions_has_every_field():
    c = R.collect_conditions("cpu", batch=1, views=30, decoder="pyav", dataset_fingerprint="fp", checkpoint_sha256="ab")
    assert set(c) == {f.name for f in dataclasses.fields(R.Conditions)}
    assert c["torch"] == torch.__version__ and c["views"] == 30 and c["batch"] == 1
    assert c["decoder"] == "pyav" and c["decoder_version"]  # resolved through the decoder module
    assert c["device_name"] and c["host"] and c["time"].endswith("+00:00")
    assert c["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", c["git_commit"])
    assert c["git_commit"] is None or isinstance(c["git_dirty"], bool)


def test_write_is_atomic_named_and_never_overwrites(tmp_path):
    rec = R.make_record("smoke_x", "eval", {"top1": 50.0, "nan": float("nan")}, _cond(), {"protocol": "2x3-prob"})
    p1 = R.write_record(rec, tmp_path)
    p2 = R.write_record(rec, tmp_path)
    assert p1.name == "eval-smoke_x-cpu-fp32-pt2.13-20240611T120000000001Z.json"
    assert p2.name == "eval-smoke_x-cpu-fp32-pt2.13-20240611T120000000001Z-1.json"
    assert json.loads(p1.read_text())["metrics"]["nan"] is None  # JSON has no NaN
    assert sorted(os.listdir(tmp_path)) == sorted([p1.name, p2.name])  # no temp files left
    gpu = R.make_record("e", "bench", {}, _cond(device="cuda", device_name="NVIDIA H100 80GB HBM3",
                                              precision="bf16", memory_format="channels_last_3d", compile=True))
    assert R.record_filename(gpu).startswith("bench-e-nvidia-h100-80gb-hbm3-bf16-cl3d-compiled-pt2.13-")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(R.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        R.write_record(R.make_record("e", "eval", {}, _cond()), tmp_path)
    assert os.listdir(tmp_path) == []


def test_validation_names_the_field_and_file(tmp_path):
    with pytest.raises(R.RecordError, match="'kind'"):
        R.make_record("e", "speed", {}, _cond())
    with pytest.raises(R.RecordError, match="conditions.time"):
        R.make_record("e", "eval", {}, {"device": "cpu"})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(R.RecordError, match="bad.json"):
        R.load_records(tmp_path)


def test_load_sorted_and_newest_per_key(tmp_path):
    times = ["2024-01-03T00:00:00+00:00", "2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00"]
    for t, v in zip(times, (3.0, 1.0, 2.0)):
        R.write_record(R.make_record("e", "bench", {"video_per_s": v}, _cond(time=t), {"protocol": "fast"}), tmp_path)
    R.write_record(R.make_record("e", "bench", {"video_per_s": 9.0}, _cond(), {"protocol": "published"}), tmp_path)
    (tmp_path / "predictions").mkdir()  # sub-folders (predictions) are not records
    recs = R.load_records(tmp_path)
    assert [r["metrics"]["video_per_s"] for r in recs] == [1.0, 2.0, 3.0, 9.0]
    assert all(r["_file"].endswith(".json") for r in recs)
    newest = R.newest_records(recs)
    assert newest[("e", "bench", "Test CPU", "fast")]["metrics"]["video_per_s"] == 3.0
    assert newest[("e", "bench", "Test CPU", "published")]["metrics"]["video_per_s"] == 9.0
    assert R.load_records(tmp_path / "missing") == []
