"""report.py: which record each table shows, tables that cannot mislead, atomic and reproducible rendering.

The fixture zoo is built here (real entries with the fields the tables show overridden), so the
golden tables do not move when the shipped manifest is edited. The golden files are our own
rendering, checked by eye once; refresh them after an intended change with
``I3DBENCH_UPDATE_GOLDEN=1 pytest tests/test_report.py``.
"""

from __future__ import annotations

import ast
import csv
import dataclasses
import errno
import os
from pathlib import Path

import pytest

from i3dbench import fileio, figures
from i3dbench import report as R
from i3dbench.errors import UserError
from i3dbench.records import Conditions, make_record, write_record
from i3dbench.zoo import get_entry

GOLDEN = Path(__file__).parent / "golden" / "report"
K400 = "i3d_r50_32x2x1_100e_kinetics400_rgb"
SMOKE = "smoke_i3d_tiny_video"
GPU = "NVIDIA H100 80GB HBM3"
PNG_HEAD, PNG_TAIL = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"

# --------------------------------------------------------------------------- records and zoo


def _cond(**kw):
    """Conditions of a test record (every Conditions field; ``kw`` overrides)."""
    c = {f.name: None for f in dataclasses.fields(Conditions)}
    c.update(device="cpu", device_class="cpu", device_name="Test CPU", precision="fp32", memory_format="contiguous",
             compile=False, batch=1, views=30, torch="2.13.0+cpu", decoder="decord", decoder_version="0.6.0",
             code={"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False,
                   "source_sha256": "5" * 64},
             packages={}, dataset_fingerprint="f" * 64, time="2024-06-11T12:00:00+00:00", host="host",
             python="3.11.7", num_threads=2, world_size=1)
    if str(kw.get("device", "")).startswith("cuda"):
        c.update(device_class="gpu", cuda="12.4", cudnn=90100)
    c.update(kw)
    return c


def _eval(name, top1, ci1, top5, ci5, time, protocol=None, num_videos=1000, num_listed=None, zoo=None, **cond):
    """An eval record; ``protocol`` defaults to the entry's own (from ``zoo`` or the shipped zoos)."""
    entry = (zoo or {}).get(name) or get_entry(name)
    listed = num_videos if num_listed is None else num_listed
    m = {"top1": top1, "top1_interval": ci1, "top5": top5, "top5_interval": ci5, "mean_class_accuracy": top1 - 1,
         "num_videos": num_videos, "num_listed": listed, "num_failed": listed - num_videos}
    method = {"name": "eval", "protocol": protocol or R.eval_protocol(entry), "interval": "exact (Clopper-Pearson) 95%"}
    extra = {"complete": num_videos == listed}
    return make_record(name, "eval", m, _cond(time=time, checkpoint_sha256="c25ef9a4" + "0" * 56, **cond), method,
                       extra=extra)


def _bench(name, time, vps=None, protocol="published", inf=None, train=None, shared=None, skipped=None, **cond):
    gpu = str(cond.get("device", "")).startswith("cuda")
    kind = "cuda_max_memory_allocated" if gpu else "cpu_tensor_peak"
    metrics, c = {}, _cond(time=time, **cond)
    if vps is not None:
        metrics.update(video_per_s=vps, latency_median_ms=1000 / vps, spread=0.031, n_timed=20)
    if inf is not None:
        metrics["inference_memory_mb"], c["inference_memory_kind"] = inf, kind
    if train is not None:
        metrics["train_memory_mb"], c["train_memory_kind"] = train, kind
    method = {"name": "timed_loop", "protocol": protocol, "weights": "random",
              "iteration": "30 views = 1 video(s); 30 views per forward", "views_per_video": 30}
    if train is not None:
        method["train_memory"] = "1 fp32 SGD step(s) at batch 8 of 3x32x224x224"
    extra = {"skipped": skipped or [], "times_s": [1 / vps] * 20 if vps else []}
    return make_record(name, "bench", metrics, c, method, measurement=shared, extra=extra)


