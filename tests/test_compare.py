"""compare.py, verdicts.py, bisect.py and `i3dbench compare | bisect`.

The verdict rules on constructed numbers (each with the mutation it catches), then the real
command on a throwaway git repository the tests build: a copy of this package with commits that
plant a real memory increase, a constant head, an import error, an accepted regression, and a
12-commit history for bisect. Speed verdicts on real timings are the benchmark suite's job
(suites/test_compare_power.py); here the speed path runs for real and its record is checked for
consistency (every round's ratio is the ratio of its blocks' medians; the gate re-judges it alike).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import statistics
import subprocess
from fractions import Fraction
from math import comb
from pathlib import Path

import pytest

from i3dbench.cli import main
from i3dbench.gate import run_gate
from i3dbench.stats import median_interval, sign_test
from i3dbench.verdicts import (
    IMPROVED,
    REGRESSED,
    SAME,
    UNKNOWN,
    VERDICTS,
    PairedCheck,
    accuracy_checks,
    apply_accepted,
    decide,
    exit_code,
    load_compare_record,
    parse_accepted,
    speed_statistics,
)

PROJECT = Path(__file__).resolve().parent.parent
SMOKE = "smoke_i3d_tiny_video"


# --------------------------------------------------------------------------- statistics


@pytest.mark.parametrize("diffs", [[1, 1, 1, 1, 1, 1], [1, -1, 1, 1, 0, 1, 1, -1, 1], [-2, -1, 0.5], [0, 0, 0]])
def test_sign_test_against_the_binomial_sum_directly(diffs):
    st = sign_test(diffs)
    n = sum(1 for d in diffs if d != 0)
    above = sum(1 for d in diffs if d > 0)
    direct = lambda k: float(sum(Fraction(comb(n, j), 2**n) for j in range(k, n + 1)))  # noqa: E731 - P(X >= k)
    assert st.n == n and st.above == above
    assert st.p_greater == pytest.approx(direct(above), abs=1e-15)
    assert st.p_less == pytest.approx(direct(n - above), abs=1e-15)


def test_median_interval_covers_the_median_as_often_as_it_says():
    import numpy as np

    rng = np.random.default_rng(0)
    hits = 0
    trials = 4000
    for _ in range(trials):  # a skewed distribution with true median 1.0 (log-normal)
        lo, hi = median_interval(np.exp(rng.normal(0.0, 0.3, 9)))
        hits += lo <= 1.0 <= hi
    # n = 9: [x_(2), x_(8)], exact coverage 1 - 2 * 10/512 = 0.9609
    assert abs(hits / trials - 0.9609) < 0.015
    assert median_interval([1.0] * 5) is None  # too few for a 95% interval: never a made-up one


# --------------------------------------------------------------------------- verdict rules


def _speed(ratios, limit=1.10, entry=SMOKE):
    c = PairedCheck(entry=entry, metric="video_per_s", tolerance=limit, round_ratios=list(ratios))
    speed_statistics(c)
    return c


def _decided(*checks):
    decide(list(checks))
    return checks


def test_speed_same_regressed_improved_unknown():
    (same,), (slow,), (fast,), (wide,) = (_decided(_speed([1.01, 0.99, 1.02, 0.98, 1.0, 1.03, 0.97])),
                                          _decided(_speed([1.5, 1.49, 1.52, 1.47, 1.55, 1.5])),
                                          _decided(_speed([0.6, 0.62, 0.59, 0.61, 0.6, 0.63])),
                                          _decided(_speed([1.0, 1.2, 0.9, 1.15, 0.95, 1.05])))
    assert (same.verdict, slow.verdict, fast.verdict, wide.verdict) == (SAME, REGRESSED, IMPROVED, UNKNOWN)
    assert slow.ratio == pytest.approx(1.5, rel=0.01)
    assert slow.interval == [1.47, 1.55]  # n = 6: [min, max]


def test_noise_never_hides_a_change_whose_whole_interval_is_beyond_the_tolerance():
    (c,) = _decided(_speed([1.3, 9.0, 1.25, 4.0, 1.8, 2.5, 1.4, 6.0]))  # x1.25..x9: a wide spread, all slower
    assert c.verdict == REGRESSED


def test_too_few_rounds_are_unknown_never_same():
    (c,) = _decided(_speed([1.0, 1.0, 1.0, 1.0, 1.0]))
    assert c.verdict == UNKNOWN and "too few" in c.why


def test_beyond_the_tolerance_but_not_significant_after_holm_is_unknown():
    # 6 rounds all slower: sign test p = 1/64; with 4 checks Holm makes it 4/64 > 0.05
    checks = [_speed([1.3, 1.31, 1.32, 1.33, 1.34, 1.35], entry=f"e{i}") for i in range(4)]
    decide(checks)
    assert all(c.verdict == UNKNOWN and "not significant" in c.why for c in checks)
    decide(checks[:1])
    assert checks[0].verdict == REGRESSED


def _pv(labels, preds):
    return [{"label": y, "top5": [p, (p + 1) % 8, (p + 2) % 8, (p + 3) % 8, (p + 4) % 8]} for y, p in zip(labels, preds)]


def test_accuracy_identical_constant_and_small_changes():
    labels = [i % 8 for i in range(64)]
    good = _pv(labels, labels)
    tol = {"top1": 5.0, "top5": 5.0}
    same = accuracy_checks(SMOKE, good, good, tol)
    decide(same)
    assert [c.verdict for c in same] == [SAME, SAME] and same[0].identical and same[0].p is None
    constant = accuracy_checks(SMOKE, good, _pv(labels, [3] * 64), tol)
    decide(constant)
    assert constant[0].verdict == REGRESSED and constant[0].head == pytest.approx(12.5)
    one_flip = accuracy_checks(SMOKE, good, _pv(labels, [labels[0] + 1] + labels[1:]), tol)
    decide(one_flip)
    assert one_flip[0].verdict == UNKNOWN and "more videos" in one_flip[0].why  # the paired interval exceeds ±5
    many = [i % 8 for i in range(2000)]  # one flip among 2000 videos: the paired interval is well within ±5
    small = accuracy_checks(SMOKE, _pv(many, many), _pv(many, [many[0] + 1] + many[1:]), tol)
    decide(small)
    assert small[0].verdict == SAME and not small[0].identical and "within" in small[0].why
    missing = accuracy_checks(SMOKE, good, [None] + good[1:], tol)
    decide(missing)
    assert missing[0].verdict == UNKNOWN


def test_memory_rule():
    def mem(base, head):
        (c,) = _decided(PairedCheck(entry=SMOKE, metric="inference_memory_mb", tolerance=0.25, base=base, head=head))
        return c.verdict

    assert (mem(10.0, 10.0), mem(10.0, 12.55), mem(10.0, 12.8), mem(14.0, 10.0), mem(10.0, None)) == \
        (SAME, SAME, REGRESSED, IMPROVED, UNKNOWN)


def test_accepted_regressions_are_reported_and_do_not_fail():
    (c,) = _decided(_speed([1.5] * 8))
    accepted = parse_accepted([("a" * 40, "Slower on purpose\n\nPerf-Accepted: smoke_* video_per_s\n")])
    apply_accepted([c], accepted)
    assert c.verdict == REGRESSED and c.accepted_by.startswith("aaaaaaaaaa Slower on purpose")
    assert exit_code([c]) == 0
    apply_accepted([c], parse_accepted([("b" * 40, "Perf-Accepted: other_entry video_per_s")]))
    assert exit_code([c]) == 1


# --------------------------------------------------------------------------- a throwaway repository


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def _commit(repo, message):
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def _edit(repo, rel, old, new):
    p = Path(repo) / rel
    text = p.read_text()
    assert old in text, (rel, old)
    p.write_text(text.replace(old, new, 1))


HEAD_PY = "i3dbench/models/head.py"
MEMORY_PLANT = ("        x = self.dropout(self.avg_pool(x)).flatten(1)\n",
                "        x = self.dropout(self.avg_pool(x)).flatten(1)\n"
                "        x = x + torch.zeros(8, 400_000)[: x.shape[0], : x.shape[1]]  # planted: ~12 MB more\n")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(PROJECT / "i3dbench", root / "i3dbench", ignore=ignore)
    shutil.copytree(PROJECT / "zoo", root / "zoo", ignore=ignore)
    shutil.copy(PROJECT / "dev" / "planted" / "constant_head.patch", root / "constant_head.patch")
    _git(root, "init", "-q", "-b", "master")
    _git(root, "config", "user.email", "t@example.invalid")
    _git(root, "config", "user.name", "test")
    _commit(root, "base")
    return root


def _branch(repo, name, start="master"):
    _git(repo, "checkout", "-q", "-B", name, start)


def _compare(capsys, *argv):
    capsys.readouterr()
    rc = main(["compare", *argv, "--quiet"])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_memory_same_then_a_planted_increase_regresses_and_the_gate_agrees(repo, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(repo)
    _git(repo, "checkout", "-q", "master")
    base = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    _branch(repo, "mem")
    _edit(repo, "i3dbench/zoo.py", '"""', '"""A comment-only change.\n', )
    comment = _commit(repo, "comment only")
    _edit(repo, HEAD_PY, *MEMORY_PLANT)
    planted = _commit(repo, "planted memory")
    run = tmp_path / "run"
    rc, out = _compare(capsys, base, comment, "--only", SMOKE, "--checks", "memory", "--out", str(run))
    assert rc == 0, out
    rc, out = _compare(capsys, base, planted, "--only", SMOKE, "--checks", "memory", "--out", str(run))
    assert rc == 1, out
    assert "REGRESSED" in out and "inference_memory_mb" in out
    records = sorted((run / "compare").glob("compare-*.json"))
    assert len(records) == 2
    doc, checks = load_compare_record(records[-1])
    assert doc["base"]["commit"] == base and doc["head"]["commit"] == planted
    assert checks[0].head > 1.25 * checks[0].base
    res = run_gate(run)
    assert res.exit_code == 1 and [j.exit_code for j in res.compares] == [0, 1]
    # a record whose stored verdict its numbers do not give is named, never trusted
    raw = json.loads(records[-1].read_text())
    raw["checks"][0]["verdict"] = SAME
    records[-1].write_text(json.dumps(raw))
    res = run_gate(run)
    assert res.exit_code == 2 and any("stored as SAME, its numbers give REGRESSED" in p for p in res.problems)


def test_an_accepted_regression_passes_and_says_by_which_commit(repo, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(repo)
    _branch(repo, "accepted", "master")
    _edit(repo, HEAD_PY, *MEMORY_PLANT)
    sha = _commit(repo, "Bigger head on purpose\n\nPerf-Accepted: smoke_i3d_tiny_video inference_memory_mb")
    rc, out = _compare(capsys, "master", sha, "--only", SMOKE, "--checks", "memory", "--out", str(tmp_path / "r"))
    assert rc == 0, out
    assert f"accepted by commit {sha[:10]} Bigger head on purpose" in out


def test_a_revision_that_cannot_import_is_exit_2_naming_it(repo, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(repo)
    _branch(repo, "broken", "master")
    _edit(repo, HEAD_PY, "import torch\n", "import torch\nimport i3dbench_no_such_module  # planted\n")
    sha = _commit(repo, "broken import")
    rc, out = _compare(capsys, "master", sha, "--only", SMOKE, "--checks", "memory", "--out", str(tmp_path / "r"))
    assert rc == 2, out
    assert f"head revision {sha} ({sha[:10]})" in out and "i3dbench_no_such_module" in out
    assert "Traceback" not in out


def test_a_constant_head_regresses_accuracy(repo, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(repo)
    _branch(repo, "constant", "master")
    _git(repo, "apply", "constant_head.patch")
    sha = _commit(repo, "constant head")
    rc, out = _compare(capsys, "master", sha, "--only", SMOKE, "--checks", "accuracy", "--out", str(tmp_path / "r"))
    assert rc == 1, out
    (record,) = (tmp_path / "r" / "compare").glob("compare-*.json")
    _, checks = load_compare_record(record)
    top1 = next(c for c in checks if c.metric == "top1")
    assert top1.verdict == REGRESSED and top1.head == pytest.approx(12.5) and top1.base > 80


def test_the_speed_path_records_every_block_and_round(repo, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(repo)
    _git(repo, "checkout", "-q", "master")
    rc, out = _compare(capsys, "master", "--only", SMOKE, "--checks", "speed", "--rounds", "6", "--max-rounds", "6",
                       "--block-seconds", "0.05", "--seed", "1", "--out", str(tmp_path / "r"))
    assert rc in (0, 1, 2), out
    (record,) = (tmp_path / "r" / "compare").glob("compare-*.json")
    doc, (c,) = load_compare_record(record)
    assert doc["head"]["rev"] == "working tree" and doc["settings"]["seed"] == 1
    assert c.rounds == 6 == len(c.round_ratios) == len(c.blocks["base"]) == len(c.blocks["head"])
    for r, b, h in zip(c.round_ratios, c.blocks["base"], c.blocks["head"]):
        assert len(b) >= 3 and len(h) >= 3
        assert r == pytest.approx(statistics.median(h) / statistics.median(b))
    assert c.verdict in VERDICTS
    # one speed host; every round in a child of it that served no other round
    hosts, children = {h for h, _ in c.round_processes}, [k for _, k in c.round_processes]
    assert len(hosts) == 1 and len(set(children)) == 6 and not hosts & set(children)
    assert math.isclose(c.ratio, math.exp(statistics.median(math.log(r) for r in c.round_ratios)))
    assert [j.checks[0].verdict for j in run_gate(tmp_path / "r").compares] == [c.verdict]


def test_a_torch_switch_flipped_at_import_is_measured_with_its_revision_only(repo, monkeypatch, tmp_path, capsys):
    """Both revisions are timed in one process: a revision that flips one of torch's process-wide switches
    at import (here: oneDNN off, ~3x slower convolutions on this model) must be measured with it, and the
    other revision without it. Fails when the speed host shares one torch state between the two."""
    monkeypatch.chdir(repo)
    _branch(repo, "switch", "master")
    _edit(repo, "i3dbench/__init__.py", '"""', 'import torch as _torch\n_torch.backends.mkldnn.enabled = False  # planted\n"""')
    sha = _commit(repo, "oneDNN off at import")
    # both import orders of the speed host: --seed 1 draws head first, --seed 2 base first
    assert [random.Random(random.Random(k).randrange(2**32)).sample(["base", "head"], 2)[0] for k in (1, 2)] == [
        "head", "base"]
    for order_seed in (1, 2):
        rc, out = _compare(capsys, "master", sha, "--only", SMOKE, "--checks", "speed", "--rounds", "6",
                           "--max-rounds", "6", "--block-seconds", "0.1", "--seed", str(order_seed),
                           "--out", str(tmp_path / "r"))
        assert rc == 1 and "REGRESSED" in out, out


