"""test_compare_power: how well `compare` and `bisect` decide, on real revisions of this package (heavy, perf).

``pytest suites/test_compare_power.py --benchmark`` (minutes; skipped with --quick). A throwaway
git repository holds a copy of this package (i3dbench/ and zoo/) and commits that plant real
changes in the smoke model — real extra backbone work, no sleep:

* ``unchanged``: a comment-only commit;
* ``slow_1.5x``: the backbone also runs on 4 of the 6 views (half of the views measured x1.33 on
  this machine: a small batch costs more than its share);
* ``slow_1.15x``: the backbone also runs on the first half of the frames of one of the six
  views again (x1.146 measured in one process; one whole view again was x1.19-1.21);

(the ratio each plant really costs is what the compares measure: the record has it.)
* ``constant_head``: dev/planted/constant_head.patch (constant scores);
* ``memory_1.3x``: the head allocates 30% of the step's measured peak on top;
* a 12-commit history with the 1.5x slowdown at a random position, for bisect.

Every compare is the real one (compare.compare: worker processes per revision, paired rounds),
speed only unless said. With a CPU hog: one busy process the suite starts a few seconds into
each compare and stops at its end. Each figure goes to ``<run>/perf/compare_power.{json,md}``
with its provenance; the acceptance of issue 18 is asserted.
"""

from __future__ import annotations

import math
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from suite_support import perf_dir, write_perf

from i3dbench.records import collect_conditions

pytestmark = [pytest.mark.heavy, pytest.mark.perf]
PROJECT = Path(__file__).resolve().parent.parent
ENTRY = "smoke_i3d_tiny_video"
COMPARES = 10  # per planted change
HOG_COMPARES = 5  # per kind (unchanged, slowed) with the CPU hog
BISECT_RUNS = 3
HOG_DELAY_S = 4.0  # the hog starts this long into a compare (while its processes start)

RECOGNIZER = "i3dbench/models/recognizer.py"
HEAD = "i3dbench/models/head.py"
FORWARD = "        return self.cls_head(self.backbone(x))\n"
PLANTS = {
    "slow_1.5x": (RECOGNIZER, FORWARD,
                  "        feats = self.backbone(x)\n"
                  "        self.backbone(x[: max(1, 2 * x.shape[0] // 3)])  # planted: the backbone on 4 of 6 views again\n"
                  "        return self.cls_head(feats)\n"),
    "slow_1.15x": (RECOGNIZER, FORWARD,
                   "        feats = self.backbone(x)\n"
                   "        self.backbone(x[:1, :, : x.shape[2] // 2])  # planted: the backbone on half of one view again\n"
                   "        return self.cls_head(feats)\n"),
}


def _git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def _commit(repo, message) -> str:
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _edit(repo, rel, old, new) -> None:
    p = Path(repo) / rel
    text = p.read_text()
    assert old in text, (rel, old)
    p.write_text(text.replace(old, new, 1))


def _repo(root: Path) -> dict:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(PROJECT / "i3dbench", root / "i3dbench", ignore=ignore)
    shutil.copytree(PROJECT / "zoo", root / "zoo", ignore=ignore)
    _git(root, "init", "-q", "-b", "master")
    _git(root, "config", "user.email", "power@example.invalid")
    _git(root, "config", "user.name", "compare power")
    shas = {"base": _commit(root, "base")}

    def branch(name, change):
        _git(root, "checkout", "-q", "-B", name, shas["base"])
        change()
        shas[name] = _commit(root, name)

    branch("unchanged", lambda: _edit(root, RECOGNIZER, FORWARD, "        # a comment-only change\n" + FORWARD))
    for name, (rel, old, new) in PLANTS.items():
        branch(name, lambda rel=rel, old=old, new=new: _edit(root, rel, old, new))
    branch("constant_head", lambda: subprocess.run(
        ["git", "-C", str(root), "apply", str(PROJECT / "dev" / "planted" / "constant_head.patch")], check=True))
    return shas


def _memory_branch(root: Path, shas: dict, memory_bytes: int) -> None:
    """A buffer of ``memory_bytes`` held through the backbone's forward: the step's peak grows by it."""
    _git(root, "checkout", "-q", "-B", "memory_1.3x", shas["base"])
    _edit(root, RECOGNIZER, FORWARD,
          f"        held = torch.zeros({memory_bytes // 4})  # planted: {memory_bytes} bytes held through the forward\n"
          "        out = self.cls_head(self.backbone(x))\n"
          "        return out + 0 * held[:1]\n")
    shas["memory_1.3x"] = _commit(root, "memory_1.3x")