def fixture_zoo() -> dict:
    """Four entries: a 0.x row with published GPU figures, a 0.x row sharing its architecture,
    a 1.x row, and a smoke entry without published numbers."""
    base = get_entry(K400)
    smoke = get_entry(SMOKE)

    def entry(src, name, mmaction, sampler, **pub):
        pub = {"speed_protocol": "320x3 frames" if pub.get("video_per_s") else None, "gpus": "8",
               "source": f"fixture row {name}", **pub}
        return dataclasses.replace(
            src, name=name, mmaction=mmaction,
            published=dataclasses.replace(src.published, **pub),
            test=dataclasses.replace(src.test, sampler_version=sampler),
            tolerance=dataclasses.replace(src.tolerance, top1=0.5, top5=0.5))

    return {
        "i3d_a": entry(base, "i3d_a", "0.x", "0.x", top1=72.68, top5=90.78, video_per_s=1.7, gpu_mem_mb=5170,
                       gflops=43.56, params_m=28.04),
        "i3d_a_256p": entry(base, "i3d_a_256p", "0.x", "0.x", top1=73.27, top5=90.92, video_per_s=None,
                            gpu_mem_mb=5170, gflops=43.56, params_m=28.04),
        "i3d_b_1x": entry(base, "i3d_b_1x", "1.x", "1.x", top1=74.73, top5=91.80, video_per_s=None, gpu_mem_mb=None,
                          gflops=59.3, params_m=35.4),
        "smoke_t": entry(smoke, "smoke_t", "smoke", "1.x", top1=None, top5=None, video_per_s=None, gpu_mem_mb=None,
                         gflops=None, params_m=None),
    }


def _shared(id_, members, group="r50w64-plain"):
    return {"id": id_, "shared_by": members, "measured_entry": members[0], "group": group,
            "why": "speed and memory depend on architecture and input shapes only"}


def fixture_records(zoo) -> dict[str, dict]:
    """Competing records: protocols, completeness, kinds, devices, a shared measurement and a superseded one."""
    t = "2024-06-1{}T{:02d}:00:00+00:00".format
    pair = ["i3d_a", "i3d_a_256p"]
    recs = {
        "a_own": _eval("i3d_a", 72.5, [71.9, 73.1], 90.6, [90.2, 91.0], t(0, 0), zoo=zoo),
        "a_other_protocol": _eval("i3d_a", 73.9, [73.3, 74.5], 91.2, [90.8, 91.6], t(2, 0),
                                  protocol="10x3-score-sampler0.x", zoo=zoo),
        "a_incomplete": _eval("i3d_a", 60.0, [59.0, 61.0], 80.0, [79.0, 81.0], t(3, 0), num_videos=900,
                              num_listed=1000, zoo=zoo),
        "b_old": _eval("i3d_b_1x", 70.0, [69.1, 70.9], 89.0, [88.4, 89.6], t(0, 1), zoo=zoo),
        "b_old_incomplete": _eval("i3d_b_1x", 50.0, [49.0, 51.0], 70.0, [69.0, 71.0], t(0, 0), num_videos=10,
                                  num_listed=1000, zoo=zoo),
        "b_new": _eval("i3d_b_1x", 74.6, [74.0, 75.2], 91.7, [91.3, 92.1], t(1, 1), zoo=zoo),
        "smoke": _eval("smoke_t", 89.0625, [78.75427740445974, 95.48789798128853], 100.0,
                       [94.39909106133638, 100.0], t(1, 2), num_videos=64, zoo=zoo, views=6),
        "gpu_published": _bench("i3d_a", t(1, 3), vps=2.9, inf=2400, train=5012, device="cuda", device_name=GPU),
        "gpu_fast": _bench("i3d_a", t(1, 4), vps=12.0, protocol="fast", device="cuda", device_name=GPU,
                           precision="bf16", memory_format="channels_last_3d", compile=True),
        "cpu_published": _bench("i3d_a", t(1, 5), vps=0.0199, inf=3100.0, train=4822.0),
        "shared_old_a": _bench("i3d_a", t(0, 6), vps=0.0400, protocol="fast", shared=_shared("old", pair),
                               precision="bf16", memory_format="channels_last_3d", num_threads=1),
        "shared_old_b": _bench("i3d_a_256p", t(0, 6), vps=0.0400, protocol="fast", shared=_shared("old", pair),
                               precision="bf16", memory_format="channels_last_3d", num_threads=1),
        "shared_a": _bench("i3d_a", t(1, 6), vps=0.0526, protocol="fast", train=4570.0, shared=_shared("new", pair),
                           precision="bf16", memory_format="channels_last_3d", num_threads=1),
        "shared_b": _bench("i3d_a_256p", t(1, 6), vps=0.0526, protocol="fast", train=4570.0,
                           shared=_shared("new", pair), precision="bf16", memory_format="channels_last_3d",
                           num_threads=1),
        "b_skipped": _bench("i3d_b_1x", t(1, 7), protocol="memory-only", shared=_shared("nl", ["i3d_b_1x"], "nl"),
                            skipped=["throughput: 3 s of the 150 s budget left, ~452 s needed"]),
        "train": make_record("smoke_t", "train", {"top1": 90.625, "top5": 100.0, "best_top1": 92.1875, "epochs": 12,
                                                  "wall_time_s": 301.4, "peak_memory_mb": 410.0},
                             _cond(time=t(0, 8), batch=8, views=None, train_memory_kind="cpu_tensor_peak"),
                             {"name": "train", "protocol": "recipe"}),
        "outsider": _eval(K400, 72.0, [71.0, 73.0], 90.0, [89.0, 91.0], t(1, 9)),
    }
    return recs


