"""The small things of the eval path (issue 19, item 7), through the real CLI: SIGTERM ends like
Ctrl-C (a message, exit 143), a failed eval leaves no empty run folder, and the summary says how
many listed videos --intersect-with dropped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_harness import run_cli

REPO = Path(__file__).resolve().parent.parent
SMOKE = "smoke_i3d_tiny_video"


@pytest.mark.parametrize("sig, rc, words", [(signal.SIGTERM, 143, "terminated by SIGTERM"),
                                            (signal.SIGINT, 130, "interrupted")])
def test_sigterm_ends_like_sigint_with_a_message(tmp_path, sig, rc, words):
    env = dict(os.environ, PYTHONPATH=str(REPO), I3DBENCH_RUNS=str(tmp_path / "runs"))
    proc = subprocess.Popen([sys.executable, "-m", "i3dbench.cli", "bench", SMOKE, "--protocol", "fast",
                             "--min-seconds", "120", "--no-memory", "--out", str(tmp_path / "run")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                            # a shell without job control starts background jobs with SIGINT ignored, and Python
                            # keeps an inherited ignore: the command under test gets the default, as in a terminal
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        time.sleep(12)  # imports done, timing under way
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == rc, (out, err)
    assert f"i3dbench bench: {words}" in err and "Traceback" not in err + out


def test_a_failed_eval_leaves_no_empty_run_folder(tiny_set, tmp_path):
    data_root, ann, ckpt = tiny_set
    runs = Path(os.environ["I3DBENCH_RUNS"])
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    before = set(runs.iterdir()) if runs.exists() else set()
    run_cli(["eval", SMOKE, "--data-root", str(data_root), "--ann", str(ann), "--checkpoint", str(bad), "--quiet",
             "--workers", "0"], expect_rc=2, must_name=[str(bad)])
    after = set(runs.iterdir()) if runs.exists() else set()
    assert after == before, f"left behind: {sorted(after - before)}"
    out = tmp_path / "out"
    run_cli(["eval", SMOKE, "--data-root", str(data_root), "--ann", str(ann), "--checkpoint", str(bad), "--quiet",
             "--workers", "0", "--out", str(out)], expect_rc=2)
    assert not out.exists()
    # a folder the user made is left alone, and so is a run that wrote something
    out.mkdir()
    run_cli(["eval", SMOKE, "--data-root", str(data_root), "--ann", str(ann), "--checkpoint", str(bad), "--quiet",
             "--workers", "0", "--out", str(out)], expect_rc=2)
    assert out.is_dir()
    run_cli(["eval", SMOKE, "--data-root", str(data_root), "--ann", str(ann), "--checkpoint", str(ckpt), "--quiet",
             "--workers", "0"], expect_rc=0)
    assert len(set(runs.iterdir()) - before) == 1


def test_the_summary_says_how_many_videos_intersect_with_dropped(tiny_set, tmp_path):
    data_root, ann, ckpt = tiny_set
    lines = Path(ann).read_text().splitlines()
    ref = tmp_path / "ref.txt"
    ref.write_text("\n".join(lines[:-1]) + "\n")  # the reference lacks the last listed video
    r = run_cli(["eval", SMOKE, "--data-root", str(data_root), "--ann", str(ann), "--checkpoint", str(ckpt), "--quiet",
                 "--workers", "0", "--intersect-with", str(ref)], expect_rc=0)
    n = len(lines)
    assert f"evaluated {n - 1} of {n - 1}" in r.out
    assert f"--intersect-with {ref}: {n - 1} of the {n} listed videos are in it, 1 dropped" in r.out


def test_plan_writes_nothing_into_the_cache(tmp_path, monkeypatch):
    """`run --plan` with an empty cache: the plan is printed, the synthetic set is not generated
    (that is `run`'s job; the probe ran on a throwaway copy, removed), no run folder is made."""
    import tempfile

    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("I3DBENCH_CACHE", str(cache))
    monkeypatch.delenv("I3DBENCH_K400_ROOT", raising=False)
    scratch_before = set(Path(tempfile.gettempdir()).glob("i3dbench-plan-*"))
    r = run_cli(["run", "--plan", "--only", SMOKE, "--probe-videos", "1", "--quiet", "--out", str(tmp_path / "never")],
                expect_rc=0, watch=[REPO / "results", REPO / "zoo"])
    assert "the synthetic val set `run` generates (64 videos; not in the cache yet" in r.out
    assert not (cache / "synthetic").exists() and [p.name for p in cache.iterdir()] == []
    assert not (tmp_path / "never").exists()
    assert set(Path(tempfile.gettempdir()).glob("i3dbench-plan-*")) == scratch_before


def test_plan_skips_a_group_whose_backend_is_missing_and_plans_the_rest(tmp_path, monkeypatch):
    """The lazy rows read their JPEGs with turbojpeg: without it their group is planned as skipped,
    with the pip line, and the other groups are planned (it used to end the plan with exit 2)."""
    from i3dbench.data import decoders

    for module in ("turbojpeg", "simplejpeg"):  # `import ...` fails: the extra is not installed
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setattr(decoders, "_TURBO", {})  # no codec found earlier in this process
    monkeypatch.delenv("I3DBENCH_K400", raising=False)
    monkeypatch.delenv("I3DBENCH_K400_ROOT", raising=False)
    lazy, plain = "i3d_r50_lazy_32x2x1_100e_kinetics400_rgb", "i3d_r50_32x2x1_100e_kinetics400_rgb"
    r = run_cli(["run", "--plan", "--only", f"{lazy},{plain}", "--model-s-per-video", "0.5", "--assume-videos", "100",
                 "--probe-videos", "1", "--quiet", "--device", "cpu"], expect_rc=0)
    blocks = r.out.split("\ngroup ")[1:]  # two groups may share a label (it leaves out the JPEG backend)
    skipped = [b for b in blocks if lazy in b]
    assert len(skipped) == 1 and "skipped:" in skipped[0] and "turbojpeg" in skipped[0] and "pip install" in skipped[0]
    planned = [b for b in blocks if plain in b]
    assert len(planned) == 1 and "projected:" in planned[0]
    assert f"to evaluate here anyway: i3dbench eval {plain} --views 1x1" in planned[0]
