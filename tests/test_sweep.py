"""sweep.py and `i3dbench sweep`: the grid, one decode per decode group, paired statistics that
match a direct computation, a planted difference that shows, and the records and tables."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from cli_harness import run_cli

from i3dbench.errors import UsageError
from i3dbench.metrics import parse_per_video
from i3dbench.records import load_records
from i3dbench.runner import smoke_data
from i3dbench.stats import mcnemar_exact, paired_difference_interval
from i3dbench.sweep import make_variants, parse_vary, run_sweep
from i3dbench.zoo import get_entry

ENTRY = "smoke_i3d_tiny_video"
REPO = Path(__file__).resolve().parent.parent
N = 16  # videos of the synthetic val list (2 per class): enough for every check, seconds per variant


@pytest.fixture(scope="module")
def short_list(tmp_path_factory):
    """(data root, a list of the first N synthetic val videos, 2 of each class)."""
    root, ann = smoke_data(get_entry(ENTRY))
    lines = Path(ann).read_text().splitlines(keepends=True)
    by_label: dict = {}
    for line in lines:
        by_label.setdefault(line.split()[-1], []).append(line)
    picked = [line for group in by_label.values() for line in group[:N // len(by_label)]]
    out = tmp_path_factory.mktemp("lists") / "val16.txt"
    out.write_text("".join(picked))
    return root, out


@pytest.mark.parametrize("items, msg", [
    (["speed=1,2"], "KNOB one of"),
    (["sampler"], "KNOB=V1,V2"),
    (["sampler="], "no values"),
    (["sampler=0.x,2.x"], "must be one of 0.x, 1.x"),
    (["views=10x2"], "CLIPSxCROPS"),
    (["averaging=prob,prob"], "listed twice"),
    (["precision=fp32", "precision=bf16"], "given twice"),
    (["ann=/no/such/list.txt"], "no such list file"),
])
def test_bad_knobs_are_usage_errors(items, msg):
    with pytest.raises(UsageError, match=msg):
        parse_vary(items)


def test_the_grid_puts_the_entrys_own_protocol_first(tmp_path):
    e = get_entry(ENTRY)
    vs = make_variants(e, parse_vary(["averaging=score,prob", "sampler=0.x"]), tmp_path, tmp_path / "a.txt")
    assert [v.knobs for v in vs] == [{"averaging": "prob", "sampler": "1.x"}, {"averaging": "score", "sampler": "0.x"},
                                     {"averaging": "prob", "sampler": "0.x"}]
    assert vs[0].is_base and vs[0].entry.test.sampler_version == "1.x" and vs[1].average_clips == "score"
    assert vs[2].entry.test.sampler_version == "0.x" and vs[2].entry.data == e.data
    with pytest.raises(UsageError, match="at most 32"):
        make_variants(e, parse_vary(["views=1x1,2x1,3x1,4x1,5x1,6x1,7x1,8x1,9x1", "averaging=prob,score", "sampler=0.x,1.x"]),
                      tmp_path, tmp_path / "a.txt")
    with pytest.raises(UsageError, match="jpeg applies to JPEG frames"):
        make_variants(e, parse_vary(["jpeg=cv2,pillow"]), tmp_path, tmp_path / "a.txt")
    with pytest.raises(UsageError, match="rawframe copy"):
        make_variants(e, parse_vary(["decoder=decord,rawframes"]), tmp_path, tmp_path / "a.txt")


def test_cli_sweep_sampler_by_averaging(tmp_path, monkeypatch, short_list):
    from i3dbench.data import dataset as D

    decoded = []
    real = D.ClipDataset.decode
    monkeypatch.setattr(D.ClipDataset, "decode", lambda self, i: decoded.append(i) or real(self, i))
    out = tmp_path / "run"
    root, ann = short_list
    res = run_cli(["sweep", ENTRY, "--vary", "sampler=0.x,1.x", "--vary", "averaging=prob,score", "--out", out,
                   "--data-root", root, "--ann", ann, "--workers", "0", "--quiet"], expect_rc=0,
                  must_name=["base: sampler=1.x, averaging=prob", "McNemar p (exact)", "sampler=0.x, averaging=score"],
                  watch=[REPO / "results", REPO / "README.md", REPO / "zoo"], allowed=[tmp_path])
    assert len(decoded) == 2 * N  # two decode groups (the samplers); averaging variants share them
    recs = load_records(out)
    assert len(recs) == 4 and {r["extra"]["sweep"]["label"] for r in recs} == {
        "sampler=1.x, averaging=prob", "sampler=1.x, averaging=score", "sampler=0.x, averaging=prob",
        "sampler=0.x, averaging=score"}
    base = next(r for r in recs if r["extra"]["sweep"]["base"])
    assert base["method"]["protocol"] == "2x3-prob-sampler1.x"  # the entry's own protocol
    assert {r["method"]["name"] for r in recs} == {"sweep"}  # never the zoo row's evaluation, nor gated with it
    others = [r for r in recs if not r["extra"]["sweep"]["base"]]
    assert all(r["method"]["protocol"].endswith("]") and "-sweep[" in r["method"]["protocol"] for r in others)
    # The paired statistics equal a direct computation from the per-video correctness.
    a = parse_per_video(base["extra"]["per_video"]["top1"])
    for r in others:
        b = parse_per_video(r["extra"]["per_video"]["top1"])
        vs = r["extra"]["sweep"]["vs_base"]
        lo, hi = paired_difference_interval(a, b)
        assert vs["interval"] == pytest.approx([100 * lo, 100 * hi], abs=1e-9)
        mc = mcnemar_exact(a, b)
        assert vs["p_mcnemar"] == pytest.approx(mc.p_two_sided) and (vs["lost"], vs["gained"]) == (mc.n01, mc.n10)
        assert vs["delta_top1"] == pytest.approx(100 * (b.mean() - a.mean()))
    files = sorted(p.name for p in (out / "sweep" / ENTRY).iterdir())
    assert files == ["sweep.csv", "sweep.md", "sweep.png"]
    assert "[" in res.out and "±" not in res.out
    # The CSV holds one number per column (no "0.00 [0.00, 45.93]" strings), and a measured time per variant.
    import csv

    with open(out / "sweep" / ENTRY / "sweep.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 4 and sum(r["base"] == "True" for r in table) == 1
    for r in table:
        for col in ("top1", "top1_low", "top1_high", "top5", "s_per_video"):
            float(r[col])
        assert float(r["top1_low"]) <= float(r["top1"]) <= float(r["top1_high"]) and float(r["s_per_video"]) > 0
        assert r["time_shared_by"] == "2"  # the two averaging variants of one sampler are evaluated together
        if r["base"] != "True":
            assert float(r["delta_top1_low"]) <= float(r["delta_top1"]) <= float(r["delta_top1_high"])
            assert 0 <= float(r["mcnemar_p"]) <= 1 and int(r["common_videos"]) == N
    assert "s/video ↓ (measured here)" in res.out and "(shared by 2)" in res.out


def test_a_planted_difference_shows_with_p_below_005(tmp_path, short_list):
    entry = get_entry(ENTRY)
    root, ann = short_list
    from i3dbench.evaluate import resolve_weights

    net = resolve_weights(entry, None, None).model

    class TimeReversed(torch.nn.Module):
        """A planted protocol bug: clips played backwards (left <-> right, cw <-> ccw)."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.flip(2))

    vs = make_variants(entry, {}, root, ann)
    planted = dataclasses.replace(vs[0], knobs={"planted": "time reversed"}, is_base=False, model=TimeReversed(net))
    res = run_sweep(entry, {}, root, ann, model=net, out=tmp_path, num_workers=0, progress=False,
                    variants=[vs[0], planted])
    c = res.comparisons["planted=time reversed"]
    assert c.p_mcnemar < 0.05 and c.lost > c.gained and c.delta_top1 < -20