def _history(root: Path, base: str, culprit_at: int) -> list[str]:
    _git(root, "checkout", "-q", "-B", f"history-{culprit_at}", base)
    out = []
    for i in range(12):
        if i == culprit_at:
            rel, old, new = PLANTS["slow_1.5x"]
            _edit(root, rel, old, new)
        else:
            (root / "zoo" / "NOTES.txt").write_text(f"note {i} of history {culprit_at}\n")
        out.append(_commit(root, f"history {culprit_at}: commit {i}" + (" (planted slowdown)" if i == culprit_at
                                                                          else "")))
    return out


class Hog:
    """One busy process, started ``delay`` seconds after :meth:`start`, stopped by :meth:`stop`."""

    def __init__(self, delay: float):
        self.delay, self.proc, self._timer = delay, None, None

    def _spawn(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])

    def start(self):
        self._timer = threading.Timer(self.delay, self._spawn)
        self._timer.start()

    def stop(self):
        self._timer.cancel()
        self._timer.join()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def _compare(repo, base, head, out, checks=("speed",), hog=False):
    from i3dbench.compare import CompareSettings, compare

    h = Hog(HOG_DELAY_S) if hog else None
    if h:
        h.start()
    try:
        res = compare(base, head, only=[ENTRY], settings=CompareSettings(checks=tuple(checks)), out=out, repo=repo,
                      progress=False)
    finally:
        if h:
            h.stop()
    c = next(c for c in res.checks if c.metric == {"speed": "video_per_s", "accuracy": "top1",
                                                     "memory": "inference_memory_mb"}[checks[0]])
    return {"exit": res.exit_code, "verdict": c.verdict, "change": c.change, "ratio": c.ratio,
            "interval": c.interval, "rounds": c.rounds, "wall_s": round(res.wall_s, 1), "why": c.why,
            "hog": hog, "record": str(res.record_path)}


def _base_peak_bytes(repo, base, out) -> int:
    from i3dbench.compare import CompareSettings, compare

    res = compare(base, base, only=[ENTRY], settings=CompareSettings(checks=("memory",)), out=out, repo=repo,
                  progress=False)
    return int(res.checks[0].base * 2**20)


def _count(rows, verdict):
    return sum(r["verdict"] == verdict for r in rows)


def _markdown(s: dict) -> str:
    lines = [f"# compare and bisect: power on planted changes ({ENTRY}, CPU)", ""]
    for name, label in (("unchanged", "unchanged code (comment-only commit)"), ("slow_1.5x", "planted 1.5x slowdown"),
                        ("slow_1.15x", "planted ~1.15x slowdown"), ("hog_unchanged", "unchanged, CPU hog"),
                        ("hog_slow_1.5x", "1.5x slowdown, CPU hog")):
        rows = s["runs"][name]
        lines.append(f"- {label}: REGRESSED {_count(rows, 'REGRESSED')}/{len(rows)}, SAME {_count(rows, 'SAME')}, "
                     f"UNKNOWN {_count(rows, 'UNKNOWN')}, IMPROVED {_count(rows, 'IMPROVED')}; time ratios "
                     + ", ".join(f"{r['ratio']:.3f}" for r in rows if r["ratio"]))
    lines += [f"- constant head (accuracy): {s['constant_head']['verdict']} ({s['constant_head']['change']})",
              f"- memory x{s['memory']['ratio']:.3f}: {s['memory']['verdict']}",
              f"- one smoke compare (speed, no hog): median wall {s['median_wall_s']:.1f} s, median rounds "
              f"{s['median_rounds']:g}",
              "- bisect (1.5x slowdown among 12 commits): " + "; ".join(
                  f"planted at {b['planted']}, found {b['found']} in {b['compares']} compares ({b['wall_s']:.0f} s)"
                  for b in s["bisect"])]
    return "\n".join(lines) + "\n"


