"""test_accuracy[entry]: evaluate with the published test protocol into the run folder (heavy suite).

* Smoke entries: the synthetic val set and the checkpoint shipped with the smoke zoo (or
  trained into the cache with the entry's recipe when the manifest ships none), evaluated
  afresh (a smoke evaluation takes seconds; nothing is reused). Pass: every listed video
  evaluated, the low end of the exact 95% interval of top-1 above chance, and the entry's
  committed ``expected:`` top-1/top-5 inside the exact interval widened by its tolerance
  (a fall from 89 % to 22 % fails here, with or without a base revision to compare with).
* Kinetics-400 entries need a copy (``I3DBENCH_K400_ROOT`` + ``I3DBENCH_K400_ANN``, a list in
  the entry's data format), the published checkpoint and a GPU (30 views of ~20k videos);
  otherwise they are skipped with the reason, as they are in --quick. An interrupted
  evaluation of the same run key is resumed (the record says so). Pass: top-1 and top-5
  within the entry's tolerance of the published values (evaluate.compare_with_published).
Each evaluation writes its predictions and an ``eval`` record into the run folder.
"""

from __future__ import annotations

import pytest

from i3dbench.evaluate import evaluate
from i3dbench.data.k400copy import inputs_for
from i3dbench.runner import smoke_checkpoint, smoke_data

pytestmark = pytest.mark.heavy


def _k400_inputs(entry, device):
    if not device.startswith("cuda"):
        pytest.skip("a 30-view Kinetics-400 evaluation needs a GPU (--device cuda)")
    found, why = inputs_for(entry)  # the entry's own layout: I3DBENCH_K400, or I3DBENCH_K400_ROOT/_ANN
    if found is None:
        pytest.skip(why)
    root, ann = found
    from i3dbench.checkpoints import download

    try:
        ckpt = download(entry.checkpoint.url)
    except Exception as err:  # noqa: BLE001 - offline, or the file moved: skip with the reason
        pytest.skip(f"published checkpoint not available ({type(err).__name__}: {err})")
    return root, ann, ckpt


def _smoke_eval(entry, device, run, ckpt):
    data_root, ann = smoke_data(entry)
    return evaluate(entry, data_root, ann, checkpoint=ckpt, device=device, out=run, num_workers=1, fresh=True,
                    progress=False)


def test_accuracy(zoo_entry, device, quick, run_dir):
    e = zoo_entry
    if e.dataset == "synthetic":
        ckpt = smoke_checkpoint(e, train_if_missing=True, device=device, records_dir=run_dir.records)
        res = _smoke_eval(e, device, run_dir, ckpt)
    else:
        if quick:
            pytest.skip("--quick: a Kinetics-400 evaluation takes hours")
        data_root, ann, ckpt = _k400_inputs(e, device)
        res = evaluate(e, data_root, ann, checkpoint=ckpt, device=device, out=run_dir, num_workers=4, progress=False)
    m = res.metrics
    print(f"{e.name}: top-1 {m['top1']:.2f} (exact 95% {m['top1_interval'][0]:.2f}-{m['top1_interval'][1]:.2f}), "
          f"top-5 {m['top5']:.2f}, {res.num_evaluated} of {res.num_listed} videos, {res.obtained.get('how')}; "
          f"record {res.record_path}")
    assert res.record_path is not None and res.record_path.parent == run_dir.records
    if e.dataset == "synthetic":
        assert res.complete and res.num_evaluated == res.num_listed, f"decode failures: {res.failures[:3]}"
        chance = 100.0 / e.arch.num_classes
        low = m["top1_interval"][0]
        assert low > chance, f"top-1 exact 95% interval starts at {low:.2f} %, not above chance ({chance:.1f} %)"
        for metric in ("top1", "top5"):  # the committed expectation of the shipped checkpoint (zoo/smoke.yaml)
            want, tol = getattr(e.expected, metric), getattr(e.tolerance, metric)
            if want is None:
                continue
            lo, hi = m[f"{metric}_interval"]
            assert lo - tol <= want <= hi + tol, (
                f"{metric} {m[metric]:.2f} % (exact 95% [{lo:.2f}, {hi:.2f}]) does not reach the expected {want:.2f} % "
                f"within the tolerance ±{tol:g}: the evaluation regressed (or update expected: in zoo/smoke.yaml with "
                "a commit that says why)")
    else:
        assert res.complete, res.incomplete_reason()
        outside = {k: c for k, c in res.comparison.items() if not c["within"]}
        assert res.comparison and not outside, f"outside the published tolerance: {outside or 'nothing compared'}"
