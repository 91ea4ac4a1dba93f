"""`i3dbench publish` is one atomic step: a kill at any point of the switch leaves results/ and the
README each wholly old or wholly new, and the next publish rolls an unfinished one back to the old
state byte for byte (or keeps a finished one), with no staging folder left behind.

The kill is injected, not timed: a subprocess runs the real command line with
``publish.STEP_HOOK`` set to ``os._exit`` at one named step (both with the atomic
``renameat2`` exchange and with the two-rename fallback of file systems without it).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_harness import run_cli
from test_publish import README
from test_report import SMOKE, _bench, _eval

from i3dbench import publish as P
from i3dbench.records import write_record

KILLED = 77
SCRIPT = r"""
import os, sys
from i3dbench import publish as P
step, mode = sys.argv[1], sys.argv[2]
P.STEP_HOOK = lambda s: os._exit({killed}) if s == step else None
if mode == "renames":  # a file system without renameat2(RENAME_EXCHANGE)
    P._exchange = lambda a, b: False
from i3dbench.cli import main
sys.exit(main(sys.argv[3:]))
""".format(killed=KILLED)


def state(root: Path) -> dict[str, str]:
    """relative path -> sha256 and mode of every file and folder under ``root`` (the repo)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        mode = oct(p.stat().st_mode & 0o7777)
        out[rel] = (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir") + " " + mode
    return out


def rendered(st: dict[str, str]) -> dict[str, str]:
    """``st`` without the contents of results/report/ (its README.md's presence kept): a report rendered
    in another folder, or by another process while report.py is being edited, may differ, so two repos'
    reports are compared by their README only; records/, perf/, the rest and README.md byte for byte."""
    return {k: ("file" if k == "results/report/README.md" else v) for k, v in st.items()
            if not k.startswith("results/report/") or k == "results/report/README.md"}


def part(st: dict[str, str], prefix: str) -> dict[str, str]:
    return {k: v for k, v in st.items() if k == prefix or k.startswith(prefix + "/")}


def make_repo(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A repo whose results/ came from a first publish (run A), and a second run B to publish."""
    repo = tmp_path / "repo"
    (repo / "results" / "perf").mkdir(parents=True)
    (repo / "results" / "perf" / "old.json").write_text("{}\n")
    (repo / "results" / "NOTES.md").write_text("a note someone keeps here\n")
    (repo / "README.md").write_text(README)
    os.chmod(repo / "README.md", 0o604)
    run_a, run_b = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    write_record(_eval(SMOKE, 89.0625, [78.75, 95.49], 100.0, [94.4, 100.0], "2024-06-10T00:00:00+00:00",
                       num_videos=64, views=6), run_a / "records")
    write_record(_bench(SMOKE, "2024-06-10T01:00:00+00:00", vps=50.0), run_a / "records")
    run_cli(["publish", run_a, "--results", repo / "results", "--readme", repo / "README.md"], expect_rc=0)
    write_record(_eval(SMOKE, 93.75, [84.76, 98.27], 100.0, [94.4, 100.0], "2024-06-11T00:00:00+00:00",
                       num_videos=64, views=6), run_b / "records")
    write_record(_bench(SMOKE, "2024-06-11T01:00:00+00:00", vps=60.0), run_b / "records")
    (run_b / "perf").mkdir()
    (run_b / "perf" / "scaling.json").write_text('{"r2": 0.99}\n')
    return repo, run_a, run_b


def argv(repo: Path, run, *extra) -> list:
    """``publish RUN... --results R --readme README EXTRA...`` (``run``: a folder or a list of them)."""
    runs = list(run) if isinstance(run, (list, tuple)) else [run]
    return ["publish", *runs, "--results", repo / "results", "--readme", repo / "README.md", *extra]


def expected_new(tmp_path: Path, repo: Path, run_b: Path) -> dict[str, str]:
    """The repo's state after an uninterrupted publish of run B (on a copy)."""
    copy = tmp_path / "expected" / "repo"
    shutil.copytree(repo, copy)
    run_cli(argv(copy, run_b), expect_rc=0)
    return state(copy)


def no_leftovers(repo: Path) -> None:
    assert not [p.name for p in repo.iterdir() if p.name.startswith(".")], "staging or README side files left"
    assert not [p.name for p in (repo / "results").iterdir() if p.name.startswith(".")]


def _kill_at(step: str, mode: str, repo: Path, run_b: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", SCRIPT, step, mode, *map(str, argv(repo, run_b))],
                          capture_output=True, text=True, env=env, timeout=300)


CASES = [(step, "exchange") for step in P.STEPS if step != "results-parked"] + [(step, "renames") for step in P.STEPS]


@pytest.mark.parametrize("step, mode", CASES)
def test_a_kill_at_each_step_is_rolled_back_or_kept_whole(tmp_path, step, mode):
    repo, _, run_b = make_repo(tmp_path)
    old = state(repo)
    new = expected_new(tmp_path, repo, run_b)
    assert part(new, "results") != part(old, "results") and new["README.md"] != old["README.md"]
    res = _kill_at(step, mode, repo, run_b)
    assert res.returncode == KILLED, f"the hook did not fire at {step}: rc={res.returncode}\n{res.stderr[-2000:]}"
    assert "Traceback" not in res.stderr
    # At the kill: each of results/ and README is wholly old or wholly new, never a mix.
    now = state(repo)
    # (The two-rename fallback has one more state between its renames: results/ absent, the old folder
    # parked in the staging folder; never a mix either.)
    parked = mode == "renames" and step == "results-parked" and part(now, "results") == {}
    assert parked or part(now, "results") == part(old, "results") or rendered(part(now, "results")) == rendered(
        part(new, "results")), f"results/ mixed at {step}"
    assert now["README.md"] in (old["README.md"], new["README.md"]), f"README mixed at {step}"
    # The next publish (a dry run here) rolls an unfinished switch back, or keeps a finished one.
    out = run_cli(argv(repo, run_b, "--dry-run"), expect_rc=0, must_name=["interrupted publish"])
    after = state(repo)
    if step == "done":
        assert rendered(after) == rendered(new), "a finished publish was rolled back"
    else:
        assert after == old, f"results/ or README differ from before after the recovery of a kill at {step}"
        assert "rolled back" in out.out or step in ("staging", "staged")
    no_leftovers(repo)
    # And a publish after the recovery gives what an uninterrupted one gives.
    run_cli(argv(repo, run_b), expect_rc=0)
    assert rendered(state(repo)) == rendered(new)
    no_leftovers(repo)


@pytest.mark.parametrize("step", ["staged", "results-switched", "readme-switched"])
def test_ctrl_c_or_an_error_during_the_switch_restores_the_old_reference_at_once(tmp_path, monkeypatch, step):
    repo, _, run_b = make_repo(tmp_path)
    old = state(repo)

    def interrupt(s):
        if s == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(P, "STEP_HOOK", interrupt)
    run_cli(argv(repo, run_b), expect_rc=130, must_name=["interrupted"])
    assert state(repo) == old
    no_leftovers(repo)

    def disk_error(s):
        if s == step:
            raise OSError(errno.EIO, "Input/output error", str(repo / "results"))

    monkeypatch.setattr(P, "STEP_HOOK", disk_error)
    res = run_cli(argv(repo, run_b), expect_rc=2, must_name=[str(repo / "results")])
    assert len(res.out.strip().splitlines()) == 1
    assert state(repo) == old
    no_leftovers(repo)


def test_a_second_publish_waits_for_none_while_one_runs(tmp_path):
    """Two publishes into one folder at once: the second is refused (a lock), and changes nothing."""
    import fcntl

    repo, _, run_b = make_repo(tmp_path)
    old = state(repo)
    fd = os.open(repo, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        run_cli(argv(repo, run_b), expect_rc=2, must_name=["another `i3dbench publish` is running"])
    finally:
        os.close(fd)
    assert state(repo) == old