def test_bisect_finds_the_planted_commit_among_12(repo, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(repo)
    _branch(repo, "history", "master")
    good = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    shas = []
    for i in range(12):
        if i == 6:
            _edit(repo, HEAD_PY, *MEMORY_PLANT)
        else:
            (repo / "zoo" / "NOTES.txt").write_text(f"note {i}\n")
        shas.append(_commit(repo, f"commit {i}" + (" plants the memory" if i == 6 else "")))
    capsys.readouterr()
    rc = main(["bisect", good, shas[-1], "--only", SMOKE, "--metric", "memory", "--quiet", "--out", str(tmp_path / "b")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"bisect: culprit {shas[6]} 'commit 6 plants the memory'" in out
    steps = [line for line in out.splitlines() if line.startswith("| ") and "commit #" not in line]
    assert len(steps) <= math.ceil(math.log2(12)) + 2


def test_bisect_refuses_a_good_that_is_not_an_ancestor(repo, monkeypatch, capsys):
    monkeypatch.chdir(repo)
    for side in ("side-a", "side-b"):
        _branch(repo, side, "master")
        (repo / "zoo" / "NOTES.txt").write_text(f"{side}\n")
        _commit(repo, side)
    rc = main(["bisect", "side-a", "side-b", "--only", SMOKE, "--metric", "memory", "--quiet"])
    assert rc == 2
    assert "is not an ancestor" in capsys.readouterr().err


def test_accuracy_inputs_take_each_entrys_own_layout_from_the_copy_description(tmp_path, monkeypatch):
    """compare's accuracy check reads a Kinetics-400 row's own layout from I3DBENCH_K400 (and says why it
    skips a row whose layout the copy lacks). Fails if compare keeps reading only _ROOT/_ANN."""
    from i3dbench.compare import accuracy_inputs
    from i3dbench.zoo import load_zoo

    frames, videos = tmp_path / "rawframes_340x256", tmp_path / "videos_256p"
    frames.mkdir()
    videos.mkdir()
    (frames / "list.txt").write_text("abseiling/a 300 0\n")
    (videos / "list.txt").write_text("abseiling/a.mp4 0\n")
    desc = tmp_path / "k400.yaml"
    desc.write_text(f"rawframes_340x256: {{root: {frames}, list: {frames / 'list.txt'}}}\n"
                    f"videos_short256: {{root: {videos}, list: {videos / 'list.txt'}}}\n")
    for var in ("I3DBENCH_K400_ROOT", "I3DBENCH_K400_ANN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("I3DBENCH_K400", str(desc))
    zoo = load_zoo()
    by_layout = {}
    for e in zoo.values():
        by_layout.setdefault((e.data.format, e.data.resolution), e)
    raw = by_layout[("rawframes", "340x256")]
    assert accuracy_inputs(raw) == ((str(frames), str(frames / "list.txt")), "")
    vid = by_layout[("videos", "short256")]
    assert accuracy_inputs(vid) == ((str(videos), str(videos / "list.txt")), "")
    short_raw = by_layout.get(("rawframes", "short256"))
    if short_raw is not None:
        found, why = accuracy_inputs(short_raw)
        assert found is None and "no rawframes short256 layout" in why and str(desc) in why
    monkeypatch.delenv("I3DBENCH_K400")
    found, why = accuracy_inputs(raw)
    assert found is None and "I3DBENCH_K400" in why
