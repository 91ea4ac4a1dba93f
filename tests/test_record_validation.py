"""Every record is validated once, at load (records.load_records), before gate, report or publish
read it: a record that breaks the schema is refused by file and field (exit 2, one line, no
traceback), never read as something else. Resume refuses prediction rows outside the list.

Each case edits one field of a valid record's JSON (as a hand edit or a bug elsewhere would)
and runs the real commands on the folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_harness import run_cli
from test_gate import HITS, bench_rec, eval_rec

from i3dbench.errors import UserError
from i3dbench.predictions import read_predictions
from i3dbench.records import RecordError, load_records, write_record

SMOKE = "smoke_i3d_tiny_video"
NL = "smoke_i3d_nl_tiny_video"


def _times(n=20):
    return [0.1 + 0.001 * i for i in range(n)]


def folder_with(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """A records folder holding one valid eval and one valid bench record; returns (folder, the ``kind`` file)."""
    folder = tmp_path / "run" / "records"
    e = write_record(eval_rec(SMOKE, HITS), folder)
    b = write_record(bench_rec(SMOKE, _times(), ref=[0.004] * 20), folder)
    return folder, e if kind == "eval" else b


def set_path(data: dict, path: str, value) -> None:
    keys = path.split(".")
    for k in keys[:-1]:
        data = data[k]
    if value is DELETE:
        del data[keys[-1]]
    else:
        data[keys[-1]] = value


DELETE = object()
INF = float("inf")

# (kind, field path, new value, what the error names besides the file)
CASES = [
    ("eval", "schema", 1, "'schema'"),
    ("eval", "schema", "2", "'schema'"),
    ("eval", "entry", 5, "'entry'"),
    ("eval", "kind", "evals", "'kind'"),
    ("eval", "obtained.how", "guessed", "'obtained.how'"),
    ("eval", "conditions.time", "2024-06-11T00:00:00", "'conditions.time'"),
    ("eval", "conditions.code.dirty", "yes", "'conditions.code.dirty'"),
    ("eval", "conditions.views", "6", "'conditions.views'"),
    ("eval", "measurement.id", DELETE, "'measurement.id'"),
    ("eval", "metrics.top1", "89.06", "'metrics.top1'"),
    ("eval", "metrics.top1", True, "'metrics.top1'"),
    ("eval", "metrics.top1", INF, "'metrics.top1'"),
    ("eval", "metrics.top1", 120.0, "'metrics.top1'"),
    ("eval", "metrics.top1", 50.0, "top1=50.0"),  # the interval no longer holds it (nor does the per-video string)
    ("eval", "metrics.top1_interval", [-INF, INF], "'metrics.top1_interval'"),
    ("eval", "metrics.top1_interval", [None, None], "'metrics.top1_interval'"),
    ("eval", "metrics.top1_interval", [95.0, 99.0], "does not contain its value"),
    ("eval", "metrics.top1_interval", [90.0, 80.0], "'metrics.top1_interval'"),
    ("eval", "metrics.top1_interval", [80.0], "'metrics.top1_interval'"),
    ("eval", "metrics.num_videos", "64", "'metrics.num_videos'"),
    ("eval", "metrics.num_videos", True, "'metrics.num_videos'"),
    ("eval", "metrics.num_videos", -1, "'metrics.num_videos'"),
    ("eval", "metrics.num_videos", 65, "exceeds 'metrics.num_listed'"),
    ("eval", "metrics.num_listed", 100, "'extra.per_video.top1' has 64 characters"),
    ("eval", "extra.per_video.top1", "x" * 64, "'extra.per_video.top1' has characters other than"),
    ("eval", "extra.per_video.top1", "1" * 63, "'extra.per_video.top1' has 63 characters"),
    ("eval", "extra.per_video.top1", "-" * 64, "'extra.per_video.top1' has 0 evaluated videos"),
    ("eval", "extra.per_video.top1", "1" * 64, "'metrics.top1' is 89.0625 but 'extra.per_video.top1' gives 100"),
    ("eval", "extra.per_video.top5", "0" * 64, "'metrics.top5' is 100.0 but 'extra.per_video.top5' gives 0"),
    ("eval", "extra.per_video.top1", 1111, "'extra.per_video.top1' must be a string"),
    ("eval", "extra.per_video", "1" * 64, "'extra.per_video' must be an object"),
    ("bench", "extra.times_s", [True] * 20, "'extra.times_s[0]'"),
    ("bench", "extra.times_s", [0.1] * 19 + [-0.1], "'extra.times_s[19]'"),
    ("bench", "extra.times_s", [0.1] * 19 + [0], "'extra.times_s[19]'"),
    ("bench", "extra.times_s", [0.1] * 19 + [INF], "'extra.times_s[19]'"),
    ("bench", "extra.times_s", [0.1] * 19 + ["0.1"], "'extra.times_s[19]'"),
    ("bench", "extra.times_s", "fast", "'extra.times_s' must be a list"),
    ("bench", "extra.reference_times_s", [0.004] * 19 + [None], "'extra.reference_times_s[19]'"),
    ("bench", "method.views_per_iteration", "6", "'method.views_per_iteration'"),
    ("bench", "method.views_per_iteration", 6.0, "'method.views_per_iteration'"),
    ("bench", "method.views_per_video", 0, "'method.views_per_video'"),
    ("bench", "metrics.video_per_s", True, "'metrics.video_per_s'"),
    ("bench", "metrics.n_timed", 2.5, "'metrics.n_timed'"),
    ("bench", "measurement.shared_by", ["another_entry"], "does not name the record's entry"),
    ("bench", "measurement.shared_by", "smoke_i3d_tiny_video", "'measurement.shared_by' must be a list"),
]


def _dump(data) -> str:
    return json.dumps(data, allow_nan=True)  # a hand edit may well write Infinity


@pytest.mark.parametrize("kind, path, value, needle", CASES, ids=[f"{c[1]}={c[2]!r}"[:60] for c in CASES])
def test_a_bad_field_is_refused_by_file_and_field_by_every_reader(tmp_path, kind, path, value, needle):
    folder, target = folder_with(tmp_path, kind)
    load_records(folder)  # valid as written
    data = json.loads(target.read_text())
    set_path(data, path, value)
    target.write_text(_dump(data))
    with pytest.raises(RecordError, match=None):
        load_records(folder)
    run = folder.parent
    for args in (["gate", "--records", run], ["report", "--records", run, "--out", tmp_path / "rep"],
                 ["publish", run, "--results", tmp_path / "results", "--readme", "none"]):
        res = run_cli(args, expect_rc=2, must_name=[target.name, needle], watch=[tmp_path])
        lines = res.out.strip().splitlines()
        # One line names the file and field (the gate adds its verdict line below it).
        assert len(lines) == (2 if args[0] == "gate" else 1), res.out
        assert target.name in lines[0] and needle in lines[0], res.out
    assert not (tmp_path / "rep").exists() and not (tmp_path / "results").exists()


def test_a_record_that_is_not_an_object_is_refused(tmp_path):
    folder, target = folder_with(tmp_path, "eval")
    target.write_text("[1, 2]")
    run_cli(["gate", "--records", folder.parent], expect_rc=2, must_name=[target.name, "JSON object"])


# --------------------------------------------------------------------------- folder-level: measurement ids


def test_a_measurement_id_shared_without_shared_by_is_refused(tmp_path):
    """Two entries' records with one id: the gate would judge them once, hiding one entry's numbers."""
    folder = tmp_path / "run" / "records"
    write_record(eval_rec(SMOKE, HITS), folder)
    other = write_record(eval_rec(NL, [False] * 30 + HITS[30:]), folder)
    load_records(folder)
    data = json.loads(other.read_text())
    data["measurement"]["id"] = json.loads(next(p for p in folder.iterdir() if p != other).read_text())[
        "measurement"]["id"]
    other.write_text(json.dumps(data))
    for args in (["gate", "--records", folder.parent], ["report", "--records", folder.parent, "--out", tmp_path / "r"]):
        run_cli(args, expect_rc=2, must_name=["'measurement.id'", "shared_by", "is also the id of"], watch=[tmp_path])


def test_a_shared_measurement_naming_its_entries_loads_and_a_repeated_one_is_refused(tmp_path):
    folder = tmp_path / "run" / "records"
    k400 = "i3d_r50_32x2x1_100e_kinetics400_rgb"
    video = "i3d_r50_video_32x2x1_100e_kinetics400_rgb"
    shared = {"id": "m1", "shared_by": [k400, video], "measured_entry": k400}
    write_record(bench_rec(k400, _times(), measurement=shared), folder)
    write_record(bench_rec(video, _times(), measurement=shared), folder)
    assert len(load_records(folder)) == 2
    write_record(bench_rec(video, _times(), t="2024-06-12T00:00:00+00:00", measurement=shared), folder)
    run_cli(["gate", "--records", folder.parent], expect_rc=2, must_name=["'measurement.id'", "appears twice"])


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("rows, needle", [
    ([{"i": 0}, {"i": 100}], "i=100 is outside the list of 64"),
    ([{"i": 0}, {"i": -1}], "i=-1 is outside the list of 64"),
    ([{"i": 0}, {"i": "1"}], "outside the list"),
    ([{"i": 0}, {"i": True}], "outside the list"),
    ([{"i": 3}, {"i": 3}], "a second row for video i=3"),
])
def test_resume_refuses_rows_outside_the_list(tmp_path, rows, needle):
    path = tmp_path / "e-key.partial.jsonl"
    path.write_text("".join(json.dumps({**r, "video": "v.mp4", "label": 0, "top5": [0]}) + "\n" for r in rows))
    with pytest.raises(UserError, match=needle):
        read_predictions(path, num_listed=64)
    assert len(read_predictions(path)) >= 1  # without a list (reading a sealed file) it is read as before


def test_resume_through_the_cli_refuses_a_row_outside_the_list(tmp_path):
    """A partial file of the same run key holding a row i=100 of an 8-video list: eval refuses it
    by file and line instead of evaluating '9 of 8'. (A list of its own: a run key no other test
    evaluates at the same time.)"""
    from i3dbench.runner import smoke_data
    from i3dbench.zoo import get_entry

    root, ann = smoke_data(get_entry(SMOKE))
    short = tmp_path / "val8.txt"
    short.write_text("".join(Path(ann).read_text().splitlines(keepends=True)[:8]))
    run = tmp_path / "runs" / "run"
    args = ["eval", SMOKE, "--data-root", root, "--ann", short, "--workers", "0", "--quiet"]
    env = {"I3DBENCH_RUNS": str(tmp_path / "runs")}
    first = run_cli(args + ["--out", run], expect_rc=0, must_name=["evaluated 8 of 8"], env=env)
    sealed = next((run / "predictions").glob(f"{SMOKE}-*.jsonl"))
    rows = sealed.read_text().splitlines()
    partial = sealed.with_name(sealed.name.replace(".jsonl", ".partial.jsonl"))
    partial.write_text("\n".join(rows[:5] + [json.dumps(json.loads(rows[0]) | {"i": 100})]) + "\n")
    res = run_cli(args + ["--out", tmp_path / "runs" / "run2"], expect_rc=2,
                  must_name=[partial.name, "i=100 is outside the list of 8"], env=env)
    assert "evaluated 9" not in first.out + res.out
