"""`i3dbench publish` refuses what must not become the reference: exit 2, one line naming the run (or
file) and the reason, and results/ and the README byte-identical to before. What it accepts it
reports as rows added / changed / removed; ``--dry-run`` only reports.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_harness import run_cli
from test_publish_atomic import argv, make_repo, state
from test_report import SMOKE, _bench, _cond, _eval

from i3dbench.records import make_record, write_record

NL = "smoke_i3d_nl_tiny_video"


def _failed_eval(name=SMOKE, listed=2):
    m = {"num_videos": 0, "num_listed": listed, "num_failed": listed}
    return make_record(name, "eval", m, _cond(time="2024-06-12T00:00:00+00:00", views=6),
                       {"name": "eval", "protocol": "2x3-prob-sampler1.x"}, extra={"complete": False})


def _good_eval(time="2024-06-12T00:00:00+00:00", top1=93.75, ci=(84.76, 98.27), n=64, **cond):
    return _eval(SMOKE, top1, list(ci), 100.0, [94.4, 100.0], time, num_videos=n, views=6, **cond)


def refused(repo: Path, args: list, must_name: list) -> str:
    """Run a publish that must be refused; check exit 2, one line, the culprit named, nothing changed."""
    before = state(repo)
    res = run_cli(args, expect_rc=2, must_name=must_name)
    lines = res.out.strip().splitlines()
    assert len(lines) == 1, f"not one line:\n{res.out}"
    assert state(repo) == before, "a refused publish changed results/ or the README"
    assert not [p.name for p in repo.iterdir() if p.name.startswith(".")], "a staging folder was left"
    return lines[0]


def new_run(tmp_path: Path, name: str, *records) -> Path:
    run = tmp_path / "runs" / name
    (run / "records").mkdir(parents=True)
    for rec in records:
        write_record(rec, run / "records")
    return run


@pytest.mark.parametrize("case", ["partial", "failed", "unknown_entry", "dirty", "empty", "no_records_folder"])
def test_a_run_that_must_not_be_the_reference_is_refused(tmp_path, case):
    repo, _, _ = make_repo(tmp_path)
    if case == "partial":
        rec, why = _eval(SMOKE, 87.5, [47.35, 99.68], 100.0, [63.06, 100.0], "2024-06-12T00:00:00+00:00",
                         num_videos=8, num_listed=9, views=6), "partial evaluation (8 of 9 videos)"
    elif case == "failed":
        rec, why = _failed_eval(), "failed evaluation"
    elif case == "unknown_entry":
        rec = _bench("no_such_entry_anywhere", "2024-06-12T00:00:00+00:00", vps=5.0)
        why = "'no_such_entry_anywhere' is in no manifest"
    elif case == "dirty":
        rec = _good_eval(code={"commit": "ab" * 20, "dirty": True, "source_sha256": "5" * 64})
        why = "uncommitted changes"
    else:
        rec, why = None, "hold no records" if case == "empty" else "no records/ or perf/ folder"
    run = new_run(tmp_path, case, *([rec] if rec else []))
    if case == "no_records_folder":
        shutil.rmtree(run / "records")
    line = refused(repo, argv(repo, run), [str(run), why])
    if rec is not None:
        assert next((run / "records").iterdir()).name in line  # the record is named too


def test_dirty_records_are_published_only_with_allow_dirty_and_the_caption_says_so(tmp_path):
    repo, _, _ = make_repo(tmp_path)
    run = new_run(tmp_path, "dirty", _good_eval(code={"commit": "ab" * 20, "dirty": True, "source_sha256": "5" * 64}))
    refused(repo, argv(repo, run), ["--allow-dirty"])
    res = run_cli(argv(repo, run, "--allow-dirty"), expect_rc=0, must_name=["--allow-dirty: 1 record(s)"])
    block = (repo / "README.md").read_text().split("ZOO-TABLE:START")[1].split("ZOO-TABLE:END")[0]
    assert "Published with `--allow-dirty`" in block and "93.75" in block
    assert "rows: 0 added; 1 changed" in res.out and "0 removed" in res.out


def test_runs_disagreeing_on_one_entry_and_protocol_are_refused(tmp_path):
    repo, _, _ = make_repo(tmp_path)
    full = new_run(tmp_path, "full", _good_eval(top1=89.0625, ci=(78.75, 95.49)))
    few = new_run(tmp_path, "few", _good_eval(time="2024-06-12T01:00:00+00:00", top1=87.5, ci=(47.35, 99.68), n=8))
    line = refused(repo, argv(repo, [full, few]), [str(few), str(full), "disagrees", "2x3-prob-sampler1.x"])
    assert "87.5 of 8 videos" in line and "89.0625 of 64" in line
    # Two runs that agree (the same numbers measured twice) are published together.
    again = new_run(tmp_path, "again", _good_eval(time="2024-06-12T02:00:00+00:00", top1=89.0625, ci=(78.75, 95.49)))
    run_cli(argv(repo, [full, again]), expect_rc=0, must_name=["published 2 run(s)"])


@pytest.mark.parametrize("where", ["results", "results/records", "results/report"])
def test_a_run_folder_inside_results_is_refused(tmp_path, where):
    repo, _, _ = make_repo(tmp_path)
    refused(repo, argv(repo, repo / where), [str(repo / where), "inside the reference folder"])


def test_same_named_files_that_differ_between_runs_are_refused(tmp_path):
    repo, _, run_b = make_repo(tmp_path)
    other = tmp_path / "runs" / "other"
    shutil.copytree(run_b, other)
    (other / "perf" / "scaling.json").write_text('{"r2": 0.5}\n')
    refused(repo, argv(repo, [run_b, other]), [str(other), "perf/scaling.json", "differs"])
    shutil.copytree(run_b / "perf", other / "perf", dirs_exist_ok=True)
    rec = next((other / "records").glob("eval-*.json"))
    data = json.loads(rec.read_text())
    data["extra"]["note"] = "edited"
    rec.write_text(json.dumps(data))
    refused(repo, argv(repo, [run_b, other]), [str(other), rec.name, "differs"])


def test_an_invalid_record_is_refused_by_file_and_field(tmp_path):
    repo, _, run_b = make_repo(tmp_path)
    rec = next((run_b / "records").glob("bench-*.json"))
    data = json.loads(rec.read_text())
    data["extra"]["times_s"][3] = True  # JSON true is not a number of seconds
    rec.write_text(json.dumps(data))
    refused(repo, argv(repo, run_b), [rec.name, "extra.times_s[3]"])


README_HEAD = "# project\n\n"
START = "<!-- ZOO-TABLE:START (generated by `i3dbench publish`; do not edit) -->"
END = "<!-- ZOO-TABLE:END -->"


@pytest.mark.parametrize("text, needle", [
    (README_HEAD + "no markers at all\n", "found 0 and 0"),
    (README_HEAD + f"{START}\n| t |\n{END}\n\n{START}\n", "found 2 and 1"),
    (README_HEAD + f"{START} | t | {END}\n", "alone on its line"),
    (README_HEAD + f"text {START}\n| t |\n{END}\n", "alone on its line"),
    (README_HEAD + f"{START}\n| t |\n{END} trailing\n", "alone on its line"),
    (README_HEAD + f"{END}\n| t |\n{START}\n", "comes before the start marker"),
])
def test_bad_readme_markers_are_refused_before_anything_changes(tmp_path, text, needle):
    repo, _, run_b = make_repo(tmp_path)
    (repo / "README.md").write_text(text)
    refused(repo, argv(repo, run_b), [str(repo / "README.md"), needle])


def test_markers_at_the_end_of_a_file_without_a_final_newline(tmp_path):
    repo, _, run_b = make_repo(tmp_path)
    (repo / "README.md").write_text(README_HEAD + f"{START}\n| t |\n{END}")
    run_cli(argv(repo, run_b), expect_rc=0, must_name=["zoo table updated"])
    text = (repo / "README.md").read_text()
    assert text.startswith(README_HEAD + START + "\n") and text.endswith("\n" + END) and text.count(END) == 1
    # A second publish finds the same single block (no second table appended).
    before = state(repo)
    run_cli(argv(repo, run_b), expect_rc=0, must_name=["zoo table unchanged"])
    assert state(repo) == before


def test_a_readme_that_is_a_folder_and_a_full_disk_are_refused(tmp_path, monkeypatch):
    repo, _, run_b = make_repo(tmp_path)
    (repo / "docs").mkdir()
    refused(repo, ["publish", run_b, "--results", repo / "results", "--readme", repo / "docs"], [str(repo / "docs")])
    import collections
    import shutil as sh

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(sh, "disk_usage", lambda p: usage(10**9, 10**9 - 4096, 4096))
    refused(repo, argv(repo, run_b), [str(repo), "disk is full", "KiB free"])


def test_dry_run_only_says_what_changes(tmp_path):
    repo, run_a, run_b = make_repo(tmp_path)
    nl = _eval(NL, 93.75, [84.76, 98.27], 100.0, [94.4, 100.0], "2024-06-12T00:00:00+00:00", num_videos=64, views=6)
    write_record(nl, run_b / "records")
    before = state(repo)
    res = run_cli(argv(repo, run_b, "--dry-run"), expect_rc=0,
                  must_name=["dry run", "nothing was changed", "rows: 0 added; 2 changed", "0 removed",
                             "records: 3 added, 2 removed, 0 unchanged", "perf files: 1 added"])
    assert "published" not in res.out
    assert state(repo) == before
    # Publishing run A again, where it came from: nothing changes, and the output says so.
    run_cli(argv(repo, run_a, "--dry-run"), expect_rc=0, must_name=["0 added; 0 changed; 0 removed",
                                                                    "records: 0 added, 0 removed, 2 unchanged"])
    # Every zoo entry has a row (measured or not): publishing only the other entry changes both rows.
    only_nl = new_run(tmp_path, "only_nl", nl)
    run_cli(argv(repo, only_nl, "--dry-run"), expect_rc=0, must_name=["rows: 0 added; 2 changed", "0 removed",
                                                                      "records: 1 added, 2 removed"])


def test_perf_files_the_runs_do_not_replace_are_kept_unless_pruned(tmp_path):
    repo, _, run_b = make_repo(tmp_path)
    run_cli(argv(repo, run_b), expect_rc=0, must_name=["1 kept"])
    assert sorted(p.name for p in (repo / "results" / "perf").iterdir()) == ["old.json", "scaling.json"]
    assert (repo / "results" / "NOTES.md").read_text() == "a note someone keeps here\n"
    run_cli(argv(repo, run_b, "--prune-perf"), expect_rc=0, must_name=["1 removed: old.json"])
    assert sorted(p.name for p in (repo / "results" / "perf").iterdir()) == ["scaling.json"]


def test_rows_added_and_removed_are_counted(tmp_path):
    """Into an empty block every zoo row is added; a row of the old table that the new one lacks is removed."""
    import re

    repo, _, run_b = make_repo(tmp_path)
    (repo / "README.md").write_text(README_HEAD + f"{START}\n| entry | x |\n|---|---|\n| gone_entry | 1 |\n{END}\n")
    before = state(repo)
    res = run_cli(argv(repo, run_b, "--dry-run"), expect_rc=0, must_name=["1 removed: gone_entry", "0 changed"])
    added = int(re.search(r"rows: (\d+) added", res.out).group(1))
    assert added >= 3, res.out  # the smoke entries at least
    assert state(repo) == before


def _perf_run(tmp_path: Path, name: str, dirty: bool) -> Path:
    """A benchmark suite's run folder: perf/ only, its file carrying the conditions it was measured under."""
    run = tmp_path / "runs" / name
    (run / "perf").mkdir(parents=True)
    doc = {"what": "compare_power", "conditions": {"code": {"commit": "cd" * 20, "dirty": dirty}}, "results": {}}
    (run / "perf" / "compare_power.json").write_text(json.dumps(doc) + "\n")
    return run


def test_a_suite_run_with_perf_only_is_published_beside_a_run_with_records(tmp_path):
    repo, _, _ = make_repo(tmp_path)
    records_run = new_run(tmp_path, "records", _good_eval())
    perf_run = _perf_run(tmp_path, "suite", dirty=False)
    refused(repo, argv(repo, perf_run), [str(perf_run), "hold no records"])  # perf alone is no reference
    run_cli(argv(repo, [records_run, perf_run]), expect_rc=0, must_name=["published 2 run(s)"])
    assert (repo / "results" / "perf" / "compare_power.json").read_bytes() == \
        (perf_run / "perf" / "compare_power.json").read_bytes()


def test_a_perf_file_measured_from_a_dirty_tree_is_refused_by_name(tmp_path):
    repo, _, _ = make_repo(tmp_path)
    records_run = new_run(tmp_path, "records", _good_eval())
    perf_run = _perf_run(tmp_path, "suite", dirty=True)
    refused(repo, argv(repo, [records_run, perf_run]), [str(perf_run), "perf/compare_power.json",
                                                         "uncommitted changes", "--allow-dirty"])
    run_cli(argv(repo, [records_run, perf_run], "--allow-dirty"), expect_rc=0)
