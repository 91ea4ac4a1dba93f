"""records.py: conditions, provenance, atomic writes, file names, validation, loading, comparison keys."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat

import pytest
import torch

from i3dbench import records as R

METHOD = {"name": "eval", "protocol": "2x3-prob-sampler1.x"}


def _cond(**kw):
    c = {f.name: None for f in dataclasses.fields(R.Conditions)}
    c.update(device="cpu", device_class="cpu", device_name="Test CPU", precision="fp32", memory_format="contiguous",
             compile=False, torch="2.13.0+cpu", time="2024-06-11T12:00:00.000001+00:00", host="h", python="3.11",
             num_threads=1, world_size=1, code={"commit": None, "dirty": None, "source_sha256": "s"}, packages={})
    c.update(kw)
    return c


def test_collect_conditions_has_every_field_and_the_code_version():
    c = R.collect_conditions("cpu", batch=1, views=30, decoder="pyav", dataset_fingerprint="fp", checkpoint_sha256="ab")
    assert set(c) == {f.name for f in dataclasses.fields(R.Conditions)}
    assert c["torch"] == torch.__version__ and c["views"] == 30 and c["batch"] == 1 and c["device_class"] == "cpu"
    assert c["decoder"] == "pyav" and c["decoder_version"]  # resolved through the decoder module
    assert c["device_name"] and c["host"] and c["time"].endswith("+00:00")
    code = c["code"]
    assert re.fullmatch(r"[0-9a-f]{64}", code["source_sha256"])
    assert code["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", code["commit"])
    assert code["commit"] is None or isinstance(code["dirty"], bool)
    assert c["packages"]["numpy"] and c["packages"]["decord"]
    assert R.collect_conditions("cpu", time="2024-01-01T00:00:00+00:00")["time"] == "2024-01-01T00:00:00+00:00"


def test_source_hash_changes_with_any_package_source(tmp_path, monkeypatch):
    from i3dbench import provenance

    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    monkeypatch.setattr(provenance, "PACKAGE_DIR", pkg)
    provenance.source_sha256.cache_clear()
    try:
        first = provenance.source_sha256()
        provenance.source_sha256.cache_clear()
        (pkg / "sub" / "b.py").write_text("y = 3\n")  # a planted edit
        assert provenance.source_sha256() != first
    finally:
        provenance.source_sha256.cache_clear()


def test_write_is_atomic_named_never_overwrites_and_follows_the_umask(tmp_path):
    rec = R.make_record("smoke_x", "eval", {"top1": 50.0, "nan": float("nan")}, _cond(), METHOD)
    old = os.umask(0o027)
    try:
        p1 = R.write_record(rec, tmp_path)
    finally:
        os.umask(old)
    p2 = R.write_record(rec, tmp_path)
    assert p1.name == "eval-smoke_x-cpu-fp32-pt2.13-20240611T120000000001Z.json"
    assert p2.name == "eval-smoke_x-cpu-fp32-pt2.13-20240611T120000000001Z-1.json"
    assert stat.S_IMODE(p1.stat().st_mode) == 0o640  # not mkstemp's 0600
    assert json.loads(p1.read_text())["metrics"]["nan"] is None  # JSON has no NaN
    assert sorted(os.listdir(tmp_path)) == sorted([p1.name, p2.name])  # no temp files left
    gpu = R.make_record("e", "bench", {}, _cond(device="cuda", device_name="NVIDIA H100 80GB HBM3",
                                              precision="bf16", memory_format="channels_last_3d", compile=True),
                        {"name": "timed_loop", "protocol": "fast"})
    assert R.record_filename(gpu).startswith("bench-e-nvidia-h100-80gb-hbm3-bf16-cl3d-compiled-pt2.13-")


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    from i3dbench import fileio

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        R.write_record(R.make_record("e", "eval", {}, _cond(), METHOD), tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("broken, field", [
    (lambda r: r.update(kind="speed"), "'kind'"),
    (lambda r: r["conditions"].pop("time"), "conditions.time"),
    (lambda r: r["conditions"].update(time="yesterday"), "not an ISO 8601 time"),
    (lambda r: r["conditions"].update(time="2024-06-11T12:00:00"), "no time zone"),
    (lambda r: r["method"].pop("protocol"), "method.protocol"),
    (lambda r: r["obtained"].update(how="replayed"), "obtained.how"),
    (lambda r: r.pop("measurement"), "'measurement'"),
    (lambda r: r.update(schema=1), "schema"),
])
def test_validation_names_the_field(broken, field):
    rec = R.make_record("e", "eval", {}, _cond(), METHOD)
    broken(rec)
    with pytest.raises(R.RecordError, match=field):
        R.validate_record(rec)


def test_loading_names_a_bad_file_and_a_missing_folder(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(R.RecordError, match="bad.json"):
        R.load_records(tmp_path)
    with pytest.raises(R.RecordError, match="no such records folder"):
        R.load_records(tmp_path / "missing")


def test_load_sorted_by_parsed_time_and_from_a_run_folder(tmp_path):
    # Sorting by the free-form string would put "+02:00" wrongly: the parsed time decides.
    times = ["2024-01-03T00:00:00+00:00", "2024-01-02T23:30:00-01:00", "2024-01-02T00:00:00+00:00"]
    for t, v in zip(times, (3.0, 2.5, 2.0)):
        R.write_record(R.make_record("e", "bench", {"video_per_s": v}, _cond(time=t),
                                     {"name": "timed_loop", "protocol": "fast"}), tmp_path / "records")
    (tmp_path / "records" / "predictions").mkdir()  # sub-folders are not records
    recs = R.load_records(tmp_path)  # a run folder: its records/ are read
    assert [r["metrics"]["video_per_s"] for r in recs] == [2.0, 3.0, 2.5]
    assert all(r["_file"].endswith(".json") for r in recs)


def test_comparison_key_separates_protocols_precisions_memory_kinds_and_methods():
    base = R.make_record("e", "bench", {}, _cond(inference_memory_kind="cpu_tensor_peak"),
                         {"name": "timed_loop", "protocol": "fast"})
    key = R.comparison_key(base)
    for change in ({"method": {"name": "timed_loop", "protocol": "published"}},
                   {"method": {"name": "other_loop", "protocol": "fast"}},
                   {"conditions": _cond(precision="bf16", inference_memory_kind="cpu_tensor_peak")},
                   {"conditions": _cond(inference_memory_kind="cuda_max_memory_allocated")},
                   {"conditions": _cond(device_name="Other CPU", inference_memory_kind="cpu_tensor_peak")},
                   {"conditions": _cond(num_threads=2, inference_memory_kind="cpu_tensor_peak")}):
        other = dict(base, **change)
        assert R.comparison_key(other) != key, change
