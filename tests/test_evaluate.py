"""evaluate(): multi-view scoring, predictions file, resume (incl. SIGKILL), failures, shards.

Uses stand-ins (a list-backed dataset and a tiny model) so the loop is tested on its own;
the end-to-end run on the synthetic set with the real model lives at the bottom.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from i3dbench.errors import UserError
from i3dbench.evaluate import (
    compare_with_published,
    evaluate,
    parse_views,
    run_key,
    run_key_parts,
    with_test_views,
)
from i3dbench.metrics import top_k_accuracy
from i3dbench.predictions import KeyLock, read_predictions
from i3dbench.records import load_records
from i3dbench.zoo import get_entry

ENTRY = "smoke_i3d_tiny_video"  # 8 classes, 2 clips x 3 crops = 6 views
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Rec:
    path: str
    label: int
    total_frames: int | None = None


@dataclass
class Failure:
    path: str
    reason: str


class ListDataset(torch.utils.data.Dataset):
    """(views uint8 6 x 3 x 4 x 8 x 8, label, index); fixed content per index; optional failures."""

    def __init__(self, n=24, fail=(), delay=0.0, counter=None):
        self.records = [Rec(f"v{i:03d}.mp4", i % 8) for i in range(n)]
        self.fail, self.delay, self.counter = set(fail), delay, counter

    def __len__(self):
        return len(self.records)

    def __getitem__(self, i):
        if self.counter is not None:
            self.counter.append(i)
        if self.delay:
            time.sleep(self.delay)
        rec = self.records[i]
        if i in self.fail:
            return Failure(rec.path, "moov atom not found"), rec.label, i
        g = torch.Generator().manual_seed(i)
        views = torch.randint(0, 256, (6, 3, 4, 8, 8), generator=g, dtype=torch.uint8)
        return views, rec.label, i


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(3, 8)

    def forward(self, x):
        return self.fc(x.mean(dim=(2, 3, 4)))


def _run(tmp_path, dataset, model=None, **kw):
    kw.setdefault("out", tmp_path / "run")
    return evaluate(ENTRY, model=model or TinyNet(), dataset=dataset, num_workers=0, progress=False, **kw)


def _partials(folder):
    return sorted(Path(folder).rglob("*.partial.jsonl"))


def _expected_scores(dataset, mode="prob"):
    """Per-video averaged scores computed directly from the stand-ins."""
    entry = get_entry(ENTRY)
    mean = torch.tensor(entry.data.mean).view(1, 3, 1, 1, 1)
    std = torch.tensor(entry.data.std).view(1, 3, 1, 1, 1)
    net, out = TinyNet().eval(), {}
    for i in range(len(dataset)):
        views, _, _ = dataset[i]
        if isinstance(views, torch.Tensor):
            with torch.no_grad():
                logits = net((views.float() - mean) / std)
            out[i] = (torch.softmax(logits, 1) if mode == "prob" else logits).mean(0).numpy()
    return out


def test_evaluate_scores_records_and_lists_failures(tmp_path):
    ds = ListDataset(n=20, fail={3, 7})
    res = _run(tmp_path, ds, max_failures=2)
    assert (res.num_listed, res.num_evaluated) == (20, 18) and res.complete
    assert [f["i"] for f in res.failures] == [3, 7] and "moov" in res.failures[0]["error"]

    exp = _expected_scores(ds)
    idx = sorted(exp)
    scores = np.stack([exp[i] for i in idx])
    labels = [ds.records[i].label for i in idx]
    t1, t5 = top_k_accuracy(scores, labels, (1, 5))
    assert res.metrics["top1"] == pytest.approx(100 * t1) and res.metrics["top5"] == pytest.approx(100 * t5)

    rows = read_predictions(res.predictions_path)
    assert sorted(rows) == list(range(20))
    np.testing.assert_allclose(rows[0]["scores"], np.sort(exp[0])[::-1][:5], rtol=1e-5)
    assert rows[0]["top5"][0] == int(exp[0].argmax())

    (rec,) = load_records(tmp_path / "run")
    assert rec["kind"] == "eval" and rec["entry"] == ENTRY
    assert rec["extra"]["evaluated"] == "18 of 20" and rec["metrics"]["num_failed"] == 2
    assert rec["method"]["protocol"] == "2x3-prob-sampler1.x" and rec["conditions"]["views"] == 6
    assert rec["obtained"] == {"how": "computed", "rows_computed": 20}
    assert (tmp_path / "run" / rec["extra"]["predictions"]).resolve() == res.predictions_path.resolve()
    hits = rec["extra"]["per_video"]["top1"]
    assert len(hits) == 20 and hits[3] == hits[7] == "-" and hits.count("1") == round(t1 * 18)
    lo, hi = rec["metrics"]["top1_interval"]
    assert lo <= rec["metrics"]["top1"] <= hi and hi - lo > 10  # exact interval of 18 videos
    assert _partials(tmp_path) == []  # sealed: nothing an evaluation would resume


def test_failures_beyond_max_failures_make_an_incomplete_evaluation(tmp_path):
    res = _run(tmp_path, ListDataset(n=10, fail={1}))
    assert not res.complete and "1 of 10 videos failed" in res.incomplete_reason()
    (rec,) = load_records(tmp_path / "run")
    assert rec["extra"]["complete"] is False
    none = _run(tmp_path / "all", ListDataset(n=4, fail={0, 1, 2, 3}), max_failures=10)
    assert not none.complete and "no video could be evaluated" in none.incomplete_reason()


def test_score_averaging_is_a_different_run(tmp_path):
    ds = ListDataset(n=8)
    prob = _run(tmp_path, ds)
    score = _run(tmp_path, ds, average_clips="score")
    assert prob.predictions_path != score.predictions_path
    exp = _expected_scores(ds, "score")
    rows = read_predictions(score.predictions_path)
    np.testing.assert_allclose(rows[5]["scores"][0], exp[5].max(), rtol=1e-5)
    recs = load_records(tmp_path / "run")
    assert {r["method"]["average_clips"] for r in recs} == {"prob", "score"}
    with pytest.raises(ValueError, match="average-clips"):
        _run(tmp_path, ds, average_clips="max")


def _interrupt(result, keep: int, torn: bool = True) -> Path:
    """Turn a finished evaluation's sealed file into what a run killed after ``keep`` rows leaves."""
    lines = result.predictions_path.read_text().splitlines(keepends=True)
    partial = result.predictions_path.with_name(result.predictions_path.name.replace(".jsonl", ".partial.jsonl"))
    partial.write_text("".join(lines[:keep]) + (lines[keep][: len(lines[keep]) // 2] if torn else ""))
    result.predictions_path.unlink()
    for rec in Path(result.record_path).parent.glob("*.json"):
        rec.unlink()  # an interrupted run wrote no record
    return partial


def test_an_interrupted_run_is_resumed_a_finished_one_never(tmp_path):
    runs = tmp_path / "runs"
    full = _run(tmp_path, ListDataset(n=20, fail={4}), max_failures=1, out=runs / "a")
    rows_before = read_predictions(full.predictions_path)
    partial = _interrupt(full, keep=6)
    calls: list[int] = []
    # A new run folder: the interrupted run's partial file (same key) is found under the runs
    # root, moved into this run and continued; only the missing videos are computed.
    again = _run(tmp_path, ListDataset(n=20, fail={4}, counter=calls), max_failures=1, out=runs / "b",
                 resume_search=[runs])
    assert sorted(calls) == [i for i in range(20) if i not in sorted(rows_before)[:6]]
    assert not partial.exists() and _partials(tmp_path) == []
    rows = [json.loads(x) for x in again.predictions_path.read_text().splitlines()]
    assert sorted(r["i"] for r in rows) == list(range(20))  # exactly one row per video
    assert again.metrics == full.metrics
    assert again.obtained == {"how": "resumed", "rows_reused": 6, "reused_from": [str(partial.resolve())],
                              "rows_computed": 14}
    (rec,) = load_records(runs / "b")
    assert rec["obtained"]["how"] == "resumed" and rec["obtained"]["rows_reused"] == 6
    # The run is finished: the same command computes everything again, never replays it.
    calls.clear()
    third = _run(tmp_path, ListDataset(n=20, fail={4}, counter=calls), max_failures=1, out=runs / "c",
                 resume_search=[runs])
    assert sorted(calls) == list(range(20)) and third.obtained["how"] == "computed"


def test_fresh_reuses_nothing(tmp_path):
    full = _run(tmp_path, ListDataset(n=12))
    _interrupt(full, keep=5, torn=False)
    calls: list[int] = []
    res = _run(tmp_path, ListDataset(n=12, counter=calls), fresh=True)
    assert sorted(calls) == list(range(12)) and res.obtained["how"] == "computed" and res.metrics == full.metrics
    assert _partials(tmp_path) == []


def test_single_process_continues_a_killed_sharded_run(tmp_path):
    full = _run(tmp_path, ListDataset(n=12))
    lines = full.predictions_path.read_text().splitlines(keepends=True)
    # What two killed ranks would leave: their part files, no sealed file, no record.
    stem = full.predictions_path.name[: -len(".jsonl")]
    full.predictions_path.unlink()
    (full.predictions_path.parent / f"{stem}.rank0.partial.jsonl").write_text("".join(lines[0:8:2]))
    (full.predictions_path.parent / f"{stem}.rank1.partial.jsonl").write_text("".join(lines[1:8:2]))
    calls: list[int] = []
    again = _run(tmp_path, ListDataset(n=12, counter=calls))
    assert sorted(calls) == list(range(8, 12)) and again.metrics == full.metrics
    assert sorted(read_predictions(again.predictions_path)) == list(range(12))
    assert _partials(tmp_path) == [] and again.obtained["rows_reused"] == 8


def _key_inputs(**change):
    base = dict(weights="w" * 64, dataset="fp", average_clips="prob", precision="fp32", device="cpu",
                decoder="decord", decoder_version="0.6.0", batch_views=None)
    entry = change.pop("entry", get_entry(ENTRY))
    base.update(change)
    return run_key(run_key_parts(entry, **base))


@pytest.mark.parametrize("change", [
    {"weights": "v" * 64}, {"dataset": "other-copy"}, {"average_clips": "score"}, {"precision": "bf16"},
    {"device": "cuda"}, {"decoder": "pyav"}, {"decoder_version": "0.6.1"}, {"batch_views": 3},
    {"entry": with_test_views(get_entry(ENTRY), "1x1")},
    {"entry": __import__("dataclasses").replace(
        get_entry(ENTRY), data=__import__("dataclasses").replace(get_entry(ENTRY).data, resize_short=56))},
], ids=lambda c: next(iter(c)))
def test_every_part_of_the_run_key_matters(change):
    assert _key_inputs(**change) != _key_inputs()


def test_code_and_torch_versions_are_in_the_run_key(monkeypatch):
    from i3dbench import provenance

    before = _key_inputs()
    monkeypatch.setattr(provenance, "source_sha256", lambda: "edited-source")
    assert _key_inputs() != before
    monkeypatch.undo()
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert _key_inputs() != before


def test_a_changed_key_part_forces_a_recompute(tmp_path, monkeypatch):
    full = _run(tmp_path, ListDataset(n=10))
    _interrupt(full, keep=7, torn=False)
    from i3dbench import provenance

    monkeypatch.setattr(provenance, "source_sha256", lambda: "a planted code change")
    calls: list[int] = []
    res = _run(tmp_path, ListDataset(n=10, counter=calls))
    assert sorted(calls) == list(range(10)) and res.obtained["how"] == "computed"


def test_two_evaluations_of_one_key_cannot_run_at_once(tmp_path):
    first = _run(tmp_path, ListDataset(n=4))
    with KeyLock(first.run_key):
        with pytest.raises(UserError, match="another evaluation of the same run key"):
            _run(tmp_path, ListDataset(n=4))
    assert _run(tmp_path, ListDataset(n=4)).metrics == first.metrics  # the lock died with its holder


def test_a_planted_constant_head_is_measured_not_replayed(tmp_path):
    good = _run(tmp_path / "good", ListDataset(n=24))

    class ConstantHead(TinyNet):
        def forward(self, x):
            return torch.zeros(x.shape[0], 8) + torch.arange(8.0).flip(0)  # always class 0

    bad = _run(tmp_path / "bad", ListDataset(n=24), model=ConstantHead())
    assert bad.metrics["top1"] == pytest.approx(100 * 3 / 24)  # labels i % 8: 3 of 24 are class 0
    assert {r["top5"][0] for r in read_predictions(bad.predictions_path).values()} == {0}
    assert {r["top5"][0] for r in read_predictions(good.predictions_path).values()} != {0}
    # Same weights, another forward: another key (a given model is keyed by its classes' source too),
    # and computed, never replayed.
    assert bad.obtained["how"] == "computed" and bad.run_key != good.run_key


def test_corrupt_middle_line_names_file_and_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"i": 0, "label": 1, "top5": [1]}\nnot json\n{"i": 2}\n')
    with pytest.raises(UserError, match=r"x\.jsonl:2"):
        read_predictions(p)


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_evaluate import ListDataset, _run
    from pathlib import Path
    _run(Path({tmp!r}), ListDataset(n=40, fail={{5}}, delay=0.05), max_failures=1)
    """
)


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_matches_uninterrupted(tmp_path):
    killed = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    script = _KILL_SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(killed))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
    pred_dir = killed / "run" / "predictions"
    deadline = time.monotonic() + 60
    n = 0
    while time.monotonic() < deadline and proc.poll() is None:
        files = list(pred_dir.glob("*.jsonl")) if pred_dir.exists() else []
        n = files[0].read_text().count("\n") if files else 0
        if n >= 8:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = read_predictions(next(pred_dir.glob("*.partial.jsonl")))
    assert 8 <= len(partial) < 40
    assert not list((killed / "run").glob("records/*.json"))  # no record of an interrupted run

    resumed = _run(killed, ListDataset(n=40, fail={5}), max_failures=1)
    clean = _run(tmp_path / "clean", ListDataset(n=40, fail={5}), max_failures=1)
    assert resumed.obtained["how"] == "resumed" and resumed.obtained["rows_reused"] == len(partial)
    ids = [json.loads(x)["i"] for x in resumed.predictions_path.read_text().splitlines()]
    assert sorted(ids) == list(range(40))  # exactly one prediction per video
    assert resumed.metrics == clean.metrics
    assert resumed.failures == clean.failures


_DIST_SCRIPT = textwrap.dedent(
    """
    import sys, json
    sys.path.insert(0, {tests!r})
    from test_evaluate import ListDataset, _run
    from pathlib import Path
    import torch.distributed as dist
    res = _run(Path({tmp!r}), ListDataset(n=21, fail={{2}}), max_failures=1)
    if dist.get_rank() == 0:
        print("RESULT", json.dumps(res.metrics), res.record_path is not None)
    else:
        print("OTHER", res.record_path is None)
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_ranks_shard_and_gather(tmp_path):
    script = tmp_path / "dist_eval.py"
    script.write_text(_DIST_SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(tmp_path / "dist")))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
         str(script)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
    assert line.endswith("True") and "OTHER True" in out.stdout
    dist_metrics = json.loads(line[len("RESULT "):-len(" True")])
    single = _run(tmp_path / "single", ListDataset(n=21, fail={2}), max_failures=1)
    assert dist_metrics == single.metrics
    pred_dir = tmp_path / "dist" / "run" / "predictions"
    (final,) = pred_dir.glob("*.jsonl")  # rank part files were merged and removed
    assert final.name.endswith(".jsonl") and ".partial" not in final.name
    assert sorted(read_predictions(final)) == list(range(21))
    assert len(load_records(tmp_path / "dist" / "run")) == 1


def test_compare_with_published_uses_interval_and_tolerance():
    entry = get_entry("i3d_r50_32x2x1_100e_kinetics400_rgb")  # published 72.68 / 90.78, tolerance 0.5
    near = compare_with_published(entry, {"top1": 72.0, "top1_interval": [71.5, 72.5], "top5": 90.0,
                                          "top5_interval": [89.0, 90.1]})
    assert near["top1"]["within"] and near["top1"]["delta"] == pytest.approx(-0.68)
    assert not near["top5"]["within"]  # 90.78 > 90.1 + 0.5
    far = compare_with_published(entry, {"top1": 71.0, "top1_interval": [70.5, 71.5]})
    assert not far["top1"]["within"] and "top5" not in far
    assert compare_with_published(get_entry(ENTRY), {"top1": 50.0}) == {}  # nothing published


def test_another_protocol_is_shown_as_not_comparable_never_outside_tolerance():
    entry = get_entry("i3d_r50_32x2x1_100e_kinetics400_rgb")  # published under 10x3-prob-sampler0.x
    m = {"top1": 60.0, "top1_interval": [59.5, 60.5], "top5": 80.0, "top5_interval": [79.0, 81.0]}
    own = compare_with_published(entry, m, "10x3-prob-sampler0.x")
    assert own["top1"]["comparable"] and not own["top1"]["within"]
    for protocol in ("1x1-prob-sampler0.x", "10x3-score-sampler0.x", "10x3-prob-sampler0.x-sweep[num_clips=1]"):
        c = compare_with_published(entry, m, protocol)
        assert c["top1"]["comparable"] is False and "within" not in c["top1"]
        assert c["top1"]["why"] == f"not comparable with the published protocol ({protocol} vs 10x3-prob-sampler0.x)"


def test_an_eval_with_other_views_is_not_held_against_the_published_numbers(tmp_path):
    k400 = "i3d_r50_32x2x1_100e_kinetics400_rgb"
    res = evaluate(k400, model=TinyNet(), dataset=ListDataset(n=12), num_workers=0, progress=False,
                   views="2x3", out=tmp_path / "run")
    assert set(res.comparison) == {"top1", "top5"}
    assert all(c["comparable"] is False and "(2x3-prob-sampler0.x vs 10x3-prob-sampler0.x)" in c["why"]
               for c in res.comparison.values())
    (rec,) = load_records(tmp_path / "run")
    assert rec["extra"]["comparison"]["top1"]["comparable"] is False


def test_the_eval_summary_says_not_comparable_instead_of_outside_tolerance(tmp_path, capsys):
    from i3dbench.cli.loop import _print_eval

    k400 = "i3d_r50_32x2x1_100e_kinetics400_rgb"
    res = evaluate(k400, model=TinyNet(), dataset=ListDataset(n=12), num_workers=0, progress=False,
                   views="2x3", out=tmp_path / "run")
    assert _print_eval(res) == 0
    out = capsys.readouterr().out
    assert "top1: published 72.68: not comparable with the published protocol (2x3-prob-sampler0.x vs " \
           "10x3-prob-sampler0.x)" in out
    assert "OUTSIDE" not in out and "within" not in out


def test_views_override():
    assert parse_views("10x3") == (10, 3) and parse_views("1X1") == (1, 1)
    for bad in ("10", "10x2", "0x3", "ax3"):
        with pytest.raises(ValueError, match="CLIPSxCROPS"):
            parse_views(bad)
    e = with_test_views(get_entry(ENTRY), "4x1")
    assert (e.test.num_clips, e.test.crop, e.views_per_video) == (4, "center_crop", 4)


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_videos(tmp_path_factory):
    """6 real H.264 val videos of the synthetic generator, plus one corrupt file in the list."""
    from i3dbench.data.synthetic import CLASSES, generate_synthetic, synthetic_paths

    root = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(root, videos_per_class=1, val_videos_per_class=2, num_frames=20, sizes=("340x256",),
                       formats=("videos",), classes=CLASSES[:3], workers=1, progress=False)
    data_root, ann = synthetic_paths(root, "videos", "340x256", "val")
    (data_root / "broken.mp4").write_bytes(b"not a video")
    with open(ann, "a") as f:
        f.write("broken.mp4 1\n")
    return data_root, ann


def test_cli_eval_end_to_end_with_real_modules(tiny_videos, tmp_path, capsys):
    from i3dbench.checkpoints import file_sha256, save_checkpoint
    from i3dbench.cli import main
    from i3dbench.models import build_model

    data_root, ann = tiny_videos
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "tiny.pth", build_model(ENTRY))
    args = ["eval", ENTRY, "--data-root", str(data_root), "--ann", str(ann), "--checkpoint", str(ckpt),
            "--out", str(tmp_path / "run"), "--workers", "0", "--quiet"]
    assert main(args) == 2  # one video failed to decode, --max-failures 0: incomplete
    captured = capsys.readouterr()
    assert "evaluated 6 of 7 (1 failed to decode)" in captured.out and "obtained: computed" in captured.out
    assert "INCOMPLETE" in captured.err and "broken.mp4" in captured.err
    args += ["--max-failures", "1"]
    (rec,) = load_records(tmp_path / "run")
    assert rec["conditions"]["checkpoint_sha256"] == file_sha256(ckpt)
    assert rec["conditions"]["decoder"] == "decord" and rec["conditions"]["decoder_version"]
    assert rec["extra"]["failures"][0]["video"] == "broken.mp4"
    from i3dbench.data.inventory import check_dataset

    inventory = check_dataset(data_root, ann, format="videos", workers=1, progress=False)
    assert rec["conditions"]["dataset_fingerprint"] == inventory.fingerprint  # `i3dbench data check` agrees
    assert rec["conditions"]["checkpoint_verified"].startswith("unverified")
    # The same command again computes again (a finished evaluation is never replayed): same numbers.
    assert main(args) == 0
    assert "obtained: computed" in capsys.readouterr().out
    recs = load_records(tmp_path / "run")
    assert len(recs) == 2 and recs[0]["metrics"] == recs[1]["metrics"]
    (pred,) = (tmp_path / "run" / "predictions").glob("*.jsonl")
    assert len(pred.read_text().splitlines()) == 7
