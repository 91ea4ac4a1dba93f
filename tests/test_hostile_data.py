"""`i3dbench data check` on hostile input, through the real command line.

Each case runs the CLI in process (``tests/cli_harness.run_cli``) and asserts the exit code
(2: nothing can be checked; 1: the check ran and found the problem), that no traceback is
printed, that the offending file, line, flag or value is named, and that nothing outside the
run's own JSON output changed (the data and lists are watched).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_harness import run_cli
from i3dbench.data.synthetic import VideoSpec, render_video, write_h264, write_jpegs

SMOKE = "smoke_i3d_tiny_video"  # 8 classes, clip span (8 - 1) * 4 + 1 = 29


def _frames(seed: int, n: int):
    spec = VideoSpec(f"v{seed}", "val", 0, "moving left", seed, n, "rectangle", 0.5, (20, 240, 20), 0.15, 0.9, 0.5, 10.0, 0.01)
    return render_video(spec, 64, 48)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """videos/: three 64-frame H.264 videos and a 2-frame one; frames/: two 6-frame JPEG folders; a good list."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "videos").mkdir()
    for i in range(3):
        write_h264(root / "videos" / f"good{i}.mp4", _frames(i, 64))
    write_h264(root / "videos" / "two.mp4", _frames(7, 2))
    for name in ("f0", "f1"):
        write_jpegs(root / "frames" / name, _frames(3, 6))
    (root / "good.txt").write_text("good0.mp4 0\ngood1.mp4 1\ngood2.mp4 2\n")
    (root / "good_frames.txt").write_text("f0 6 0\nf1 6 1\n")
    return root


def _check(media: Path, ann, *extra) -> list:
    return ["data", "check", media / "videos", "--ann", ann, "--quiet", *extra]


def _write(tmp: Path, name: str, text: str | bytes) -> Path:
    path = tmp / name
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


# Each builder gets (media, tmp) and returns (argv, strings the output must name).
USAGE_CASES = {
    "missing root": lambda m, t: (["data", "check", m / "nowhere", "--ann", m / "good.txt"], [m / "nowhere", "not a directory"]),
    "root is a file": lambda m, t: (["data", "check", m / "good.txt", "--ann", m / "good.txt"], [m / "good.txt", "is a file"]),
    "missing list": lambda m, t: (_check(m, t / "nope.txt"), [t / "nope.txt", "not found"]),
    "list is a folder": lambda m, t: (_check(m, m / "frames"), [m / "frames", "is a folder"]),
    "empty list": lambda m, t: (_check(m, _write(t, "empty.txt", "\n  \n")), [t / "empty.txt", "holds no video"]),
    "binary garbage list": lambda m, t: (_check(m, _write(t, "bin.txt", b"\x89PNG\r\n\x1a\n\x00\xff\xfe garbage")),
                                         [t / "bin.txt", "not a UTF-8 text file"]),
    "rawframes list read as videos": lambda m, t: (_check(m, m / "good_frames.txt"),
                                                   [f"{m / 'good_frames.txt'}:1", "no line of the list is valid", "rawframes list?"]),
    "negative --clip-len": lambda m, t: (_check(m, m / "good.txt", "--clip-len", "-3"), ["--clip-len", "-3"]),
    "zero --frame-interval": lambda m, t: (_check(m, m / "good.txt", "--clip-len", "8", "--frame-interval", "0"),
                                           ["--frame-interval", "got 0"]),
    "negative --workers": lambda m, t: (_check(m, m / "good.txt", "--workers", "-2"), ["--workers", "-2"]),
    "--frame-interval alone": lambda m, t: (_check(m, m / "good.txt", "--frame-interval", "2"), ["--frame-interval 2 needs --clip-len"]),
    "unknown --entry": lambda m, t: (_check(m, m / "good.txt", "--entry", "i3d_r51_nope"), ["i3d_r51_nope"]),
    "--format contradicts --entry": lambda m, t: (_check(m, m / "good.txt", "--entry", SMOKE, "--format", "rawframes"),
                                                  ["--format rawframes", SMOKE]),
    "--against missing": lambda m, t: (_check(m, m / "good.txt", "--against", t / "ref.txt"), [t / "ref.txt", "not found"]),
    "--against a folder": lambda m, t: (_check(m, m / "good.txt", "--against", m / "videos"), [m / "videos", "is a folder"]),
    "--against empty": lambda m, t: (_check(m, m / "good.txt", "--against", _write(t, "ref.txt", "")), [t / "ref.txt", "empty"]),
    "--against bad line": lambda m, t: (_check(m, m / "good.txt", "--against", _write(t, "ref.txt", "a.mp4 1\nb.mp4 x\n")),
                                        [f"{t / 'ref.txt'}:2", "'x'"]),
    "--against CSV bad row": lambda m, t: (
        _check(m, m / "good.txt", "--against", _write(t, "ref.csv", "label,youtube_id,time_start,time_end,split\nbowling,abc,9,3,val\n")),
        [f"{t / 'ref.csv'}:2", "time_end 3 is not after time_start 9"]),
}