def test_ann_variants_are_judged_on_their_intersection(tmp_path, short_list):
    entry = get_entry(ENTRY)
    root, ann = short_list
    lines = Path(ann).read_text().splitlines(keepends=True)
    short = tmp_path / "short.txt"
    short.write_text("".join(lines[:10]))  # another copy of the list: 6 videos missing
    res = run_sweep(entry, parse_vary([f"ann={ann},{short}"]), root, ann, out=tmp_path / "run", num_workers=0,
                    progress=False)
    (c,) = res.comparisons.values()
    assert c.n_common == 10 and (c.lost, c.gained) == (0, 0)  # the same videos, the same predictions
    assert c.own_rest["base_only_videos"] == 6 and c.own_rest["variant_only_videos"] == 0


def test_decoders_and_rawframes_compare_by_video_id(tmp_path, short_list):
    entry = get_entry(ENTRY)
    root, ann = short_list
    raw_root, raw_ann = smoke_data(dataclasses.replace(entry, data=dataclasses.replace(entry.data, format="rawframes",
                                                                                          start_index=1)))
    wanted = {Path(line.split()[0]).with_suffix("").as_posix() for line in Path(ann).read_text().splitlines()}
    raw_short = tmp_path / "raw16.txt"
    raw_short.write_text("".join(line + "\n" for line in Path(raw_ann).read_text().splitlines()
                                 if line.split()[0] in wanted))
    raw = (raw_root, raw_short)
    res = run_sweep(entry, parse_vary(["decoder=decord,pyav,rawframes"]), root, ann, out=tmp_path, num_workers=0,
                    progress=False, rawframes=raw)
    pyav, rawframes = res.comparisons["decoder=pyav"], res.comparisons["decoder=rawframes"]
    assert pyav.n_common == N and pyav.lost == pyav.gained == 0  # decord and PyAV decode the same frames
    assert rawframes.n_common == N  # matched by id: a/x.mp4 and the frame folder a/x


