"""No command overwrites what it did not make: `report`, `sweep`, `eval`, `bench`, `run`, `data
extract`, `data check --json` and `data synth` write only into their own output — never into a
reference results/ folder, never over one of their inputs (runs.check_output, one check for all) —
and a second sweep into one run folder gets a folder of its own.

Every refusal: exit 2, one line naming the path, nothing changed under the test's folder. The
reference folder is a temporary copy (the test runs from a temporary repo), never the checkout's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_harness import run_cli, snapshot
from test_report import SMOKE, _bench, _eval

from i3dbench.records import write_record


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A temporary repository with results/ (records and a report) and a run folder; cwd is the repo."""
    repo = tmp_path / "repo"
    run = repo / "runs" / "r1"
    write_record(_eval(SMOKE, 89.0625, [78.75, 95.49], 100.0, [94.4, 100.0], "2024-06-10T00:00:00+00:00",
                       num_videos=64, views=6), run / "records")
    write_record(_bench(SMOKE, "2024-06-10T01:00:00+00:00", vps=50.0), run / "records")
    shutil.copytree(run / "records", repo / "results" / "records")
    (repo / "results" / "report").mkdir()
    (repo / "results" / "report" / "README.md").write_text("the published report\n")
    (repo / "lists").mkdir()
    (repo / "lists" / "val.txt").write_text("a.mp4 0\n")
    monkeypatch.chdir(repo)
    monkeypatch.setenv("I3DBENCH_RUNS", str(repo / "runs"))
    return repo


def refused(args, must_name, watch) -> str:
    res = run_cli(args, expect_rc=2, must_name=must_name, watch=watch)
    lines = res.out.strip().splitlines()
    assert len(lines) == 1, res.out
    return lines[0]


REF = "inside the reference folder"
INPUT = "is also an input"


@pytest.mark.parametrize("args, needle", [
    (["report", "--records", "runs/r1", "--out", "results/report"], REF),
    (["report", "--records", "runs/r1", "--out", "results"], REF),
    (["report", "--records", "results"], REF),  # the default out, results/report
    (["report", "--records", "runs/r1", "--out", "runs/r1/records"], INPUT),
    (["report", "--records", "runs/r1", "--out", "runs/r1"], INPUT),
    (["report", "--records", "runs/r1", "--out", "runs"], "holds an input"),
    (["eval", SMOKE, "--out", "results"], REF),
    (["eval", SMOKE, "--out", "results/new-run"], REF),
    (["eval", SMOKE, "--data-root", "lists", "--ann", "lists/val.txt", "--out", "lists/val.txt"], INPUT),
    (["eval", SMOKE, "--data-root", "lists", "--ann", "lists/val.txt", "--out", "lists"], INPUT),
    (["bench", SMOKE, "--out", "results/bench"], REF),
    (["sweep", SMOKE, "--vary", "averaging=prob,score", "--out", "results"], REF),
    (["sweep", SMOKE, "--vary", "averaging=prob,score", "--data-root", "lists", "--ann", "lists/val.txt",
      "--out", "lists/val.txt"], INPUT),
    (["run", "--out", "results/run"], REF),
    (["data", "synth", "results/synth"], REF),
    (["data", "check", "lists", "--ann", "lists/val.txt", "--json", "lists/val.txt"], INPUT),
])
def test_outputs_into_results_or_over_an_input_are_refused(repo, args, needle):
    line = refused(args, [needle], watch=[repo])
    out = args[args.index("--out") + 1] if "--out" in args else (
        args[args.index("--json") + 1] if "--json" in args else "results")
    assert out in line


def test_report_into_its_own_default_folder_still_works(repo):
    run_cli(["report", "--records", "runs/r1", "--history"], expect_rc=0, watch=[repo],
            allowed=[repo / "runs" / "r1" / "report"])
    assert (repo / "runs" / "r1" / "report" / "README.md").is_file()


# --------------------------------------------------------------------------- data extract

cv2 = pytest.importorskip("cv2")


def _videos(tmp_path: Path, names) -> tuple[Path, Path]:
    from real_clips import clip_path

    root = tmp_path / "videos"
    (root / "cls").mkdir(parents=True)
    for name in names:
        shutil.copyfile(clip_path("carphone_distorted.mp4"), root / "cls" / name)
    ann = root / "val_list_videos.txt"
    ann.write_text("".join(f"cls/{n} {i}\n" for i, n in enumerate(names)))
    return root, ann


def test_extract_never_writes_over_its_list_or_videos(tmp_path):
    root, ann = _videos(tmp_path, ["a.mp4"])
    base = ["data", "extract", root, tmp_path / "out", "--ann", ann, "--layout", "340x256", "--workers", "1",
            "--quiet"]
    refused(base + ["--list", ann], ["--list", str(ann), INPUT], watch=[tmp_path])
    refused(base + ["--list", root / "cls" / "a.mp4"], ["--list", "a.mp4", INPUT], watch=[tmp_path])
    refused(["data", "extract", root, root, "--ann", ann, "--layout", "340x256", "--quiet"],
            ["OUT", str(root), INPUT], watch=[tmp_path])


def test_extract_refuses_two_videos_that_would_share_a_frame_folder(tmp_path):
    root, ann = _videos(tmp_path, ["x.mp4", "x.avi"])
    refused(["data", "extract", root, tmp_path / "out", "--ann", ann, "--layout", "340x256", "--workers", "1",
             "--quiet"], ["cls/x.avi", "cls/x.mp4", "line 2", "would both be extracted"], watch=[tmp_path])


# --------------------------------------------------------------------------- sweep: a folder per sweep


def test_a_second_sweep_into_one_run_folder_gets_its_own_folder(tmp_path):
    from i3dbench.runner import smoke_data
    from i3dbench.zoo import get_entry

    root, ann = smoke_data(get_entry(SMOKE))
    lines = Path(ann).read_text().splitlines(keepends=True)[:8]
    short = tmp_path / "val8.txt"
    short.write_text("".join(lines))
    out = tmp_path / "run"
    args = ["sweep", SMOKE, "--vary", "averaging=prob,score", "--data-root", root, "--ann", short, "--out", out,
            "--workers", "0", "--quiet"]
    run_cli(args, expect_rc=0, must_name=[str(out / "sweep" / SMOKE / "sweep.md")])
    first = snapshot([out / "sweep" / SMOKE])
    assert sorted(Path(p).name for p in first) == ["sweep.csv", "sweep.md", "sweep.png"]
    run_cli(args, expect_rc=0, must_name=[str(out / "sweep" / f"{SMOKE}-2" / "sweep.md")],
            watch=[out / "sweep" / SMOKE])  # the first sweep's files are untouched
    assert snapshot([out / "sweep" / SMOKE]) == first
    assert sorted(p.name for p in (out / "sweep" / f"{SMOKE}-2").iterdir()) == ["sweep.csv", "sweep.md", "sweep.png"]