@pytest.mark.parametrize("case", list(USAGE_CASES))
def test_unusable_input_exits_2_naming_it(media, tmp_path, case):
    argv, names = USAGE_CASES[case](media, tmp_path)
    res = run_cli(argv, expect_rc=2, must_name=names, watch=[media, tmp_path])
    assert len([line for line in res.out.splitlines() if "error" in line]) == 1, res.out  # one line, not a cascade


# The check runs and names the problem: exit 2 (bad input: data check's "problems found"; 1 is only the gate's "regressed").
FINDING_CASES = {
    "label 999 for 8 classes": ("good0.mp4 0\ngood1.mp4 999\n", ["--entry", SMOKE], [":2: LABEL 999 is out of range for 8 classes"]),
    "label 400 for the zoo's 400": ("good1.mp4 1\ngood0.mp4 400\n", [], [":2: LABEL 400 is out of range for 400 classes"]),
    "../../etc/passwd": ("good0.mp4 0\n../../etc/passwd 1\n", [], ["bad_path: ../../etc/passwd:", "leaves the data root"]),
    "absolute path outside root": ("/etc/hostname 1\ngood0.mp4 0\n", [], ["bad_path: /etc/hostname:", "is absolute"]),
    "dot-dot inside a path": ("good0.mp4 0\nsub/../../good1.mp4 1\n", [], ["bad_path: sub/../../good1.mp4"]),
    "path with a space": ("good0.mp4 0\nair drumming/good1.mp4 1\n", [], [":2: PATH 'air drumming/good1.mp4' contains whitespace"]),
    "path with a tab": ("good0.mp4 0\ngood\t1.mp4 1\n", [], [":2: PATH", "contains whitespace"]),
    "2-frame video, default span": ("good0.mp4 0\ntwo.mp4 1\n", [], ["too_short: two.mp4: 2 frames", "(64)", "i3d_r50_dense"]),
    "2-frame video, --entry span": ("two.mp4 1\n", ["--entry", SMOKE], ["too_short: two.mp4: 2 frames", "(29)", f"entry {SMOKE}"]),
    "video listed twice": ("good0.mp4 0\ngood1.mp4 1\n./good0.mp4 2\n", [], [":3: PATH './good0.mp4' is listed again (first on line 1)"]),
}


@pytest.mark.parametrize("case", list(FINDING_CASES))
def test_bad_lines_and_paths_are_named_exit_1(media, tmp_path, case):
    text, extra, names = FINDING_CASES[case]
    ann = _write(tmp_path, "list.txt", text)
    out = tmp_path / "out"
    res = run_cli(_check(media, ann, *extra, "--json", out / "r.json"), expect_rc=2, must_name=names,
                  watch=[media, tmp_path], allowed=[out])
    assert "PROBLEMS:" in res.out
    report = json.loads((out / "r.json").read_text())
    assert report["ok"] is False


def test_escaping_paths_are_never_opened(media, tmp_path):
    """A path outside the root is reported from its text alone: no size, no frames, no fingerprint share."""
    ann = _write(tmp_path, "list.txt", "../../../../../../etc/passwd 0\n/etc/passwd 1\ngood0.mp4 0\n")
    run_cli(_check(media, ann, "--json", tmp_path / "o" / "r.json"), expect_rc=2, watch=[media], allowed=[tmp_path])
    report = json.loads((tmp_path / "o" / "r.json").read_text())
    assert [(p["path"], p["status"], p["line"]) for p in report["problems"]] == [
        ("../../../../../../etc/passwd", "bad_path", 1), ("/etc/passwd", "bad_path", 2)]
    assert report["total_bytes"] == (media / "videos" / "good0.mp4").stat().st_size  # only the video inside


