"""data/k400copy.py and its use by `eval`, `run` and `run --plan`: one YAML describes the user's
Kinetics-400 copy (every layout the zoo reads), each entry reads its own layout from it, the two
variables stay a shortcut for one layout, and a mis-described layout is refused by the evaluation's
layout probe. The copy is built here in three layouts from the synthetic set's real clips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cli_harness import run_cli
from i3dbench.data.k400copy import find_copy, load_copy
from i3dbench.errors import UserError
from i3dbench.zoo import get_entry

RAW_340 = "i3d_r50_32x2x1_100e_kinetics400_rgb"  # rawframes 340x256
RAW_256 = "i3d_r50_32x2x1_100e_kinetics400_rgb_256p"  # rawframes short256
VID_256 = "i3d_r50_video_32x2x1_100e_kinetics400_rgb"  # videos short256


@pytest.fixture(scope="module")
def k400(tmp_path_factory):
    """Three layouts (videos short-256, rawframes 340x256, rawframes short-256) and a YAML naming them."""
    from i3dbench.data.synthetic import CLASSES, generate_synthetic, synthetic_paths

    root = tmp_path_factory.mktemp("k400")
    generate_synthetic(root, videos_per_class=1, val_videos_per_class=1, num_frames=20,
                       sizes=("340x256", "short256"), formats=("videos", "rawframes"), classes=CLASSES[:3], workers=1,
                       progress=False)
    paths = {key: synthetic_paths(root, fmt, res, "val") for key, fmt, res in [
        ("videos_short256", "videos", "short256"), ("rawframes_340x256", "rawframes", "340x256"),
        ("rawframes_short256", "rawframes", "short256")]}
    # relative to the YAML's folder
    text = "".join(f"{k}: {{root: {os.path.relpath(r, root)}, list: {os.path.relpath(a, root)}}}\n"
                   for k, (r, a) in paths.items())
    (root / "copy.yaml").write_text("# my copy\n" + text)
    return root, paths


def test_each_entry_gets_its_own_layout(k400):
    root, paths = k400
    copy = load_copy(root / "copy.yaml")
    for name, key in [(RAW_340, "rawframes_340x256"), (RAW_256, "rawframes_short256"), (VID_256, "videos_short256")]:
        assert copy.for_entry(get_entry(name)) == tuple(Path(p).resolve() for p in paths[key]), name
    partial = root / "partial.yaml"
    partial.write_text(f"videos_short256: {{root: {paths['videos_short256'][0]}, list: {paths['videos_short256'][1]}}}\n")
    c = load_copy(partial)
    assert c.for_entry(get_entry(RAW_340)) is None
    assert "has no rawframes 340x256 layout" in c.why_not(get_entry(RAW_340)) and "rawframes_340x256:" in \
        c.why_not(get_entry(RAW_340))


@pytest.mark.parametrize("text, words", [
    ("videos_256: {root: a, list: b}\n", ["unknown field 'videos_256'", "videos_short256"]),
    ("videos_short256: {root: nowhere, list: b}\n", ["videos_short256.root", "not a folder"]),
    ("videos_short256: /data\n", ["videos_short256", "{root: FOLDER, list: FILE}"]),
    ("[1, 2]\n", ["expected a mapping of layouts"]),
    ("reference_ids: missing.txt\n", ["reference_ids", "not a file"]),
])
def test_a_bad_description_names_the_file_and_field(k400, tmp_path, text, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(UserError) as err:
        load_copy(bad)
    assert str(bad) in str(err.value) and all(w in str(err.value) for w in words), str(err.value)


def test_a_list_of_the_other_format_is_refused(k400, tmp_path):
    _, paths = k400
    bad = tmp_path / "swapped.yaml"
    bad.write_text(f"videos_short256: {{root: {paths['videos_short256'][0]}, list: {paths['rawframes_340x256'][1]}}}\n")
    with pytest.raises(UserError, match="videos_short256.list.*is a rawframes list"):
        load_copy(bad)


def test_data_option_then_the_yaml_variable_then_the_two_variables(k400, monkeypatch):
    root, paths = k400
    for k in ("I3DBENCH_K400", "I3DBENCH_K400_ROOT", "I3DBENCH_K400_ANN"):
        monkeypatch.delenv(k, raising=False)
    assert find_copy() is None
    monkeypatch.setenv("I3DBENCH_K400_ROOT", str(paths["rawframes_340x256"][0]))
    monkeypatch.setenv("I3DBENCH_K400_ANN", str(paths["rawframes_340x256"][1]))
    short = find_copy()  # one layout of unknown size: every rawframes row, no video row
    assert short.for_entry(get_entry(RAW_256)) == paths["rawframes_340x256"] and short.for_entry(get_entry(VID_256)) is None
    monkeypatch.setenv("I3DBENCH_K400", str(root / "copy.yaml"))
    assert find_copy().source == str(root / "copy.yaml")
    other = root / "other.yaml"
    other.write_text(f"videos_short256: {{root: {paths['videos_short256'][0]}, list: {paths['videos_short256'][1]}}}\n")
    assert find_copy(other).source == str(other)


def _eval(name, *more, rc=2, must=(), env=None):
    return run_cli(["eval", name, "--quiet", "--workers", "0", *more], expect_rc=rc, must_name=must, env=env)


def test_eval_picks_the_layout_from_the_description(k400, tmp_path, monkeypatch):
    root, paths = k400
    monkeypatch.delenv("I3DBENCH_K400_ROOT", raising=False)
    monkeypatch.delenv("I3DBENCH_K400_ANN", raising=False)
    bad_ckpt = tmp_path / "not-a-checkpoint.pth"
    bad_ckpt.write_bytes(b"x" * 100)
    # Past the data selection and the layout probe, the evaluation stops at the (deliberately bad)
    # checkpoint: each entry found frames of its own layout in the one description.
    for name in (RAW_340, RAW_256, VID_256):
        r = _eval(name, "--data", str(root / "copy.yaml"), "--checkpoint", str(bad_ckpt), "--out", str(tmp_path / name),
                  must=[str(bad_ckpt)])
        assert "cannot read checkpoint" in r.out and "--allow-layout-mismatch" not in r.out, r.out
    # the same through I3DBENCH_K400
    _eval(RAW_340, "--checkpoint", str(bad_ckpt), "--out", str(tmp_path / "env"), must=[str(bad_ckpt)],
          env={"I3DBENCH_K400": str(root / "copy.yaml")})


def test_a_340x256_row_described_on_short256_frames_is_refused(k400, tmp_path, monkeypatch):
    _, paths = k400
    wrong = tmp_path / "wrong.yaml"
    r, a = paths["rawframes_short256"]
    wrong.write_text(f"rawframes_340x256: {{root: {r}, list: {a}}}\n")
    _eval(RAW_340, "--data", str(wrong), "--out", str(tmp_path / "w"),
          must=[RAW_340, "has 455x256 frames", "--allow-layout-mismatch"])
    # a layout the description lacks is named with the line to add
    _eval(VID_256, "--data", str(wrong), "--out", str(tmp_path / "v"),
          must=[str(wrong), "no videos short256 layout", "videos_short256:"])
    monkeypatch.delenv("I3DBENCH_K400", raising=False)
    monkeypatch.delenv("I3DBENCH_K400_ROOT", raising=False)
    _eval(VID_256, "--out", str(tmp_path / "n"), must=["--data-root and --ann are needed", "--data FILE", "I3DBENCH_K400"])


def test_run_plan_plans_every_group_from_its_own_layout(k400, monkeypatch):
    root, paths = k400
    monkeypatch.delenv("I3DBENCH_K400_ROOT", raising=False)
    r = run_cli(["run", "--plan", "--data", str(root / "copy.yaml"), "--only", f"{RAW_340},{RAW_256},{VID_256}",
                 "--model-s-per-video", "0.5", "--probe-videos", "1", "--quiet"], expect_rc=0)
    for key in ("rawframes_340x256", "rawframes_short256", "videos_short256"):
        assert f"videos: 3 (listed in {Path(paths[key][1]).resolve()})" in r.out, (key, r.out)
    assert "estimate" not in r.out


def test_the_descriptions_reference_ids_restrict_the_evaluation(k400, tmp_path):
    root, paths = k400
    ref = tmp_path / "ids.txt"
    ref.write_text("elsewhere/not_in_the_copy 20 0\n")  # a rawframe list sharing no video with the copy
    r, a = paths["rawframes_340x256"]
    desc = tmp_path / "with_ref.yaml"
    desc.write_text(f"rawframes_340x256: {{root: {r}, list: {a}}}\nreference_ids: {ref}\n")
    assert load_copy(desc).reference == ref.resolve()
    _eval(RAW_340, "--data", str(desc), "--out", str(tmp_path / "x"), must=["no videos", f"in common with {ref}"])


def test_run_on_a_cpu_names_the_command_that_evaluates_anyway_and_a_missing_layout(k400, tmp_path):
    from i3dbench.runner import eval_tasks
    from i3dbench.runs import open_run_dir
    from i3dbench.zoo import load_zoos

    root, paths = k400
    entries = {n: e for n, e in load_zoos().items() if n in (RAW_340, VID_256)}
    run = open_run_dir(tmp_path / "run")
    tasks, skipped = eval_tasks(entries, run, "cpu", k400=load_copy(root / "copy.yaml"), num_workers=0)
    assert not tasks and {s[0] for s in skipped} == {f"eval {RAW_340}", f"eval {VID_256}"}
    assert all(f"i3dbench eval {s[0][5:]} --views 1x1" in s[1] for s in skipped)
    tasks, skipped = eval_tasks(entries, run, "cuda", k400=load_copy(root / "copy.yaml"), num_workers=0)
    assert not skipped
    got = {t.entries[0].name: (Path(t.data_root), Path(t.ann)) for t in tasks}
    assert got == {RAW_340: tuple(Path(p).resolve() for p in paths["rawframes_340x256"]),
                   VID_256: tuple(Path(p).resolve() for p in paths["videos_short256"])}
    only_videos = tmp_path / "v.yaml"
    only_videos.write_text(f"videos_short256: {{root: {paths['videos_short256'][0]}, "
                           f"list: {paths['videos_short256'][1]}}}\n")
    tasks, skipped = eval_tasks(entries, run, "cuda", k400=load_copy(only_videos), num_workers=0)
    assert [t.entries[0].name for t in tasks] == [VID_256]
    assert skipped == [(f"eval {RAW_340}", load_copy(only_videos).why_not(get_entry(RAW_340)))]


def test_sweep_reads_the_entrys_layout_from_the_description(k400, tmp_path, monkeypatch):
    root, _ = k400
    monkeypatch.delenv("I3DBENCH_K400_ROOT", raising=False)
    bad_ckpt = tmp_path / "not-a-checkpoint.pth"
    bad_ckpt.write_bytes(b"x" * 100)
    # the description is read (the sweep gets as far as the checkpoint), then through I3DBENCH_K400
    run_cli(["sweep", RAW_256, "--vary", "averaging=prob,score", "--data", str(root / "copy.yaml"), "--checkpoint",
             str(bad_ckpt), "--out", str(tmp_path / "s"), "--quiet", "--workers", "0"], expect_rc=2,
            must_name=["cannot read checkpoint", str(bad_ckpt)])
    run_cli(["sweep", RAW_256, "--vary", "averaging=prob,score", "--checkpoint", str(bad_ckpt), "--out",
             str(tmp_path / "s2"), "--quiet", "--workers", "0"], expect_rc=2, must_name=["cannot read checkpoint"],
            env={"I3DBENCH_K400": str(root / "copy.yaml")})
    monkeypatch.delenv("I3DBENCH_K400", raising=False)
    run_cli(["sweep", RAW_256, "--vary", "averaging=prob,score", "--quiet"], expect_rc=2,
            must_name=["--data-root and --ann are needed", "I3DBENCH_K400"])


LAZY_340 = "i3d_r50_lazy_32x2x1_100e_kinetics400_rgb"  # rawframes 340x256, read with turbojpeg


def test_inputs_for_gives_each_entry_its_layout_or_why_not(k400, tmp_path, monkeypatch):
    """What compare calls (data.k400copy.inputs_for): the entry's own layout, or the reason it has none."""
    from i3dbench.data.k400copy import inputs_for

    root, paths = k400
    for var in ("I3DBENCH_K400", "I3DBENCH_K400_ROOT", "I3DBENCH_K400_ANN"):
        monkeypatch.delenv(var, raising=False)
    for name, key in [(RAW_340, "rawframes_340x256"), (RAW_256, "rawframes_short256"), (VID_256, "videos_short256")]:
        assert inputs_for(get_entry(name), root / "copy.yaml") == (tuple(Path(p).resolve() for p in paths[key]), "")
    monkeypatch.setenv("I3DBENCH_K400", str(root / "copy.yaml"))
    assert inputs_for(get_entry(RAW_256))[0] == tuple(Path(p).resolve() for p in paths["rawframes_short256"])
    only = tmp_path / "only.yaml"
    only.write_text(f"videos_short256: {{root: {paths['videos_short256'][0]}, list: {paths['videos_short256'][1]}}}\n")
    found, why = inputs_for(get_entry(RAW_340), only)
    assert found is None and "rawframes_340x256:" in why and str(only) in why
    monkeypatch.delenv("I3DBENCH_K400")
    found, why = inputs_for(get_entry(RAW_340))
    assert found is None and "I3DBENCH_K400" in why and "--data" in why