def test_compare_power(run_dir, capsys, tmp_path):
    from i3dbench.bisect import bisect

    conditions = collect_conditions("cpu", batch=1)
    work = perf_dir(run_dir) / "compare_power"
    repo = tmp_path / "repo"
    repo.mkdir()
    shas = _repo(repo)
    peak = _base_peak_bytes(repo, shas["base"], work)  # the memory plant is 30% of the base step's peak
    _memory_branch(repo, shas, int(0.3 * peak))
    rng = random.Random(18)
    runs: dict = {k: [] for k in ("unchanged", "slow_1.5x", "slow_1.15x", "hog_unchanged", "hog_slow_1.5x")}
    order = [k for k in ("unchanged", "slow_1.5x", "slow_1.15x") for _ in range(COMPARES)]
    order += [f"hog_{k}" for k in ("unchanged", "slow_1.5x") for _ in range(HOG_COMPARES)]
    rng.shuffle(order)  # kinds interleaved: the machine's slow drift lands on all alike
    for i, kind in enumerate(order):
        head = shas[kind.removeprefix("hog_")]
        row = _compare(repo, shas["base"], head, work, hog=kind.startswith("hog_"))
        runs[kind].append(row)
        with capsys.disabled():
            print(f"compare {i + 1}/{len(order)} {kind}: {row['verdict']} {row['change']} ({row['rounds']} rounds, "
                  f"{row['wall_s']} s)", flush=True)
    constant = _compare(repo, shas["base"], shas["constant_head"], work, checks=("accuracy",))
    memory = _compare(repo, shas["base"], shas["memory_1.3x"], work, checks=("memory",))
    bisects = []
    for run in range(BISECT_RUNS):
        at = rng.randrange(12)
        history = _history(repo, shas["base"], at)
        t0 = time.perf_counter()
        res = bisect(shas["base"], history[-1], entry=ENTRY, out=work, repo=repo, progress=False)
        bisects.append({"planted": at, "planted_commit": history[at], "found": history.index(res.culprit)
                        if res.culprit in history else None, "compares": len(res.steps), "exit": res.exit_code,
                        "wall_s": round(time.perf_counter() - t0, 1),
                        "steps": [(s.position, s.verdict, s.check.change) for s in res.steps]})
        with capsys.disabled():
            print(f"bisect {run + 1}: planted at {at}, found {bisects[-1]['found']} in {len(res.steps)} compares",
                  flush=True)
    quiet = runs["unchanged"] + runs["slow_1.5x"] + runs["slow_1.15x"]
    s = {"runs": runs, "constant_head": constant, "memory": memory, "bisect": bisects,
         "median_wall_s": statistics.median(r["wall_s"] for r in quiet),
         "median_rounds": statistics.median(r["rounds"] for r in quiet),
         "memory_plant_bytes": int(0.3 * peak), "base_peak_bytes": peak}
    from i3dbench.compare import CompareSettings

    method = {"name": "compare_power", "entry": ENTRY, "settings": CompareSettings().__dict__ | {"checks": "speed"},
              "plants": {k: v[2] for k, v in PLANTS.items()} | {"constant_head": "dev/planted/constant_head.patch",
                                                                 "memory_1.3x": "torch.zeros(0.3 x base peak) held through the forward"},
              "hog": f"one `while True: pass` process started {HOG_DELAY_S} s into each hog compare, killed at its end",
              "order": "the 40 compares in a seeded random order of kinds (random.Random(18))",
              "bisect": "1.5x slowdown at a random position of 12 first-parent commits; compares vs GOOD"}
    md = _markdown(s)
    path = write_perf(run_dir, "compare_power", s, conditions=conditions, method=method, markdown=md)
    with capsys.disabled():
        print("\n" + md + f"(written to {path})")
    assert _count(runs["slow_1.5x"], "REGRESSED") == COMPARES, runs["slow_1.5x"]
    assert _count(runs["unchanged"], "REGRESSED") == 0 and _count(runs["unchanged"], "UNKNOWN") <= 1, runs["unchanged"]
    assert _count(runs["hog_unchanged"], "REGRESSED") == 0, runs["hog_unchanged"]
    assert _count(runs["hog_slow_1.5x"], "REGRESSED") >= 4, runs["hog_slow_1.5x"]
    assert constant["verdict"] == "REGRESSED" and memory["verdict"] == "REGRESSED", (constant, memory)
    assert _count(runs["slow_1.15x"], "REGRESSED") >= 8, runs["slow_1.15x"]  # the target
    assert s["median_wall_s"] <= 90 and s["median_rounds"] <= 12, (s["median_wall_s"], s["median_rounds"])
    assert all(b["found"] == b["planted"] and b["compares"] <= math.ceil(math.log2(12)) + 2 for b in bisects), bisects