def test_rawframe_count_that_disagrees_is_named(media, tmp_path):
    ann = _write(tmp_path, "frames.txt", "f0 6 0\nf1 5 1\n")
    run_cli(["data", "check", media / "frames", "--ann", ann, "--format", "rawframes", "--clip-len", "2", "--quiet"],
            expect_rc=2, must_name=["count_mismatch: f1: the list says 5 frames, the directory has 6"], watch=[media, tmp_path])


def test_clean_copy_exits_0(media):
    res = run_cli(_check(media, media / "good.txt", "--entry", SMOKE), expect_rc=0, watch=[media])
    assert "ok             |        3" in res.out


@pytest.fixture()
def reference(media, tmp_path) -> Path:
    """A reference with good0 and good1 shared, good2 missing here... and two videos this copy lacks."""
    return _write(tmp_path, "ref.txt", "good0.mp4 0\ngood1.mp4 1\nabsent_a.mp4 3\nabsent_b.mp4 4\n")


def test_against_names_missing_and_extra_ids(media, tmp_path, reference):
    out = tmp_path / "out"
    res = run_cli(_check(media, media / "good.txt", "--entry", SMOKE, "--against", reference, "--json", out / "r.json"),
                  expect_rc=2, watch=[media, tmp_path], allowed=[out],
                  must_name=["2 of 3 listed videos shared", "2 missing, 1 extra", "absent_a, absent_b", "extra (in good.txt, not in the reference): good2",
                             "2 missing and 1 extra against the reference"])
    comp = json.loads((out / "r.json").read_text())["comparison"]
    assert (comp["num_common"], comp["missing"], comp["extra"]) == (2, ["absent_a", "absent_b"], ["good2"])
    assert "PROBLEMS: 0 videos, 0 annotation lines" in res.out


def test_against_shows_first_ids_then_all_in_json(media, tmp_path):
    ref = _write(tmp_path, "ref.txt", "".join(f"gone{i:02d}.mp4 0\n" for i in range(25)) + "good0.mp4 0\ngood1.mp4 1\ngood2.mp4 2\n")
    out = tmp_path / "out"
    res = run_cli(_check(media, media / "good.txt", "--entry", SMOKE, "--against", ref, "--json", out / "r.json"),
                  expect_rc=2, watch=[media, tmp_path], allowed=[out], must_name=["gone00, gone01", "gone09, ... (15 more)"])
    assert "gone10" not in res.out
    assert len(json.loads((out / "r.json").read_text())["comparison"]["missing"]) == 25


def test_against_the_rawframes_list_of_the_same_videos_is_identical(media, tmp_path):
    """A video list and a rawframes list (of a K400 CSV) name the same videos: no difference, exit 0."""
    ref = _write(tmp_path, "ref_frames.txt", "good2 64 2\ngood0 64 0\ngood1 64 1\n")
    res = run_cli(_check(media, media / "good.txt", "--entry", SMOKE, "--against", ref), expect_rc=0, watch=[media, tmp_path],
                  must_name=["3 of 3 listed videos shared (matched by path 3), 0 missing, 0 extra"])
    assert "PROBLEMS" not in res.out


def test_against_a_k400_csv(media, tmp_path):
    videos = tmp_path / "k400" / "abseiling"
    videos.mkdir(parents=True)
    for name in ("--33Lscn6sk_000004_000014", "-0E7Dwj6fjo_000000_000010"):
        (videos / f"{name}.mp4").write_bytes((media / "videos" / "good0.mp4").read_bytes())
    ann = _write(tmp_path, "val_list.txt", "abseiling/--33Lscn6sk_000004_000014.mp4 0\nabseiling/-0E7Dwj6fjo_000000_000010.mp4 0\n")
    csv = _write(tmp_path, "val.csv", "label,youtube_id,time_start,time_end,split\nabseiling,--33Lscn6sk,4,14,val\n"
                                      "abseiling,zzzzzzzzzzz,0,10,val\n")
    run_cli(["data", "check", tmp_path / "k400", "--ann", ann, "--entry", SMOKE, "--against", csv, "--quiet"], expect_rc=2,
            watch=[tmp_path], must_name=["1 of 2 listed videos shared (matched by name 1)", "zzzzzzzzzzz_000000_000010",
                                         "abseiling/-0E7Dwj6fjo_000000_000010"])