def test_bench_loader_reads_the_entrys_own_layout(k400, tmp_path, monkeypatch):
    root, paths = k400
    for var in ("I3DBENCH_K400", "I3DBENCH_K400_ROOT", "I3DBENCH_K400_ANN"):
        monkeypatch.delenv(var, raising=False)
    for name, key in [(RAW_340, "rawframes_340x256"), (RAW_256, "rawframes_short256"), (VID_256, "videos_short256")]:
        r = run_cli(["bench", name, "--loader", "--data", str(root / "copy.yaml"), "--loader-workers", "0",
                     "--loader-videos", "2", "--quiet"], expect_rc=0,
                    must_name=[f"under {Path(paths[key][0]).resolve()}", "video/s"])
        assert ("decord" in r.out) == (key == "videos_short256"), r.out
    run_cli(["bench", RAW_340, "--loader", "--loader-workers", "0", "--loader-videos", "1", "--quiet"], expect_rc=0,
            must_name=[f"under {Path(paths['rawframes_340x256'][0]).resolve()}"],
            env={"I3DBENCH_K400": str(root / "copy.yaml")})
    only = tmp_path / "only.yaml"
    only.write_text(f"videos_short256: {{root: {paths['videos_short256'][0]}, list: {paths['videos_short256'][1]}}}\n")
    run_cli(["bench", RAW_340, "--loader", "--data", str(only), "--quiet"], expect_rc=2,
            must_name=["no rawframes 340x256 layout", "rawframes_340x256:"])
    run_cli(["bench", RAW_340, "--data", str(only)], expect_rc=2, must_name=["--data", "--loader"])