def test_the_base_runs_at_the_variants_views_unless_a_knob_needs_the_entrys_own(tmp_path):
    e = get_entry(ENTRY)  # its own views: 2x3
    vs = make_variants(e, parse_vary(["views=1x1", "sampler=0.x,1.x"]), tmp_path, tmp_path / "a.txt")
    assert [v.knobs for v in vs] == [{"views": "1x1", "sampler": "1.x"}, {"views": "1x1", "sampler": "0.x"}]
    assert vs[0].is_base and (vs[0].entry.test.num_clips, vs[0].entry.views_per_video) == (1, 1)
    # averaging needs several views to differ; two views values are what is compared: the base keeps 2x3
    for vary in (["views=1x1", "averaging=prob,score"], ["views=1x1,2x1", "sampler=0.x,1.x"]):
        base = make_variants(e, parse_vary(vary), tmp_path, tmp_path / "a.txt")[0]
        assert base.is_base and base.knobs["views"] == "2x3" and base.entry.views_per_video == 6, vary


def test_sweep_progress_names_the_variants_and_the_base_at_their_views(tmp_path, short_list, capsys):
    root, ann = short_list
    res = run_sweep(ENTRY, parse_vary(["views=1x1", "sampler=0.x,1.x"]), root, ann, out=tmp_path / "run",
                    num_workers=0, progress=True)
    err = capsys.readouterr().err
    for label in ("views=1x1, sampler=1.x", "views=1x1, sampler=0.x"):
        assert f"sweep {ENTRY} [{label}]: decode+views+forward" in err, err[-2000:]
    assert f"{ENTRY}, {ENTRY}" not in err and f"eval {ENTRY}" not in err
    base = res.variants[0]
    assert base.is_base and base.result.conditions["views"] == 1  # 1 view per video, not the entry's 2x3
    md = (res.out_dir / "sweep.md").read_text()
    assert "base: views=1x1, sampler=1.x (the entry's protocol at views 1x1)" in md