def write_fixture(root: Path, zoo) -> dict[str, str]:
    """Write the fixture records under ``root``; returns label -> file name."""
    return {label: write_record(rec, root).name for label, rec in fixture_records(zoo).items()}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One rendered report of the fixture records; the figures' texts are captured on the way."""
    root = tmp_path_factory.mktemp("report")
    zoo = fixture_zoo()
    files = write_fixture(root / "records", zoo)
    texts: dict[str, list[str]] = {}
    original = figures.png_bytes
    mp = pytest.MonkeyPatch()

    def capture(fig):
        import matplotlib.text

        texts[len(texts)] = [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]
        return original(fig)

    mp.setattr(figures, "png_bytes", capture)
    try:
        res = R.render_report(root / "records", root / "out", zoo=zoo)
    finally:
        mp.undo()
    return root, res, files, zoo, texts


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- formatting and golden tables


def test_formatting():
    assert R.fmt_interval(89.0625, [78.75427740445974, 95.48789798128853]) == "89.06 [78.75, 95.49]"
    assert R.fmt_interval(100.0, [94.39909106133638, 100.0]) == "100.00 [94.40, 100.00]"
    assert R.fmt_interval(None, None) == "—" and R.fmt_interval(3.0, None) == "3.00"
    assert R.fmt_delta(-0.18) == "-0.18" and R.fmt_delta(0.4) == "+0.40"
    assert R.fmt_speed(0.021345) == "0.0213" and R.fmt_speed(1.7) == "1.7" and R.fmt_speed(412.54) == "412.5"


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("I3DBENCH_UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from the golden file (refresh: I3DBENCH_UPDATE_GOLDEN=1)"


def test_tables_match_golden(rendered):
    _, res, _, _, _ = rendered
    t = res.tables
    _golden("zoo_table.md", R.zoo_table_markdown(t, "results/report/README.md") + "\n")
    _golden("other_evals.md", R.other_evals_markdown(t) + "\n")
    _golden("speed.md", R.speed_markdown(t) + "\n\n" + R.skipped_markdown(t) + "\n")
    _golden("memory.md", "\n\n".join(f"{k}\n{R.memory_markdown(t, k)}" for k in t.memory_kinds) + "\n")
    _golden("published.md", R.published_markdown(t) + "\n")


def test_no_plus_minus_and_every_row_names_its_record(rendered):
    root, res, files, _, _ = rendered
    readme = (root / "out" / "README.md").read_text()
    assert "±" not in readme and "89.06 [78.75, 95.49]" in readme
    for name in ("accuracy.csv", "speed.csv", "memory.csv", "skipped.csv", "training_runs.csv"):
        rows = _csv(root / "out" / name)
        measured = [r for r in rows if any(r.get(k) for k in ("top1", "video_per_s", "train_mib_cpu_tensor_peak",
                                                              "inference_mib_cpu_tensor_peak", "skipped", "epochs"))]
        assert measured and all(r["record"] in files.values() for r in measured), name
    used = {r["file"] for r in _csv(root / "out" / "records.csv")}
    assert used == {f for r in res.tables.used for f in [r["_file"]]}
    assert files["outsider"] not in used and files["outsider"] in readme  # named as not shown


# --------------------------------------------------------------------------- selection


def test_accuracy_uses_newest_complete_eval_under_the_entrys_protocol(rendered):
    root, _, files, zoo, _ = rendered
    acc = _csv(root / "out" / "accuracy.csv")
    zoo_rows = {r["entry"]: r for r in acc if r["selection"] == "zoo"}
    assert list(zoo_rows) == list(zoo)  # one row per zoo entry, manifest order
    a = zoo_rows["i3d_a"]
    # The older eval under the entry's protocol, not the newer one under another protocol,
    # nor the newest, incomplete one.
    assert a["record"] == files["a_own"] and a["protocol"] == "10x3-prob-sampler0.x"
    assert float(a["top1"]) == 72.5 and float(a["delta_top1"]) == pytest.approx(-0.18)
    assert a["within_tolerance"] == "true"
    assert zoo_rows["i3d_b_1x"]["record"] == files["b_new"]  # newest of two complete ones
    assert zoo_rows["i3d_a_256p"]["record"] == ""  # never evaluated
    others = {r["record"]: r for r in acc if r["selection"] == "other"}
    # b_old and b_old_incomplete are older than b_new under the same protocol, device and precision: superseded.
    assert set(others) == {files["a_other_protocol"], files["a_incomplete"]}
    assert others[files["a_other_protocol"]]["status"].startswith("other protocol")
    assert others[files["a_incomplete"]]["status"] == "INCOMPLETE: 900 of 1000 videos evaluated, 100 failed"


def test_speed_rows_split_by_device_protocol_precision_and_gpu_only_ratio(rendered):
    root, _, files, _, _ = rendered
    speed = {r["record"]: r for r in _csv(root / "out" / "speed.csv")}
    assert set(speed) == {files[k] for k in ("gpu_published", "gpu_fast", "cpu_published", "shared_a")}
    gpu = speed[files["gpu_published"]]
    assert float(gpu["vs_published"]) == pytest.approx(2.9 / 1.7) and gpu["published_gpu_video_per_s"] == "1.7"
    # A CPU row or a GPU row under another protocol never gets a ratio to the published GPU figure.
    for label in ("gpu_fast", "cpu_published", "shared_a"):
        assert speed[files[label]]["vs_published"] == "" and speed[files[label]]["published_gpu_video_per_s"] == ""
    cpu = speed[files["cpu_published"]]
    assert (cpu["device"], cpu["protocol"], cpu["settings"]) == ("CPU: Test CPU", "published", "fp32 · 2 threads")
    fast = speed[files["shared_a"]]
    assert fast["settings"] == "bf16 · channels_last_3d · 1 thread"
    md = R.speed_markdown(R.build_tables(fixture_zoo(), []))
    assert md == "_no speed measurements_"


def test_shared_measurement_is_one_row_naming_every_entry(rendered):
    root, res, files, _, _ = rendered
    rows = [r for r in _csv(root / "out" / "speed.csv") if r["shared"] == "true"]
    assert len(rows) == 1  # two records, one measurement; the older shared measurement is superseded
    (row,) = rows
    assert row["model"] == "measured as i3d_a; shared by 2 entries: i3d_a, i3d_a_256p"
    assert row["entries"] == "i3d_a;i3d_a_256p"
    assert row["records"].split(";") == sorted([files["shared_a"], files["shared_b"]])
    used = {r["_file"] for r in res.tables.used}
    assert files["shared_b"] in used and files["shared_old_a"] not in used and files["shared_old_b"] not in used


def test_memory_kinds_never_share_a_column(rendered):
    root, res, _, _, _ = rendered
    kinds = {"cuda_max_memory_allocated": "gpu", "cpu_tensor_peak": "cpu"}
    for r in _csv(root / "out" / "memory.csv"):
        for kind, dev in kinds.items():
            for what in ("inference", "train"):
                if r[f"{what}_mib_{kind}"]:
                    assert r["device_class"] == dev, (r["record"], kind)
        if r["published_gpu_mem_mb"]:
            assert r["device_class"] == "gpu" and r["train_mib_cuda_max_memory_allocated"]
    t = res.tables
    assert t.memory_kinds == ["cuda_max_memory_allocated", "cpu_tensor_peak"]
    gpu_md, cpu_md = (R.memory_markdown(t, k) for k in t.memory_kinds)
    assert "Test CPU" not in gpu_md and GPU not in cpu_md
    assert "÷ published" in gpu_md and "×0.97" in gpu_md  # 5012 / 5170, GPU training memory
    assert "published" not in cpu_md.splitlines()[0]  # no published GPU memory beside CPU tensor peaks
    readme = (root / "out" / "README.md").read_text()
    assert readme.index("### GPU: torch.cuda.max_memory_allocated") < readme.index("### CPU: tensor peak")


def test_skipped_measurements_are_said(rendered):
    _, res, files, _, _ = rendered
    (row,) = res.tables.skipped
    assert row["record"] == files["b_skipped"] and "budget" in row["skipped"]


def test_figures_name_models_devices_precisions_dates_and_published(rendered):
    root, _, _, _, texts = rendered
    acc, acc_tp, tp = (" | ".join(texts[i]) for i in range(3))
    assert {"published", "measured (exact 95% interval)"} <= set(texts[0])  # the legend: both kinds of marker
    assert "i3d_a" in acc and "CPU: Test CPU" in acc and "fp32" in acc and "2024-06-10 to 2024-06-11" in acc
    assert "published top-1 (no eval)" in acc_tp and "measured top-1" in acc_tp  # i3d_a_256p: speed, no eval
    assert "GPU: NVIDIA H100 80GB HBM3 · fast · bf16 · channels_last_3d · compiled" in acc_tp
    assert "published, GPU (30 views, batch 1)" in tp and "bf16" in tp and "2024-06-11" in tp
    for name in ("accuracy_vs_published.png", "accuracy_vs_throughput.png", "throughput.png"):
        data = (root / "out" / name).read_bytes()
        assert data.startswith(PNG_HEAD) and data.endswith(PNG_TAIL)


# --------------------------------------------------------------------------- files: reproducible and atomic


def test_rerender_is_byte_identical(rendered, tmp_path):
    root, res, _, zoo, _ = rendered
    before = {p.name: p.read_bytes() for p in (root / "out").iterdir()}
    assert sorted(before) == sorted(p.name for p in res.files)
    R.render_report(root / "records", root / "out", zoo=zoo)
    assert {p.name: p.read_bytes() for p in (root / "out").iterdir()} == before
    assert not [p for p in root.iterdir() if p.name.startswith(".out.")]  # no temp or old folder left


def test_full_disk_leaves_the_old_report_intact(rendered, monkeypatch):
    """ENOSPC half-way through a PNG (written in place, the worst case) must not reach out/."""
    root, _, _, zoo, _ = rendered
    before = {p.name: p.read_bytes() for p in (root / "out").iterdir()}
    real = figures.atomic_write

    def full_disk(path, content):
        if str(path).endswith(".png"):
            Path(path).write_bytes(content[: len(content) // 2])
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, content)

    monkeypatch.setattr(figures, "atomic_write", full_disk)  # the PNG writer
    with pytest.raises(OSError) as err:
        R.render_report(root / "records", root / "out", zoo=zoo)
    assert err.value.errno == errno.ENOSPC
    assert {p.name: p.read_bytes() for p in (root / "out").iterdir()} == before
    assert sorted(p.name for p in root.iterdir()) == ["out", "records"]  # no temp folder left
    for png in root.rglob("*.png"):
        assert png.read_bytes().endswith(PNG_TAIL), png


def test_replace_dir_failed_swap_restores_old_and_cleans_leftovers(tmp_path, monkeypatch):
    dest = tmp_path / "report"
    fileio.replace_dir(dest, lambda d: (d / "a.txt").write_text("old"))
    dead = tmp_path / ".report.tmp-999999999-abc"  # an interrupted swap of a process that is gone
    alive = tmp_path / f".report.old-{os.getppid()}-xyz"  # another process swapping right now
    dead.mkdir(), alive.mkdir()
    real = os.rename

    def fail_second(src, dst):
        if ".tmp-" in str(src) and Path(dst) == dest:
            raise OSError(errno.EIO, "I/O error")
        return real(src, dst)

    monkeypatch.setattr(fileio.os, "rename", fail_second)
    with pytest.raises(OSError):
        fileio.replace_dir(dest, lambda d: (d / "b.txt").write_text("new"))
    monkeypatch.undo()
    assert [p.name for p in dest.iterdir()] == ["a.txt"] and (dest / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["report", alive.name])


def test_modes_follow_the_umask_and_an_existing_folder_keeps_its_mode(tmp_path):
    old = os.umask(0o027)
    try:
        dest = fileio.replace_dir(tmp_path / "r", lambda d: fileio.atomic_write(d / "x.csv", "1\n"))
        assert (dest.stat().st_mode & 0o777, (dest / "x.csv").stat().st_mode & 0o777) == (0o750, 0o640)
        dest.chmod(0o711)
        fileio.replace_dir(dest, lambda d: fileio.atomic_write(d / "x.csv", "2\n"))
        assert dest.stat().st_mode & 0o777 == 0o711
    finally:
        os.umask(old)


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match=r"notes\.txt"):
        R.render_report(None, out)
    (tmp_path / "run" / "records").mkdir(parents=True)
    with pytest.raises(UserError, match="holds the records"):
        R.render_report(tmp_path / "run" / "records", tmp_path / "run")
    assert (out / "notes.txt").read_text() == "keep me"


def test_training_logs_section(tmp_path):
    import json

    def log(path, top1s, mem):
        lines = [{"env_info": "x"}]
        for e, t in enumerate(top1s, 1):
            lines.append({"mode": "train", "epoch": e, "iter": 20, "loss": 2.0 / e, "memory": mem})
            lines.append({"mode": "val", "epoch": e, "iter": 5, "top1_acc": t, "top5_acc": min(1.0, t + 0.2)})
        path.write_text("".join(json.dumps(d) + "\n" for d in lines))

    log(tmp_path / "ours.log.json", [0.3, 0.6, 0.7], 900)
    log(tmp_path / "pub.log.json", [0.35, 0.65, 0.72], 5170)
    res = R.render_report(None, tmp_path / "out", zoo=fixture_zoo(), training_log=tmp_path / "ours.log.json",
                          published_log=tmp_path / "pub.log.json")
    tr = {r["log"]: r for r in _csv(tmp_path / "out" / "training.csv")}
    assert float(tr["ours"]["final_top1"]) == pytest.approx(70.0) and tr["published"]["peak_memory_mb"] == "5170"
    assert tr["ours"]["log_file"] == "ours.log.json"
    assert (tmp_path / "out" / "training_curves.png").exists()
    assert "## Training: ours vs published log" in (tmp_path / "out" / "README.md").read_text()
    assert not (tmp_path / "out" / "accuracy_vs_published.png").exists() and res.tables.used == []
    (tmp_path / "bad.log.json").write_text("{not json\n")
    with pytest.raises(UserError, match=r"bad\.log\.json: line 1"):
        R.render_report(None, tmp_path / "out", zoo=fixture_zoo(), training_log=tmp_path / "bad.log.json")


# --------------------------------------------------------------------------- boundaries


def test_report_never_imports_the_code_that_made_the_records():
    tree = ast.parse(Path(R.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    banned = {"evaluate", "measure", "timing", "train", "memory", "fastpath", "models", "torch"}
    assert not {m for m in imported if m.split(".")[-1] in banned or m.split(".")[0] in banned}


def test_readme_block_is_replaced(tmp_path, rendered):
    _, res, _, _, _ = rendered
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- ZOO-TABLE:START (generated) -->\nold\n<!-- ZOO-TABLE:END -->\nafter\n")
    assert R.update_readme_block(readme, R.zoo_table_markdown(res.tables, "results/report/README.md"))
    text = readme.read_text()
    assert "old" not in text and text.startswith("intro\n<!-- ZOO-TABLE:START (generated) -->\n| entry")
    assert text.endswith("<!-- ZOO-TABLE:END -->\nafter\n") and "[full report](results/report/README.md)" in text
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert not R.update_readme_block(plain, "x")


def test_zoo_list_shows_params_flops_and_their_convention():
    from cli_harness import run_cli

    res = run_cli(["zoo", "list"], expect_rc=0, must_name=["params M", "GFLOPs", "FLOPs counter",
                                                           "GPU video/s (published protocol)"])
    row = next(line for line in res.out.splitlines() if line.startswith(f"| {K400} "))
    assert "28.04" in row and "43.56" in row and "mmcv hooks, no matmuls" in row
    assert "mmengine, with matmuls" in res.out