def test_data_check_entry_reads_its_layout_with_the_rows_own_jpeg_backend(k400, monkeypatch):
    root, paths = k400
    for var in ("I3DBENCH_K400", "I3DBENCH_K400_ROOT", "I3DBENCH_K400_ANN"):
        monkeypatch.delenv(var, raising=False)
    # 20-frame clips are too short for the K400 rows (exit 2), but every video was read from the right layout
    for name, key in [(RAW_256, "rawframes_short256"), (VID_256, "videos_short256")]:
        r = run_cli(["data", "check", "--entry", name, "--data", str(root / "copy.yaml"), "--quiet"], expect_rc=2,
                    must_name=[f"{Path(paths[key][0]).resolve()} ({'rawframes' if 'raw' in key else 'videos'}, 3 annotated"])
        assert "too_short" in r.out and "missing" not in r.out.split("too_short")[-1]
    r = run_cli(["data", "check", "--entry", LAZY_340, "--quiet"], expect_rc=2,
                must_name=[f"{Path(paths['rawframes_340x256'][0]).resolve()} (rawframes", "rawframes turbojpeg"],
                env={"I3DBENCH_K400": str(root / "copy.yaml")})
    r = run_cli(["data", "check", "--entry", RAW_340, "--data", str(root / "copy.yaml"), "--quiet"], expect_rc=2,
                must_name=["rawframes cv2"])
    run_cli(["data", "check", "--entry", LAZY_340, "--quiet"], expect_rc=2,
            must_name=["--data FILE", "I3DBENCH_K400"])
    run_cli(["data", "check", "--quiet"], expect_rc=2, must_name=["ROOT --ann F", "--entry NAME"])
    # without the turbojpeg extra: one line naming it
    import sys

    from i3dbench.data import decoders

    for module in ("turbojpeg", "simplejpeg"):
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setattr(decoders, "_TURBO", {})
    r = run_cli(["data", "check", "--entry", LAZY_340, "--data", str(root / "copy.yaml"), "--quiet"], expect_rc=2,
                must_name=[LAZY_340, "turbojpeg", "pip install -e '.[turbojpeg]'"])
    assert len(r.out.strip().splitlines()) == 1, r.out


def test_too_short_videos_are_recorded_like_too_short_rawframes(k400, tmp_path):
    """A video's frame count is known only once decoded: the evaluation records its too-short warning
    then, as a rawframe list's count is checked before (each warning once)."""
    import json

    from i3dbench.data.synthetic import synthetic_paths

    root, _ = k400  # 20-frame clips; one clip of the smoke entries spans (8 - 1) x 4 + 1 = 29 frames
    for name, fmt in (("smoke_i3d_tiny_video", "videos"), ("smoke_i3d_tiny_rawframes_lazy", "rawframes")):
        data_root, ann = synthetic_paths(root, fmt, "340x256", "val")
        out = tmp_path / name
        r = run_cli(["eval", name, "--data-root", str(data_root), "--ann", str(ann), "--workers", "0",
                     "--out", str(out)], expect_rc=0, must_name=["warning:", "fewer than one clip"])
        (rec,) = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
        short = [w for w in rec["extra"]["data_warnings"] if "has 20 frames, fewer than one clip" in w]
        listed = [line.split()[0] for line in Path(ann).read_text().splitlines()]
        assert len(short) == len(listed) == 3 and all(any(repr(v) in w for w in short) for v in listed), (fmt, short)
        assert all(w.startswith(f"{ann}:") for w in short), short  # file:line, as the list's other findings
        assert r.out.count("fewer than one clip") == 3, r.out  # printed once each (without --quiet)
